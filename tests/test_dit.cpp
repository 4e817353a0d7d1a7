// The Wan2.1 DiT: parameter layout, RoPE, patchify, timestep embedding, per-frame modulation.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "motionstream/model/dit.h"
#include "test_util.h"

using namespace ms;

TEST(DitLayout, Wan13bT2vManifestMatchesPublishedCounts) {
  const DitConfig c = dit_preset("wan-1.3b");
  const auto shapes = c.parameter_shapes();  // no weights allocated
  EXPECT_EQ(shapes.size(), 825u);
  EXPECT_EQ(c.parameter_count(), 1418996800);

  int64_t block0_tensors = 0, block0_params = 0;
  std::map<std::string, std::vector<int64_t>> by_name;
  for (const auto& [name, shape] : shapes) {
    by_name[name] = shape;
    if (name.rfind("blocks.0.", 0) == 0) {
      ++block0_tensors;
      int64_t n = 1;
      for (auto d : shape) n *= d;
      block0_params += n;
    }
  }
  EXPECT_EQ(block0_tensors, 27);
  EXPECT_EQ(block0_params, 46440704);
  EXPECT_EQ(by_name.at("blocks.29.ffn.0.weight"), (std::vector<int64_t>{8960, 1536}));
  EXPECT_EQ(by_name.at("time_projection.1.weight"), (std::vector<int64_t>{9216, 1536}));
  EXPECT_EQ(by_name.at("head.head.weight"), (std::vector<int64_t>{64, 1536}));
  EXPECT_EQ(by_name.at("patch_embedding.weight"), (std::vector<int64_t>{1536, 16, 1, 2, 2}));
  EXPECT_EQ(by_name.at("blocks.7.self_attn.norm_q.weight"), (std::vector<int64_t>{1536}));
  EXPECT_EQ(by_name.at("text_embedding.0.weight"), (std::vector<int64_t>{1536, 4096}));
  EXPECT_EQ(by_name.count("blocks.30.modulation"), 0u);
  EXPECT_EQ(by_name.count("track_head.weight"), 0u);

  const DitConfig motion = dit_preset("wan-1.3b-motion");
  EXPECT_EQ(motion.in_channels(), 16 + 4 + 16 + 16);  // noisy | mask | image latent | track features
}

TEST(DitLayout, ModuleRegistersExactlyTheManifest) {
  for (const char* preset : {"tiny", "cpu-small"}) {
    const DitConfig c = dit_preset(preset);
    WanDiT model(c);
    const auto expected = c.parameter_shapes();
    const auto params = model->named_parameters();
    ASSERT_EQ(params.size(), expected.size()) << preset;
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(params[i].key(), expected[i].first) << preset;
      EXPECT_EQ(params[i].value().sizes().vec(), expected[i].second) << expected[i].first;
    }
  }
}

TEST(DitLayout, ConfigJsonRoundTripAndErrors) {
  const DitConfig c = dit_preset("cpu-small");
  nlohmann::json j = c;
  const DitConfig back = j.get<DitConfig>();
  EXPECT_EQ(back.parameter_shapes(), c.parameter_shapes());
  nlohmann::json bad = j;
  bad["num_heads"] = 3;  // 256 % 3 != 0
  try {
    (void)bad.get<DitConfig>();
    FAIL() << "num_heads 3 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("num_heads"), std::string::npos) << e.what();
  }
  nlohmann::json unknown = j;
  unknown["dimm"] = 5;
  EXPECT_THROW((void)unknown.get<DitConfig>(), std::invalid_argument);
  EXPECT_THROW(dit_preset("wan-14b-nope"), std::invalid_argument);
}

TEST(Rope, SplitAndFrequenciesForHeadDim128) {
  const RopeSplit s = rope_split(128);
  EXPECT_EQ(s.t, 22);
  EXPECT_EQ(s.h, 21);
  EXPECT_EQ(s.w, 21);
  // One token at (frame 3, row 5, column 7).
  auto table = rope_table(torch::tensor({{3.0, 5.0, 7.0}}, torch::kDouble), 128);
  ASSERT_EQ(table.cos.sizes(), (at::IntArrayRef{1, 64}));
  auto angle = [&](int64_t pair) { return std::atan2(table.sin[0][pair].item<double>(), table.cos[0][pair].item<double>()); };
  auto wrap = [](double a) { return std::remainder(a, 2 * M_PI); };
  // pair j of axis with d elements turns by pos * 10000^(-2j/d); t: pairs 0..21 (d 44), h: 22..42 (d 42), w: 43..63
  for (int64_t j : {1, 5, 21}) EXPECT_NEAR(angle(j), wrap(3.0 * std::pow(10000.0, -2.0 * j / 44.0)), 1e-5) << j;
  for (int64_t j : {0, 3, 20}) EXPECT_NEAR(angle(22 + j), wrap(5.0 * std::pow(10000.0, -2.0 * j / 42.0)), 1e-5) << j;
  for (int64_t j : {0, 4, 20}) EXPECT_NEAR(angle(43 + j), wrap(7.0 * std::pow(10000.0, -2.0 * j / 42.0)), 1e-5) << j;
  EXPECT_NEAR(angle(0), 3.0 - 2 * M_PI * std::round(3.0 / (2 * M_PI)), 1e-6);
}

