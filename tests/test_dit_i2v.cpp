// Wan I2V's CLIP image cross-attention in the DiT: layout, manifests of the published sizes, and the attention
// itself against a computation written out here from the module's weights.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "motionstream/model/dit.h"
#include "motionstream/stream/streaming_generator.h"
#include "test_util.h"

using namespace ms;

namespace {

struct Count {
  int64_t tensors = 0, parameters = 0;
};

// Wan2.1's layout counted by hand: per block and for the embeddings, Linear = out*in + out, RMSNorm = D,
// affine LayerNorm = 2 * width. Text 4096 wide, frequency 256, head out 16 * 1 * 2 * 2 = 64, CLIP tokens 1280 wide.
Count wan_by_hand(int64_t D, int64_t F, int64_t layers, int64_t in_channels, bool clip) {
  auto linear = [](int64_t in, int64_t out) { return out * in + out; };
  const int64_t Ci = 1280;
  int64_t block = 6 * D                                // modulation [1, 6, D]
                  + 4 * linear(D, D) + 2 * D           // self_attn q k v o, norm_q, norm_k
                  + 4 * linear(D, D) + 2 * D           // cross_attn q k v o, norm_q, norm_k
                  + 2 * D                              // norm3
                  + linear(D, F) + linear(F, D);       // ffn.0, ffn.2
  if (clip) block += 2 * linear(D, D) + D;             // k_img, v_img, norm_k_img
  int64_t embeddings = D * in_channels * 4 + D         // patch_embedding (1, 2, 2)
                       + linear(4096, D) + linear(D, D)  // text_embedding.0, .2
                       + linear(256, D) + linear(D, D)   // time_embedding.0, .2
                       + linear(D, 6 * D)                // time_projection.1
                       + 2 * D + linear(D, 64);          // head.modulation, head.head
  if (clip) embeddings += 2 * Ci + linear(Ci, Ci) + linear(Ci, D) + 2 * D;  // img_emb.proj.0, 1, 3, 4
  const int64_t block_tensors = 1 + (8 + 2) + (8 + 2) + 2 + 4 + (clip ? 5 : 0);
  const int64_t other_tensors = 2 + 4 + 4 + 2 + 1 + 2 + (clip ? 8 : 0);
  return {layers * block_tensors + other_tensors, layers * block + embeddings};
}

Count manifest_count(const DitConfig& c) {
  Count n;
  for (const auto& [name, shape] : c.parameter_shapes()) {
    int64_t k = 1;
    for (auto d : shape) k *= d;
    ++n.tensors;
    n.parameters += k;
  }
  return n;
}

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
  auto mean = x.mean(-1, true), var = (x - mean).pow(2).mean(-1, true);  // biased variance, as LayerNorm
  return (x - mean) / at::sqrt(var + eps) * w + b;
}
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  return x / at::sqrt(x.pow(2).mean(-1, true) + eps) * w;
}
at::Tensor affine(const at::Tensor& x, const torch::nn::LinearImpl& l) { return at::matmul(x, l.weight.t()) + l.bias; }
at::Tensor gelu_exact(const at::Tensor& x) { return 0.5 * x * (1 + at::erf(x / std::sqrt(2.0))); }

// softmax(q k^T / sqrt(d)) v head by head, the softmax spelled out. q: [Lq, D], k/v: [Lk, D] -> [Lq, D]
at::Tensor attention_by_heads(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads) {
  const int64_t d = q.size(1) / heads;
  std::vector<at::Tensor> out;
  for (int64_t h = 0; h < heads; ++h) {
    auto qh = q.narrow(1, h * d, d), kh = k.narrow(1, h * d, d), vh = v.narrow(1, h * d, d);
    auto scores = at::matmul(qh, kh.t()) / std::sqrt(static_cast<double>(d));  // [Lq, Lk]
    auto e = at::exp(scores - std::get<0>(scores.max(1, true)));
    out.push_back(at::matmul(e / e.sum(1, true), vh));
  }
  return at::cat(out, 1);
}

}  // namespace

