// The MotionStream track head: a 1x1x1 Conv3d from the packed ID-embedding raster
// (4 pixel frames x id_dim channels per latent frame) to the track channels the DiT concatenates to its input.
#pragma once

#include <torch/nn/module.h>

namespace ms {

class TrackHeadImpl : public torch::nn::Module {
 public:
  TrackHeadImpl(int64_t packed_channels, int64_t out_channels);
  // packed: [B, packed_channels, F, H, W] -> [B, out_channels, F, H, W]
  at::Tensor forward(const at::Tensor& packed);
  at::Tensor weight;  // [out, packed, 1, 1, 1] (Conv3d layout)
  at::Tensor bias;    // [out]
};
TORCH_MODULE(TrackHead);

}  // namespace ms