TEST(Rope, AdjacentElementsFormThePair) {
  // x = e_{2j}: rotating pair j by angle a gives (cos a, sin a) in elements (2j, 2j+1) and nothing elsewhere.
  const int64_t d = 12;  // split: t 4 elements (2 pairs), h 4, w 4
  EXPECT_EQ(rope_split(d).t, 2);
  auto table = rope_table(torch::tensor({{2.0, 0.0, 0.0}}, torch::kDouble), d);
  auto x = torch::zeros({1, 1, 1, d});
  x[0][0][0][2] = 1.0;  // pair 1, first element
  auto y = apply_rope(x, table).flatten();
  const double a = 2.0 * std::pow(10000.0, -2.0 * 1 / 4.0);
  EXPECT_NEAR(y[2].item<double>(), std::cos(a), 1e-6);
  EXPECT_NEAR(y[3].item<double>(), std::sin(a), 1e-6);
  EXPECT_NEAR((y.sum() - y[2] - y[3]).item<double>(), 0.0, 1e-7);
  // Rotation keeps the norm and relative positions: <R(p)q, R(p')k> depends only on p - p'.
  auto q = torch::randn({1, 1, 1, d}), k = torch::randn({1, 1, 1, d});
  auto at_pos = [&](const at::Tensor& v, double f) { return apply_rope(v, rope_table(torch::tensor({{f, 1.0, 2.0}}, torch::kDouble), d)); };
  auto dot1 = (at_pos(q, 9) * at_pos(k, 4)).sum().item<double>();
  auto dot2 = (at_pos(q, 105) * at_pos(k, 100)).sum().item<double>();
  EXPECT_NEAR(dot1, dot2, 1e-4);
}

TEST(Patchify, PatchEmbeddingMatmulEqualsConv3d) {
  torch::manual_seed(1);
  auto x = torch::randn({2, 5, 3, 6, 8});
  auto w = torch::randn({7, 5, 1, 2, 2});
  auto b = torch::randn({7});
  auto ours = at::linear(patchify(x), w.flatten(1), b);                       // [B, L, D]
  auto conv = at::conv3d(x, w, b, {1, 2, 2}).flatten(2).transpose(1, 2);       // [B, F*h*w, D]
  EXPECT_LT(test::max_abs_diff(ours, conv), 1e-4);
}

TEST(Patchify, UnpatchifyReadsTheHeadLayout) {
  const int64_t C = 3;
  const TokenGrid g{2, 3, 4};
  auto tokens = torch::randn({1, g.tokens(), 4 * C});
  auto x = unpatchify(tokens, g, C);  // [1, C, F, 2h, 2w]
  ASSERT_EQ(x.sizes(), (at::IntArrayRef{1, C, 2, 6, 8}));
  // token (f, h, w) feature (ph*2 + pw)*C + c is pixel (c, f, 2h + ph, 2w + pw)
  for (int64_t f : {0, 1})
    for (int64_t h : {0, 2})
      for (int64_t w : {1, 3})
        for (int64_t ph : {0, 1})
          for (int64_t pw : {0, 1})
            for (int64_t c = 0; c < C; ++c) {
              const int64_t token = (f * g.h + h) * g.w + w;
              EXPECT_EQ(x[0][c][f][2 * h + ph][2 * w + pw].item<float>(),
                        tokens[0][token][(ph * 2 + pw) * C + c].item<float>());
            }
  // and the head layout is the inverse: re-patchify in (ph, pw, c) order gives the tokens back
  auto again = x.view({1, C, 2, 3, 2, 4, 2}).permute({0, 2, 3, 5, 4, 6, 1}).reshape({1, g.tokens(), 4 * C});
  EXPECT_TRUE(torch::equal(again, tokens));
}

TEST(TimeEmbedding, CosThenSin) {
  auto e = timestep_embedding(torch::tensor({250.0}), 8);  // half = 4, w_i = 10000^(-i/4)
  for (int64_t i = 0; i < 4; ++i) {
    const double w = std::pow(10000.0, -i / 4.0);
    EXPECT_NEAR(e[0][i].item<double>(), std::cos(250.0 * w), 1e-5);
    EXPECT_NEAR(e[0][4 + i].item<double>(), std::sin(250.0 * w), 1e-5);
  }
}

