// The TAEHV-style autoencoder: layout, frame bookkeeping, streaming decode against whole-sequence decode.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <torch/torch.h>

#include "motionstream/model/vae/tiny_vae.h"
#include "test_util.h"

using namespace ms;

namespace {
void randomize(TinyVae& vae, uint64_t seed) {  // biases too, so that zero inputs still carry signal
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& p : vae->parameters()) {
    const double fan_in = p.dim() > 1 ? static_cast<double>(p.numel() / p.size(0)) : 1.0;
    p.copy_(at::empty(p.sizes()).normal_(0.0, 1.0, gen) * std::sqrt(1.0 / fan_in));
  }
}

// [count, 9, 3, 32, 48] smooth random clips (a coarse random field upsampled), so that a few principal components of
// their pixel groups carry most of the signal.
at::Tensor smooth_clips(int64_t count, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto coarse = at::empty({count * 9, 3, 4, 6}).uniform_(0, 1, gen);
  return at::upsample_bilinear2d(coarse, {32, 48}, false).view({count, 9, 3, 32, 48});
}
}  // namespace

TEST(TinyVae, PublicWanPresetUsesTheTaehvLayout) {
  TinyVae vae(tiny_vae_preset("taehv-wan"));
  std::map<std::string, std::vector<int64_t>> shapes;
  int64_t decoder_params = 0;
  for (const auto& p : vae->named_parameters()) {
    shapes[p.key()] = p.value().sizes().vec();
    if (p.key().rfind("decoder.", 0) == 0) decoder_params += p.value().numel();
  }
  EXPECT_EQ(shapes.at("decoder.1.weight"), (std::vector<int64_t>{256, 16, 3, 3}));
  EXPECT_EQ(shapes.at("decoder.3.conv.0.weight"), (std::vector<int64_t>{256, 512, 3, 3}));
  EXPECT_EQ(shapes.at("decoder.7.conv.weight"), (std::vector<int64_t>{256, 256, 1, 1}));    // TGrow stride 1
  EXPECT_EQ(shapes.at("decoder.13.conv.weight"), (std::vector<int64_t>{256, 128, 1, 1}));   // TGrow stride 2
  EXPECT_EQ(shapes.at("decoder.20.weight"), (std::vector<int64_t>{64, 64, 3, 3}));
  EXPECT_EQ(shapes.at("decoder.22.weight"), (std::vector<int64_t>{3, 64, 3, 3}));
  EXPECT_EQ(shapes.at("encoder.2.conv.weight"), (std::vector<int64_t>{64, 128, 1, 1}));     // TPool stride 2
  EXPECT_EQ(shapes.at("encoder.12.conv.weight"), (std::vector<int64_t>{64, 64, 1, 1}));     // TPool stride 1
  EXPECT_EQ(shapes.at("encoder.17.weight"), (std::vector<int64_t>{16, 64, 3, 3}));
  EXPECT_EQ(shapes.count("decoder.8.bias"), 0u);  // the width changes are bias-free
  EXPECT_NEAR(decoder_params / 1e6, 9.8, 0.1);    // SPEC: ~9.8M decoder parameters
}

TEST(TinyVae, FrameBookkeepingFollowsTheOnePlusFourKLayout) {
  TinyVae vae(tiny_vae_preset("cpu"));
  torch::NoGradGuard no_grad;
  auto frames = torch::rand({2, 9, 3, 32, 48});
  auto latents = vae->encode(frames);
  EXPECT_EQ(latents.sizes(), (at::IntArrayRef{2, 3, 16, 4, 6}));
  auto back = vae->decode(latents);
  EXPECT_EQ(back.sizes(), frames.sizes());
  EXPECT_THROW(vae->encode(torch::rand({1, 8, 3, 32, 48})), c10::Error);
  EXPECT_THROW(vae->encode(torch::rand({1, 5, 3, 30, 48})), c10::Error);
  EXPECT_THROW(vae->decode(torch::rand({1, 2, 4, 4, 6})), c10::Error);
}

TEST(TinyVae, EncoderIsCausal) {
  // Latent k depends on frames up to 4k only: changing frame 5 leaves latents 0 and 1 alone.
  TinyVae vae(tiny_vae_preset("cpu"));
  randomize(vae, 2);
  torch::NoGradGuard no_grad;
  auto frames = torch::rand({1, 9, 3, 16, 16});
  auto a = vae->encode(frames);
  frames[0][5].fill_(0.5);
  auto b = vae->encode(frames);
  EXPECT_LT(test::max_abs_diff(a.narrow(1, 0, 2), b.narrow(1, 0, 2)), 1e-6);
  EXPECT_GT(test::max_abs_diff(a.narrow(1, 2, 1), b.narrow(1, 2, 1)), 1e-4);
}

