// Helpers shared by the tests.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "motionstream/io/safetensors.h"
#include "motionstream/model/dit.h"
#include "motionstream/stream/streaming_generator.h"

namespace ms::test {

// `call` throws std::invalid_argument whose message contains `text`.
inline void expect_invalid_argument(const std::function<void()>& call, const std::string& text) {
  try {
    call();
    ADD_FAILURE() << "no error for " << text;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

// Every parameter random, including the head and the track-channel patch weights that training starts at zero,
// so that every input path visibly moves the output.
inline void randomize(WanDiT& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& item : model->named_parameters()) {
    auto& p = item.value();
    const std::string& name = item.key();
    if (name.find("norm") != std::string::npos) {
      p.copy_(at::empty(p.sizes()).normal_(1.0, 0.1, gen));
    } else if (p.dim() >= 2 && name.find("modulation") == std::string::npos) {
      const double fan_in = static_cast<double>(p.numel() / p.size(0));
      p.copy_(at::empty(p.sizes()).uniform_(-1.0, 1.0, gen) * std::sqrt(3.0 / fan_in));
    } else {
      p.copy_(at::empty(p.sizes()).normal_(0.0, 0.1, gen));
    }
  }
}

// A stream over a freshly initialised model of config c (chunks of `chunk` latent frames, sink 1, window 1, a random
// 2-token prompt), for tests of what each chunk is fed.
inline std::unique_ptr<StreamingGenerator> tiny_stream(const DitConfig& c, const at::Tensor& image_latent,
                                                       int64_t chunk) {
  WanDiT model(c);
  init_dit_weights(*model, 0);
  model->eval();
  StreamConfig sc;
  sc.layout = {chunk, 1, 1};
  return std::make_unique<StreamingGenerator>(model, sc, at::randn({1, 2, c.text_dim}), image_latent,
                                              image_latent.size(2), image_latent.size(3));
}

inline std::filesystem::path temp_dir(const std::string& name) {
  const char* root = std::getenv("MS_TEST_TMP");
  auto dir = std::filesystem::path(root ? root : std::filesystem::temp_directory_path().string()) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Largest difference between the tensors named `name` in two safetensors files.
inline double max_tensor_diff(const io::SafetensorsFile& a, const io::SafetensorsFile& b, const std::string& name) {
  auto x = a.to_float(a.at(name)), y = b.to_float(b.at(name));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(x[i] - y[i])));
  return worst;
}

// Largest difference between same-named tensors of two safetensors files (every tensor of `a` must be in `b`).
inline double max_safetensors_diff(const std::filesystem::path& a, const std::filesystem::path& b) {
  io::SafetensorsFile fa(a.string()), fb(b.string());
  double worst = 0;
  for (const auto& t : fa.tensors()) worst = std::max(worst, max_tensor_diff(fa, fb, t.name));
  return worst;
}

}  // namespace ms::test