TEST(DitI2vLayout, PublishedManifestsAgainstHandCounts) {
  // Nothing is allocated: names and shapes only.
  const Count t2v = manifest_count(dit_preset("wan-1.3b"));
  EXPECT_EQ(t2v.parameters, 1418996800);  // SPEC.md section 2
  const Count t2v_hand = wan_by_hand(1536, 8960, 30, 16, false);
  EXPECT_EQ(t2v_hand.parameters, 1418996800);
  EXPECT_EQ(t2v.tensors, t2v_hand.tensors);

  const Count i2v = manifest_count(dit_preset("wan-1.3b-i2v")), i2v_hand = wan_by_hand(1536, 8960, 30, 36, true);
  EXPECT_EQ(i2v.tensors, i2v_hand.tensors);
  EXPECT_EQ(i2v.parameters, i2v_hand.parameters);
  const Count big = manifest_count(dit_preset("wan-14b-i2v")), big_hand = wan_by_hand(5120, 13824, 40, 36, true);
  EXPECT_EQ(big.tensors, big_hand.tensors);
  EXPECT_EQ(big.parameters, big_hand.parameters);
  EXPECT_EQ(dit_preset("wan-14b-i2v").head_dim(), 128);

  std::map<std::string, std::vector<int64_t>> by_name;
  for (const auto& [name, shape] : dit_preset("wan-14b-i2v").parameter_shapes()) by_name[name] = shape;
  EXPECT_EQ(by_name.at("img_emb.proj.0.weight"), (std::vector<int64_t>{1280}));
  EXPECT_EQ(by_name.at("img_emb.proj.1.weight"), (std::vector<int64_t>{1280, 1280}));
  EXPECT_EQ(by_name.at("img_emb.proj.3.weight"), (std::vector<int64_t>{5120, 1280}));
  EXPECT_EQ(by_name.at("img_emb.proj.4.bias"), (std::vector<int64_t>{5120}));
  EXPECT_EQ(by_name.at("blocks.39.cross_attn.k_img.weight"), (std::vector<int64_t>{5120, 5120}));
  EXPECT_EQ(by_name.at("blocks.0.cross_attn.norm_k_img.weight"), (std::vector<int64_t>{5120}));
  EXPECT_EQ(by_name.at("patch_embedding.weight"), (std::vector<int64_t>{5120, 36, 1, 2, 2}));
  EXPECT_EQ(by_name.count("img_emb.proj.2.weight"), 0u);  // the GELU has no weights

  // Wan's order inside the I2V cross-attention: the text projections, then k_img, v_img, norm_k_img.
  const auto shapes = dit_preset("wan-1.3b-i2v").parameter_shapes();
  std::vector<std::string> cross;
  for (const auto& [name, shape] : shapes)
    if (name.rfind("blocks.0.cross_attn.", 0) == 0) cross.push_back(name.substr(20));
  EXPECT_EQ(cross, (std::vector<std::string>{"q.weight", "q.bias", "k.weight", "k.bias", "v.weight", "v.bias",
                                             "o.weight", "o.bias", "norm_q.weight", "norm_k.weight", "k_img.weight",
                                             "k_img.bias", "v_img.weight", "v_img.bias", "norm_k_img.weight"}));
  // The bundled-size presets stay without the branch.
  for (const char* p : {"wan-1.3b", "cpu-small", "tiny", "tiny-motion"}) EXPECT_EQ(dit_preset(p).image_tokens, 0) << p;
  EXPECT_EQ(dit_preset("wan-1.3b-motion").image_tokens, 257);
}

TEST(DitI2vLayout, ModuleRegistersTheManifestInOrder) {
  const DitConfig c = dit_preset("tiny-clip");
  WanDiT model(c);
  const auto expected = c.parameter_shapes();
  const auto params = model->named_parameters();
  ASSERT_EQ(params.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(params[i].key(), expected[i].first);
    EXPECT_EQ(params[i].value().sizes().vec(), expected[i].second) << expected[i].first;
  }
}

