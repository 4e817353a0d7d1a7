#include "motionstream/tracks/track_raster.h"

#include <algorithm>
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

void copy_latents_along_tracks(at::Tensor& condition, const at::Tensor& image_latent,
                               const std::vector<TrackSet>& tracks, int64_t first_latent_frame) {
  const int64_t B = condition.size(0), C = image_latent.size(1), F = condition.size(2);
  const int64_t gh = condition.size(3), gw = condition.size(4);
  TORCH_CHECK(condition.size(1) == 4 + C && image_latent.size(0) == B && image_latent.size(2) == gh &&
                  image_latent.size(3) == gw && static_cast<int64_t>(tracks.size()) == B,
              "copy_latents_along_tracks: condition ", condition.sizes(), ", image latent ", image_latent.sizes(),
              " and ", tracks.size(), " track sets do not fit together");
  for (int64_t b = 0; b < B; ++b) {
    const TrackSet& t = tracks[static_cast<size_t>(b)];
    if (t.points() == 0) continue;
    // Track pixels -> cells: the grid covers the tracks' image whatever its size.
    const at::Tensor scale = at::tensor({double(gw) / t.width, double(gh) / t.height}, at::kFloat);
    const at::Tensor cells = (t.xy.to(at::kFloat) * scale).floor().to(at::kLong);  // [T, N, 2] (x, y)
    const at::Tensor inside = (cells.select(2, 0) >= 0) & (cells.select(2, 0) < gw) & (cells.select(2, 1) >= 0) &
                              (cells.select(2, 1) < gh);
    const at::Tensor usable = t.visible & inside;  // [T, N]
    for (int64_t i = 0; i < F; ++i) {
      const int64_t l = first_latent_frame + i;
      if (l == 0) continue;  // the first frame is the image itself
      const int64_t f = std::min(4 * l, t.frames() - 1);
      const at::Tensor n = (usable[0] & usable[f]).nonzero().squeeze(1);  // [n]
      if (n.numel() == 0) continue;
      const at::Device device = condition.device();
      const at::Tensor from = cells[0].index_select(0, n).to(device), to = cells[f].index_select(0, n).to(device);
      const at::Tensor features =  // [C, n]
          image_latent[b].index({at::indexing::Slice(), from.select(1, 1), from.select(1, 0)});
      condition[b].narrow(0, 4, C).select(1, i).index_put_({at::indexing::Slice(), to.select(1, 1), to.select(1, 0)},
                                                           features.to(condition.scalar_type()));
    }
  }
}

}  // namespace ms
