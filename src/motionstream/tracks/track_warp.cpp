#include "motionstream/tracks/track_warp.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace ms {

at::Tensor warp_along_tracks(const at::Tensor& image, const TrackSet& tracks, int64_t first, int64_t count,
                             const WarpOptions& options) {
  if (image.dim() != 3 || image.size(0) != 3)
    throw std::invalid_argument("warp_along_tracks: image must be [3, H, W], got " + std::to_string(image.dim()) +
                                " dims");
  if (first < 0 || count < 1)
    throw std::invalid_argument("warp_along_tracks: frames must start at >= 0 and number >= 1, got first " +
                                std::to_string(first) + ", count " + std::to_string(count));
  tracks.validate();
  const int64_t H = image.size(1), W = image.size(2);
  const at::Tensor source = image.to(at::kFloat).unsqueeze(0);  // [1, 3, H, W]
  // Track pixels -> image pixels.
  const at::Tensor scale = at::tensor({double(W) / tracks.width, double(H) / tracks.height}, at::kFloat);
  const at::Tensor xy = tracks.xy.to(at::kFloat) * scale;  // [T, N, 2]
  const double sigma = options.reach * std::min(H, W);

  // Pixel centres of the output, continuous coordinates. [H*W, 2]
  const at::Tensor ys = at::arange(H, at::kFloat) + 0.5, xs = at::arange(W, at::kFloat) + 0.5;
  const auto mesh = at::meshgrid({ys, xs}, "ij");  // each [H, W]
  const at::Tensor q = at::stack({mesh[1].reshape(-1), mesh[0].reshape(-1)}, 1);

  std::vector<at::Tensor> out;
  for (int64_t t = first; t < first + count; ++t) {
    const int64_t f = std::min(t, tracks.frames() - 1);
    const at::Tensor valid = tracks.visible[0] & tracks.visible[f];  // [N]
    const at::Tensor at_t = xy[f].index({valid}), moved = at_t - xy[0].index({valid});  // [n, 2] each
    if (at_t.size(0) == 0) {
      out.push_back(source);
      continue;
    }
    const at::Tensor d2 = (q.unsqueeze(1) - at_t.unsqueeze(0)).pow(2).sum(-1);  // [H*W, n]
    const at::Tensor w = at::exp(-d2 / (2.0 * sigma * sigma));
    const at::Tensor flow = w.matmul(moved) / (w.sum(1, true) + options.stillness);  // [H*W, 2]
    // Backward warp: the output pixel at q shows the first frame at q - flow (grid_sample's align_corners=false
    // convention: -1 and 1 are the outer pixel edges).
    const at::Tensor from = q - flow;
    const at::Tensor grid = at::stack({from.select(1, 0) / W * 2.0 - 1.0, from.select(1, 1) / H * 2.0 - 1.0}, 1)
                                .reshape({1, H, W, 2});
    out.push_back(at::grid_sampler(source, grid, /*bilinear*/ 0, /*border*/ 1, /*align_corners*/ false));
  }
  return at::cat(out).clamp(0.0, 1.0);  // [count, 3, H, W]
}

}  // namespace ms