TEST(TinyVae, StreamingDecodeEqualsWholeSequenceDecode) {
  TinyVae vae(tiny_vae_preset("cpu"));
  randomize(vae, 1);
  torch::NoGradGuard no_grad;
  auto latents = torch::randn({2, 5, 16, 4, 6});
  auto whole = vae->decode(latents);  // [2, 17, 3, 32, 48]
  ASSERT_EQ(whole.size(1), 17);
  StreamingDecoder stream(vae);
  std::vector<at::Tensor> pieces;
  for (int64_t t = 0; t < 5; ++t) {
    auto frames = stream.push(latents.select(1, t));
    EXPECT_EQ(frames.size(1), t == 0 ? 1 : 4);
    pieces.push_back(frames);
  }
  auto streamed = at::cat(pieces, 1);
  EXPECT_GT(whole.abs().max().item<double>(), 1e-2);  // not trivially zero
  EXPECT_LT(test::max_abs_diff(streamed, whole), 1e-5);
  stream.reset();
  EXPECT_LT(test::max_abs_diff(stream.push(latents.select(1, 0)), whole.narrow(1, 0, 1)), 1e-5);
}

// A widened decoder computes what the narrow one computed (every frame of a whole decode, and the raw output
// before the clamp), then learns: one step moves the weights through which old channels read new ones.
TEST(TinyVae, WidenedDecoderStartsFromTheNarrowOnesOutput) {
  TinyVae narrow(tiny_vae_preset("cpu"));  // decoder 64 / 32 / 16 / 16
  randomize(narrow, 2);
  TinyVae wide = widen_decoder(narrow, {64, 48, 24, 24});
  EXPECT_EQ(wide->config().decoder_widths, (std::vector<int64_t>{64, 48, 24, 24}));
  auto latents = torch::randn({2, 3, 16, 4, 6});
  {
    torch::NoGradGuard no_grad;
    const auto expected = narrow->decode(latents, /*clamp=*/false);  // [2, 9, 3, 32, 48]
    EXPECT_GT(expected.abs().max().item<double>(), 1e-2);
    EXPECT_LT(test::max_abs_diff(wide->decode(latents, false), expected), 1e-5);
    const auto frames = torch::rand({1, 9, 3, 32, 48});
    EXPECT_LT(test::max_abs_diff(wide->encode(frames), narrow->encode(frames)), 1e-6);
  }
  torch::optim::SGD sgd(wide->decoder->parameters(), 0.1);
  const auto target = torch::rand({2, 9, 3, 32, 48});
  (wide->decode(latents, false) - target).pow(2).mean().backward();
  const auto& last = *wide->decoder->ptr(wide->decoder->size() - 1)->as<torch::nn::Conv2d>();  // 24 -> RGB
  const double before = last.weight.narrow(1, 16, 8).abs().max().item<double>();
  sgd.step();
  EXPECT_EQ(before, 0.0) << "old outputs must not read the new channels at the start";
  EXPECT_GT(last.weight.narrow(1, 16, 8).abs().max().item<double>(), 0.0) << "the new channels get no gradient";

  try {
    widen_decoder(narrow, {64, 16, 16, 16});
    FAIL() << "a shrinking width was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("width 1 would shrink from 32 to 16"), std::string::npos) << e.what();
  }
}

// The linear path, fitted, makes the autoencoder the principal-component codec of the pixel groups it sees, computed
// here independently: the groups cut out by view/permute (not pixel_unshuffle), the components by an SVD (not the
// covariance's eigenvectors). Streaming decode still equals whole-sequence decode with the path on.
TEST(TinyVae, LinearPathStartsAsThePrincipalComponentCodec) {
  TinyVaeConfig config = tiny_vae_preset("cpu");
  config.linear_path = true;
  TinyVae vae(config);
  randomize(vae, 5);
  const auto clips = smooth_clips(6, 6);  // [N, F, 3, H, W]
  fit_linear_path(vae, clips, 0.5);

  const int64_t N = 6, T = 3, C = 16;
  const auto padded = at::cat({clips.narrow(1, 0, 1).expand({-1, 3, -1, -1, -1}), clips}, 1).to(at::kDouble);
  const auto rows = padded.view({N, T, 4, 3, 4, 8, 6, 8}).permute({0, 1, 4, 6, 2, 3, 5, 7}).reshape({-1, 768});
  const auto mean = rows.mean(0);
  auto [u, s, vh] = at::linalg_svd(rows - mean, false);
  const auto v = vh.narrow(0, 0, C).t();  // [768, C]
  const auto projected = (rows - mean).mm(v).mm(v.t()) + mean;
  const auto expected = projected.view({N, T, 4, 6, 4, 3, 8, 8}).permute({0, 1, 4, 5, 2, 6, 3, 7}).reshape({N, 4 * T, 3, 32, 48})
                            .narrow(1, 3, 9).to(at::kFloat);
  torch::NoGradGuard no_grad;
  const auto latents = vae->encode(clips);  // [N, T, C, 4, 6]
  const auto decoded = vae->decode(latents, /*clamp=*/false);
  EXPECT_GT((expected - clips).abs().max().item<double>(), 1e-2);  // 16 of 768 components: not lossless
  EXPECT_LT(test::max_abs_diff(decoded, expected), 1e-4);
  const auto channel_std = latents.transpose(1, 2).reshape({N, C, -1}).transpose(0, 1).reshape({C, -1}).std(1);
  EXPECT_LT((channel_std - 0.5).abs().max().item<double>(), 1e-3);  // each component scaled to latent_std

  StreamingDecoder stream(vae);
  std::vector<at::Tensor> pieces;
  for (int64_t t = 0; t < T; ++t) pieces.push_back(stream.push(latents.select(1, t)));
  EXPECT_LT(test::max_abs_diff(at::cat(pieces, 1), vae->decode(latents)), 1e-5);

  TinyVae plain(tiny_vae_preset("cpu"));
  try {
    fit_linear_path(plain, clips);
    FAIL() << "fitted a linear path the autoencoder does not have";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("linear_path"), std::string::npos) << e.what();
  }
}

