#include "motionstream/model/track_head.h"

#include <cmath>

namespace ms {

TrackHeadImpl::TrackHeadImpl(int64_t packed_channels, int64_t out_channels) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(packed_channels));
  weight = register_parameter("weight", at::empty({out_channels, packed_channels, 1, 1, 1}).uniform_(-bound, bound));
  bias = register_parameter("bias", at::zeros({out_channels}));
}

at::Tensor TrackHeadImpl::forward(const at::Tensor& packed) {
  // A 1x1x1 convolution is a matmul over channels at every (f, h, w).
  auto w = weight.flatten(1);                          // [out, packed]
  auto x = packed.movedim(1, -1);                      // [B, F, H, W, packed]
  return at::linear(x, w, bias).movedim(-1, 1);        // [B, out, F, H, W]
}

}  // namespace ms