TEST(DitI2vLayout, ConfigJsonOldFilesAndErrors) {
  // A config.json written before the CLIP fields existed (the bundled teacher's) reads as a model without them.
  const auto old = nlohmann::json::parse(R"({"dim": 256, "eps": 1e-06, "ffn_dim": 1024, "freq_dim": 256,
      "image_condition": true, "latent_channels": 16, "name": "cpu-small", "num_heads": 4, "num_layers": 4,
      "text_dim": 256, "text_len": 32, "track_channels": 16, "track_id_dim": 64, "track_latent_copy": false})");
  const DitConfig c = old.get<DitConfig>();
  EXPECT_EQ(c.image_tokens, 0);
  EXPECT_EQ(c.parameter_shapes(), dit_preset("cpu-small").parameter_shapes());

  const DitConfig clip = dit_preset("tiny-clip");
  nlohmann::json j = clip;
  EXPECT_EQ(j.at("image_tokens"), 5);
  const DitConfig back = j.get<DitConfig>();
  EXPECT_EQ(back.image_tokens, 5);
  EXPECT_EQ(back.image_token_dim, 12);
  EXPECT_EQ(back.parameter_shapes(), clip.parameter_shapes());
  for (const char* field : {"image_tokens", "image_token_dim"}) {
    nlohmann::json bad = j;
    bad[field] = -1;
    try {
      (void)bad.get<DitConfig>();
      ADD_FAILURE() << field << " -1 accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  }
}

TEST(DitI2vLayout, FlopsCountTheImageAttention) {
  DitConfig with = dit_preset("wan-1.3b-i2v"), without = with;
  without.image_tokens = 0;
  const int64_t L = 4680, keys = 9360;
  EXPECT_DOUBLE_EQ(with.forward_flops(L, keys) - without.forward_flops(L, keys), 30.0 * 4.0 * L * 257 * 1536);
}

TEST(DitI2vForward, ImageAttentionMatchesAComputationByHand) {
  // One block, FFN silenced (ffn.2 zero): block(x, text + image) - block(x, text) = o.weight @ attn(q, k_img, v_img)
  // (o's bias and everything else cancel). The image K/V and q are recomputed here from the module's weights.
  const DitConfig c = dit_preset("tiny-clip");
  WanDiT model(c);
  test::randomize(model, 11);
  torch::NoGradGuard no_grad;
  auto& block = *model->blocks[0]->as<DitBlock>();
  block.ffn->ptr(2)->as<torch::nn::Linear>()->weight.zero_();
  block.ffn->ptr(2)->as<torch::nn::Linear>()->bias.zero_();

  const TokenGrid g{2, 2, 2};
  auto x = torch::randn({1, g.tokens(), c.dim});
  auto e0 = torch::randn({1, g.frames, 6, c.dim}) * 0.1;
  auto tokens = torch::randn({1, c.image_tokens, c.image_token_dim});
  auto text = model->encode_text(torch::randn({1, 4, c.text_dim}));
  auto image = model->encode_image(tokens);
  auto attn = MaskedSelfAttention::bidirectional(g, c.head_dim());
  auto with = block.forward(x, e0, g, text.k[0], text.v[0], attn, 0, image.k[0], image.v[0]);
  auto without = block.forward(x, e0, g, text.k[0], text.v[0], attn, 0);

  // Image tokens through img_emb: LayerNorm, Linear, GELU, Linear, LayerNorm (eps 1e-5).
  auto& proj = *model->img_emb->proj;
  auto ln0 = proj.ptr(0)->as<torch::nn::LayerNorm>(), ln4 = proj.ptr(4)->as<torch::nn::LayerNorm>();
  auto ctx = layer_norm(tokens[0], ln0->weight, ln0->bias, 1e-5);
  ctx = affine(gelu_exact(affine(ctx, *proj.ptr(1)->as<torch::nn::Linear>())), *proj.ptr(3)->as<torch::nn::Linear>());
  ctx = layer_norm(ctx, ln4->weight, ln4->bias, 1e-5);  // [Li, D]
  auto& ca = *block.cross_attn;
  auto k_img = rms_norm(affine(ctx, *ca.k_img), ca.norm_k_img->weight, c.eps);
  auto v_img = affine(ctx, *ca.v_img);
  EXPECT_LT(test::max_abs_diff(image.k[0].reshape({c.image_tokens, c.dim}), k_img), 1e-5);

  // The query reads x after the gated self-attention (x1); with o silenced too the block returns exactly x1.
  auto saved_o_w = ca.o->weight.clone(), saved_o_b = ca.o->bias.clone();
  ca.o->weight.zero_();
  ca.o->bias.zero_();
  auto x1 = block.forward(x, e0, g, text.k[0], text.v[0], attn, 0);  // x after self-attention only
  ca.o->weight.copy_(saved_o_w);
  ca.o->bias.copy_(saved_o_b);
  auto n3 = layer_norm(x1[0], block.norm3->weight, block.norm3->bias, c.eps);
  auto q = rms_norm(affine(n3, *ca.q), ca.norm_q->weight, c.eps);  // [L, D]
  auto expected = at::matmul(attention_by_heads(q, k_img, v_img, c.num_heads), ca.o->weight.t());  // no bias
  EXPECT_LT(test::max_abs_diff((with - without)[0], expected), 1e-4);
  EXPECT_GT(expected.abs().max().item<double>(), 1e-2);  // the branch does move the output
}

TEST(DitI2vForward, ImageTokensMatterAndAreRequired) {
  const DitConfig c = dit_preset("tiny-clip");
  WanDiT model(c);
  test::randomize(model, 12);
  torch::NoGradGuard no_grad;
  DitInput in;
  in.noisy = torch::randn({1, c.latent_channels, 2, 4, 4});
  in.condition = image_condition(torch::randn({1, c.latent_channels, 4, 4}), 0, 2);
  in.timesteps = torch::full({1, 2}, 500.0);
  auto attn = MaskedSelfAttention::bidirectional({2, 2, 2}, c.head_dim());
  auto text = model->encode_text(torch::randn({1, 3, c.text_dim}));
  auto tokens_a = torch::randn({1, c.image_tokens, c.image_token_dim});
  auto tokens_b = torch::randn({1, c.image_tokens, c.image_token_dim});

  // No image tokens: a clear error, not a silent skip.
  try {
    model->forward(in, text, attn);
    ADD_FAILURE() << "forward without image tokens accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("CLIP image cross-attention"), std::string::npos) << e.what();
  }
  text.image = model->encode_image(tokens_a);
  auto a = model->forward(in, text, attn);
  EXPECT_EQ(test::max_abs_diff(model->forward(in, text, attn), a), 0.0);
  text.image = model->encode_image(tokens_b);
  EXPECT_GT(test::max_abs_diff(model->forward(in, text, attn), a), 1e-4);
  EXPECT_THROW(model->encode_image(torch::randn({1, c.image_tokens + 1, c.image_token_dim})), c10::Error);

  // Zero v_img: the image attention adds exactly nothing, whatever the tokens.
  for (const auto& b : *model->blocks) {
    b->as<DitBlock>()->cross_attn->v_img->weight.zero_();
    b->as<DitBlock>()->cross_attn->v_img->bias.zero_();
  }
  text.image = model->encode_image(tokens_a);
  auto silent_a = model->forward(in, text, attn);
  text.image = model->encode_image(tokens_b);
  EXPECT_EQ(test::max_abs_diff(model->forward(in, text, attn), silent_a), 0.0);

  // A model without the branch refuses image tokens and image K/V.
  WanDiT plain(dit_preset("tiny"));
  EXPECT_THROW(plain->encode_image(tokens_a), c10::Error);
  auto plain_text = plain->encode_text(torch::randn({1, 3, c.text_dim}));
  plain_text.image = text.image;
  DitInput plain_in = in;
  plain_in.tracks = torch::zeros({1, c.packed_track_channels(), 2, 4, 4});
  EXPECT_THROW(plain->forward(plain_in, plain_text, attn), c10::Error);
}

TEST(DitI2vForward, StreamingTakesTheImageTokensOnce) {
  const DitConfig c = dit_preset("tiny-clip");
  WanDiT model(c);
  test::randomize(model, 13);
  StreamConfig sc;
  sc.seed = 3;
  auto text = torch::randn({1, 3, c.text_dim});
  auto image_latent = torch::randn({1, c.latent_channels, 4, 4});
  StreamingGenerator gen(model, sc, text, image_latent, 4, 4);
  EXPECT_THROW(gen.next_chunk(), c10::Error);  // no image tokens yet: refused, not skipped
  auto tokens = torch::randn({1, c.image_tokens, c.image_token_dim});
  gen.set_image_tokens(tokens);
  gen.set_prompt(text);  // a new prompt keeps the image's K/V
  gen.reset();           // the refused chunk drew noise
  auto a = gen.next_chunk();
  gen.reset();
  gen.set_image_tokens(torch::randn({1, c.image_tokens, c.image_token_dim}));
  auto b = gen.next_chunk();  // same seed and prompt, other image tokens
  EXPECT_GT(test::max_abs_diff(a, b), 1e-4);
  gen.reset();
  gen.set_image_tokens(tokens);
  EXPECT_EQ(test::max_abs_diff(gen.next_chunk(), a), 0.0);
}
