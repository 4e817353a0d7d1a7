// LatentCodec: a trained TinyVae plus its per-channel latent statistics: frames <-> the normalised latents the
// diffusion model works in (z_norm = (z - mean) / std, as Wan does), in the DiT's [B, C, T, h, w] layout.
#pragma once

#include <string>
#include <vector>

#include "motionstream/model/vae/tiny_vae.h"

namespace ms {

class LatentCodec {
 public:
  // folder holding model.safetensors and vae.json (as written by `motionstream train vae`)
  explicit LatentCodec(const std::string& folder, const at::Device& device = at::kCPU);
  LatentCodec(TinyVae vae, std::vector<double> mean, std::vector<double> stdev);

  // frames [B, F, 3, H, W] in [0, 1] -> [B, C, T, H/8, W/8] normalised (no gradient)
  at::Tensor encode(const at::Tensor& frames);
  // [B, C, T, h, w] normalised -> frames [B, 4T - 3, 3, 8h, 8w] in [0, 1]
  at::Tensor decode(const at::Tensor& latents);
  // one latent frame [B, C, h, w] normalised -> the raw latent a StreamingDecoder takes
  at::Tensor denormalize_frame(const at::Tensor& latent) const;

  TinyVae& vae() { return vae_; }
  int64_t channels() const { return vae_->config().latent_channels; }
  const std::string& folder() const { return folder_; }

 private:
  at::Tensor view_stats(const at::Tensor& like, int64_t dim) const;  // mean, std broadcast along `dim`
  TinyVae vae_{nullptr};
  at::Tensor mean_, std_;  // [C]
  std::string folder_;
};

}  // namespace ms
