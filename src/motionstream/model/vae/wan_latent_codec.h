// WanLatentCodec: the Wan2.1 VAE at the project's API boundary, with the same interface as LatentCodec:
//   frames [B, F, 3, H, W] in [0, 1]  <->  normalised latents [B, 16, T, H/8, W/8], z_norm = (mu - mean) / std with
//   Wan's published per-channel statistics, i.e. the latents Wan's own pipeline hands its diffusion model.
// Inside, frames become Wan's [B, 3, F, H, W] in [-1, 1] (x * 2 - 1) and back ((x + 1) / 2, clamped).
#pragma once

#include <string>

#include "motionstream/model/vae/wan_vae.h"

namespace ms {

// The published preset with weights from `path`: Wan2.1_VAE.pth as published, or a safetensors file in the same
// names. Errors name the file and the first offending tensor.
WanVae load_wan_vae(const std::string& path, const WanVaeConfig& config = wan_vae_preset("wan-vae"));

class WanLatentCodec {
 public:
  // Weights from `path` (see load_wan_vae), on `device` in `dtype` (fp32 on CPU; bf16 or fp16 fit a GPU better).
  explicit WanLatentCodec(const std::string& path, const at::Device& device = at::kCPU, at::ScalarType dtype = at::kFloat);
  // An already built VAE (z_dim must be 16: the statistics are the published ones).
  explicit WanLatentCodec(WanVae vae);

  // frames [B, F, 3, H, W] in [0, 1], F = 1 + 4k -> [B, 16, 1 + k, H/8, W/8] normalised (no gradient)
  at::Tensor encode(const at::Tensor& frames);
  // [B, 16, T, h, w] normalised -> frames [B, 1 + 4(T-1), 3, 8h, 8w] in [0, 1]
  at::Tensor decode(const at::Tensor& latents);
  // one latent frame [B, 16, h, w] normalised -> the raw mu a WanStreamingDecoder takes
  at::Tensor denormalize_frame(const at::Tensor& latent) const;

  // Pixel conventions: ours [B, F, 3, H, W] in [0, 1] <-> Wan's [B, 3, F, H, W] in [-1, 1] (clamped on the way back).
  static at::Tensor to_wan_frames(const at::Tensor& frames);
  static at::Tensor from_wan_frames(const at::Tensor& frames);

  WanVae& vae() { return vae_; }
  int64_t channels() const { return vae_->config().z_dim; }

 private:
  at::Tensor stats(const at::Tensor& like) const;  // [2, 1, 16, 1, ...]: mean and std along dim 1 of `like`
  WanVae vae_{nullptr};
  at::Tensor mean_, std_;  // [16]
};

}  // namespace ms
