#include "motionstream/model/vae/wan_latent_codec.h"

#include <torch/utils.h>

#include "motionstream/io/state_dict.h"

namespace ms {

WanVae load_wan_vae(const std::string& path, const WanVaeConfig& config) {
  WanVae vae(config);
  io::load_state_dict(*vae, path);
  vae->eval();
  return vae;
}

WanLatentCodec::WanLatentCodec(const std::string& path, const at::Device& device, at::ScalarType dtype)
    : WanLatentCodec(load_wan_vae(path)) {
  vae_->to(device, dtype);
  mean_ = mean_.to(device);
  std_ = std_.to(device);
}

WanLatentCodec::WanLatentCodec(WanVae vae) : vae_(std::move(vae)) {
  TORCH_CHECK(vae_->config().z_dim == static_cast<int64_t>(kWanLatentMean.size()), "WanLatentCodec: the published ",
              "statistics cover ", kWanLatentMean.size(), " channels, the VAE has ", vae_->config().z_dim);
  const auto device = vae_->parameters().front().device();
  mean_ = at::tensor(std::vector<double>(kWanLatentMean.begin(), kWanLatentMean.end()), at::kFloat).to(device);
  std_ = at::tensor(std::vector<double>(kWanLatentStd.begin(), kWanLatentStd.end()), at::kFloat).to(device);
}

at::Tensor WanLatentCodec::stats(const at::Tensor& like) const {
  std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[1] = channels();
  return at::stack({mean_.view(shape), std_.view(shape)});
}

at::Tensor WanLatentCodec::to_wan_frames(const at::Tensor& frames) {
  TORCH_CHECK(frames.dim() == 5 && frames.size(2) == 3, "WanLatentCodec: frames must be [B, F, 3, H, W], got ",
              frames.sizes());
  return (frames * 2 - 1).permute({0, 2, 1, 3, 4});
}

at::Tensor WanLatentCodec::from_wan_frames(const at::Tensor& frames) {
  return ((frames.permute({0, 2, 1, 3, 4}) + 1) / 2).clamp(0, 1);
}

at::Tensor WanLatentCodec::encode(const at::Tensor& frames) {
  torch::NoGradGuard no_grad;
  const auto dtype = vae_->parameters().front().scalar_type();
  auto mu = vae_->encode(to_wan_frames(frames).to(dtype)).to(at::kFloat);  // [B, 16, T, h, w]
  auto s = stats(mu);
  return ((mu - s[0]) / s[1]).contiguous();
}

at::Tensor WanLatentCodec::decode(const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  const auto dtype = vae_->parameters().front().scalar_type();
  auto s = stats(latents);
  return from_wan_frames(vae_->decode((latents * s[1] + s[0]).to(dtype)).to(at::kFloat));
}

at::Tensor WanLatentCodec::denormalize_frame(const at::Tensor& latent) const {
  auto s = stats(latent);
  return latent * s[1] + s[0];
}

}  // namespace ms