TEST(DitForward, ModulationIsPerFrame) {
  // With frame-causal attention, a frame's output may depend only on earlier frames: changing the timestep of
  // the last frame must leave the others untouched and change that frame.
  const DitConfig c = dit_preset("tiny");
  WanDiT model(c);
  test::randomize(model, 3);
  torch::NoGradGuard no_grad;
  const TokenGrid g{3, 2, 3};
  DitInput in;
  in.noisy = torch::randn({1, c.latent_channels, 3, 4, 6});
  in.condition = image_condition(torch::randn({1, c.latent_channels, 4, 6}), 0, 3);
  in.tracks = torch::randn({1, c.packed_track_channels(), 3, 4, 6});
  in.timesteps = torch::tensor({{900.0, 500.0, 100.0}});
  auto text = model->encode_text(torch::randn({1, 5, c.text_dim}));
  const int64_t per = g.tokens_per_frame();
  auto mask = torch::full({g.tokens(), g.tokens()}, -INFINITY);
  for (int64_t i = 0; i < 3; ++i) mask.narrow(0, i * per, per).narrow(1, 0, (i + 1) * per).zero_();
  MaskedSelfAttention attn(grid_positions(3, 2, 3), c.head_dim(), mask);
  auto a = model->forward(in, text, attn);
  EXPECT_EQ(a.sizes(), in.noisy.sizes());
  in.timesteps = torch::tensor({{900.0, 500.0, 700.0}});
  auto b = model->forward(in, text, attn);
  EXPECT_LT(test::max_abs_diff(a.narrow(2, 0, 2), b.narrow(2, 0, 2)), 1e-6);
  EXPECT_GT(test::max_abs_diff(a.narrow(2, 2, 1), b.narrow(2, 2, 1)), 1e-3);
}

TEST(DitForward, EveryInputMovesTheOutputAndShapesAreChecked) {
  const DitConfig c = dit_preset("tiny");
  WanDiT model(c);
  test::randomize(model, 4);
  torch::NoGradGuard no_grad;
  DitInput in;
  in.noisy = torch::randn({1, c.latent_channels, 2, 4, 4});
  in.condition = image_condition(torch::randn({1, c.latent_channels, 4, 4}), 0, 2);
  in.tracks = torch::randn({1, c.packed_track_channels(), 2, 4, 4});
  in.timesteps = torch::full({1, 2}, 500.0);
  auto text = model->encode_text(torch::randn({1, 3, c.text_dim}));
  auto attn = MaskedSelfAttention::bidirectional({2, 2, 2}, c.head_dim());
  auto base = model->forward(in, text, attn);
  auto with = [&](auto change) {
    DitInput other = in;
    change(other);
    return test::max_abs_diff(model->forward(other, text, attn), base);
  };
  EXPECT_GT(with([](DitInput& i) { i.tracks = at::Tensor(); }), 1e-4);
  EXPECT_GT(with([](DitInput& i) { i.condition = i.condition * 0.5; }), 1e-4);
  EXPECT_GT(with([](DitInput& i) { i.timesteps = i.timesteps * 0.5; }), 1e-4);
  EXPECT_GT(test::max_abs_diff(model->forward(in, model->encode_text(torch::randn({1, 3, c.text_dim})), attn), base),
            1e-4);

  DitInput bad = in;
  bad.tracks = torch::randn({1, 3, 2, 4, 4});
  EXPECT_THROW(model->forward(bad, text, attn), c10::Error);
  bad = in;
  bad.condition = at::Tensor();
  EXPECT_THROW(model->forward(bad, text, attn), c10::Error);
}

TEST(DitInit, TrackChannelsStartAtZero) {
  const DitConfig c = dit_preset("tiny");
  WanDiT model(c);
  init_dit_weights(*model, 7);
  auto w = model->patch_embedding->weight;
  EXPECT_EQ(w.narrow(1, c.in_channels() - c.track_channels, c.track_channels).abs().sum().item<double>(), 0.0);
  EXPECT_GT(w.narrow(1, 0, c.in_channels() - c.track_channels).abs().sum().item<double>(), 0.0);
}

TEST(DitLayout, FlopCountFollowsTheWeights) {
  // Every weight matrix that sees the tokens costs 2 FLOPs per element per token; attention adds 4*L*keys*D per
  // block for self-attention and 4*L*text_len*D for cross-attention.
  const DitConfig c = dit_preset("wan-1.3b");
  int64_t token_weights = 0;
  for (const auto& [name, shape] : c.parameter_shapes()) {
    const bool matrix = shape.size() >= 2 && name.find("modulation") == std::string::npos;
    const bool per_token = name.rfind("blocks.", 0) == 0 || name.rfind("patch_embedding", 0) == 0 ||
                           name.rfind("head.head", 0) == 0;
    const bool text_side = name.find("cross_attn.k.") != std::string::npos || name.find("cross_attn.v.") != std::string::npos;
    if (matrix && per_token && !text_side) {
      int64_t n = 1;
      for (auto d : shape) n *= d;
      token_weights += n;
    }
  }
  const int64_t L = 4680, keys = 3 * 4680;  // one 832x480 chunk attending to sink + window + itself
  const double expected = 2.0 * L * token_weights + 30 * (4.0 * L * keys * 1536 + 4.0 * L * 512 * 1536);
  EXPECT_NEAR(c.forward_flops(L, keys) / expected, 1.0, 1e-12);
  EXPECT_NEAR(c.forward_flops(L, keys) / 1e12, 24.26, 0.01);  // per pass at the paper's shape, by hand
}
