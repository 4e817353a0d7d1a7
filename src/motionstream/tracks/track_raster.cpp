#include "motionstream/tracks/track_raster.h"

#include <cmath>
#include <stdexcept>

namespace ms {

at::Tensor draw_track_ids(int64_t points, at::Generator& gen) {
  return at::randint(kTrackIdRange, {points}, gen, at::TensorOptions().dtype(at::kLong));
}

at::Tensor track_id_embedding(const at::Tensor& ids, int64_t dim) {
  const int64_t half = dim / 2;
  auto opts = at::TensorOptions().dtype(at::kDouble);
  auto freq = at::pow(10000.0, -at::arange(half, opts) / static_cast<double>(half));  // [half]
  auto args = ids.to(at::kDouble).unsqueeze(1) * freq.unsqueeze(0);                 // [N, half]
  return at::cat({at::sin(args), at::cos(args)}, 1).to(at::kFloat);
}

at::Tensor rasterize_tracks(const TrackSet& tracks, const at::Tensor& ids, const std::vector<int64_t>& frames,
                            int64_t grid_h, int64_t grid_w, int64_t dim, int64_t stride) {
  tracks.validate();
  const int64_t N = tracks.points(), T = tracks.frames();
  if (ids.dim() != 1 || ids.size(0) != N)
    throw std::invalid_argument("rasterize_tracks: " + std::to_string(N) + " tracks but " +
                                std::to_string(ids.numel()) + " IDs");
  auto raster = at::zeros({static_cast<int64_t>(frames.size()), grid_h, grid_w, dim});
  if (N == 0 || T == 0) return raster;
  auto phi = track_id_embedding(ids, dim);  // [N, dim]
  const double sx = static_cast<double>(grid_w * stride) / static_cast<double>(tracks.width);
  const double sy = static_cast<double>(grid_h * stride) / static_cast<double>(tracks.height);
  auto xy = tracks.xy.accessor<float, 3>();
  auto vis = tracks.visible.accessor<bool, 2>();
  auto out = raster.accessor<float, 4>();
  auto emb = phi.accessor<float, 2>();
  for (size_t i = 0; i < frames.size(); ++i) {
    const int64_t t = std::min(frames[i], T - 1);
    if (t < 0) throw std::invalid_argument("rasterize_tracks: negative frame index " + std::to_string(frames[i]));
    for (int64_t n = 0; n < N; ++n) {
      if (!vis[t][n]) continue;
      const auto col = static_cast<int64_t>(std::floor(xy[t][n][0] * sx / static_cast<double>(stride)));
      const auto row = static_cast<int64_t>(std::floor(xy[t][n][1] * sy / static_cast<double>(stride)));
      if (row < 0 || row >= grid_h || col < 0 || col >= grid_w) continue;  // outside the image: no cell
      for (int64_t c = 0; c < dim; ++c) out[i][row][col][c] += emb[n][c];
    }
  }
  return raster;
}

std::vector<int64_t> latent_frame_pixels(int64_t f) {
  if (f == 0) return {0, 0, 0, 0};
  return {4 * f - 3, 4 * f - 2, 4 * f - 1, 4 * f};
}

at::Tensor packed_track_input(const TrackSet& tracks, const at::Tensor& ids, int64_t first_latent_frame,
                              int64_t latent_frames, int64_t grid_h, int64_t grid_w, int64_t dim, int64_t stride) {
  std::vector<int64_t> pixel_frames;
  for (int64_t f = first_latent_frame; f < first_latent_frame + latent_frames; ++f)
    for (int64_t p : latent_frame_pixels(f)) pixel_frames.push_back(p);
  auto raster = rasterize_tracks(tracks, ids, pixel_frames, grid_h, grid_w, dim, stride);  // [4F, h, w, dim]
  return raster.view({latent_frames, 4, grid_h, grid_w, dim})
      .permute({1, 4, 0, 2, 3})  // [4, dim, F, h, w]
      .reshape({1, 4 * dim, latent_frames, grid_h, grid_w});
}

}  // namespace ms
