#include "motionstream/model/vae/latent_codec.h"

#include <torch/utils.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "motionstream/io/state_dict.h"

namespace ms {

namespace {
std::vector<double> stats_field(const nlohmann::json& j, const char* key, const std::string& path, int64_t channels) {
  if (!j.contains(key)) throw std::runtime_error(path + ": field '" + std::string(key) + "' is missing");
  auto v = j.at(key).get<std::vector<double>>();
  if (static_cast<int64_t>(v.size()) != channels)
    throw std::runtime_error(path + ": field '" + std::string(key) + "' has " + std::to_string(v.size()) +
                             " values, the autoencoder " + std::to_string(channels) + " channels");
  return v;
}
}  // namespace

LatentCodec::LatentCodec(const std::string& folder, const at::Device& device) : folder_(folder) {
  const auto json_path = (std::filesystem::path(folder) / "vae.json").string();
  std::ifstream in(json_path);
  if (!in) throw std::runtime_error(json_path + ": cannot read the autoencoder description");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(json_path + ": not valid JSON (" + e.what() + ")");
  }
  vae_ = TinyVae(j.at("config").get<TinyVaeConfig>());
  io::load_state_dict(*vae_, (std::filesystem::path(folder) / "model.safetensors").string());
  const int64_t C = vae_->config().latent_channels;
  mean_ = at::tensor(stats_field(j, "latent_mean", json_path, C), at::kFloat);
  std_ = at::tensor(stats_field(j, "latent_std", json_path, C), at::kFloat);
  vae_->to(device);
  vae_->eval();
  mean_ = mean_.to(device);
  std_ = std_.to(device);
}

LatentCodec::LatentCodec(TinyVae vae, std::vector<double> mean, std::vector<double> stdev)
    : vae_(std::move(vae)),
      mean_(at::tensor(mean, at::kFloat)),
      std_(at::tensor(stdev, at::kFloat)) {
  const auto device = vae_->parameters().front().device();
  mean_ = mean_.to(device);
  std_ = std_.to(device);
}

at::Tensor LatentCodec::view_stats(const at::Tensor& like, int64_t dim) const {
  std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[static_cast<size_t>(dim)] = channels();
  return at::stack({mean_.view(shape), std_.view(shape)});
}

at::Tensor LatentCodec::encode(const at::Tensor& frames) {
  torch::NoGradGuard no_grad;
  auto z = vae_->encode(frames).permute({0, 2, 1, 3, 4});  // [B, C, T, h, w]
  auto stats = view_stats(z, 1);
  return ((z - stats[0]) / stats[1]).contiguous();
}

at::Tensor LatentCodec::decode(const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  auto stats = view_stats(latents, 1);
  return vae_->decode((latents * stats[1] + stats[0]).permute({0, 2, 1, 3, 4}));
}

at::Tensor LatentCodec::denormalize_frame(const at::Tensor& latent) const {
  auto stats = view_stats(latent, 1);
  return latent * stats[1] + stats[0];
}

}  // namespace ms