// The linear decoder, refitted over a trained convolutional decoder, is the least-squares best correction of what
// that decoder leaves: the gradient of the squared error of decode's frames with respect to it vanishes (computed
// independently, by autograd through decode). Enlarging its kernel first changes nothing; the refit then lowers the
// error, leaves the encoder and so the latents alone, and streams as the whole decode does.
TEST(TinyVae, LinearDecoderFitIsTheLeastSquaresCorrectionOfTheConvolutionalDecoder) {
  TinyVaeConfig config = tiny_vae_preset("cpu");
  config.linear_path = true;
  TinyVae vae(config);
  randomize(vae, 7);
  const auto clips = smooth_clips(4, 8);  // [N, F, 3, H, W]
  fit_linear_path(vae, clips, 0.5);
  {
    torch::NoGradGuard no_grad;  // a "trained" convolutional decoder: its output conv off zero again
    auto& last = *vae->decoder->ptr(vae->decoder->size() - 1)->as<torch::nn::Conv2d>();
    last.weight.normal_(0.0, 0.02, at::detail::createCPUGenerator(9));
  }
  auto squared_error = [&](TinyVae& model) {
    torch::NoGradGuard no_grad;
    return (model->decode(model->encode(clips), /*clamp=*/false) - clips).pow(2).sum().item<double>();
  };
  auto linear_gradient_norm = [&](TinyVae& model) {  // |d error / d decoder_linear|, weight and bias together
    const auto latents = [&] { torch::NoGradGuard no_grad; return model->encode(clips); }();
    model->zero_grad();
    (model->decode(latents, /*clamp=*/false) - clips).pow(2).sum().backward();
    return at::cat({model->decoder_linear->weight.grad().flatten(), model->decoder_linear->bias.grad()}).norm().item<double>();
  };

  TinyVae wide = with_linear_path(vae, 3);
  EXPECT_EQ(wide->decoder_linear->weight.size(3), 3);
  torch::NoGradGuard outer;
  const auto latents = vae->encode(clips);
  EXPECT_LT(test::max_abs_diff(wide->decode(latents, false), vae->decode(latents, false)), 1e-6);
  {
    at::AutoGradMode grad(true);
    const double before_error = squared_error(wide), before_gradient = linear_gradient_norm(wide);
    fit_linear_decoder(wide, clips);
    const double after_error = squared_error(wide), after_gradient = linear_gradient_norm(wide);
    EXPECT_GT(before_gradient, 1.0);
    EXPECT_LT(after_gradient, 1e-4 * before_gradient);
    EXPECT_LT(after_error, 0.9 * before_error);
  }
  EXPECT_EQ(test::max_abs_diff(wide->encode(clips), latents), 0.0);

  StreamingDecoder stream(wide);
  std::vector<at::Tensor> pieces;
  for (int64_t t = 0; t < latents.size(1); ++t) pieces.push_back(stream.push(latents.select(1, t)));
  EXPECT_LT(test::max_abs_diff(at::cat(pieces, 1), wide->decode(latents)), 1e-5);

  test::expect_invalid_argument([&] { with_linear_path(wide, 1); }, "would shrink from 3 to 1");
  nlohmann::json saved = wide->config();
  EXPECT_EQ(saved.at("linear_decoder_kernel"), 3);
  EXPECT_FALSE(nlohmann::json(vae->config()).contains("linear_decoder_kernel"));  // the default is not written
  saved["linear_decoder_kernel"] = 2;
  test::expect_invalid_argument([&] { saved.get<TinyVaeConfig>(); }, "linear_decoder_kernel must be odd");
}
