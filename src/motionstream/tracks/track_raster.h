// From point tracks to the model's motion input (SPEC.md section 3).
//
// Each track carries a random integer ID; its 64-d sinusoidal embedding is written into the cell of a grid at the
// VAE stride that holds the point in each frame (times visibility; several points in one cell add up).
// The pixel-frame raster is then packed 4 frames per latent frame, following the 1 + 4k latent layout.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "motionstream/tracks/track_set.h"

namespace ms {

constexpr int64_t kTrackIdRange = 4096;  // IDs are drawn uniformly from [0, kTrackIdRange)

// [N] int64 random IDs
at::Tensor draw_track_ids(int64_t points, at::Generator& gen);
// ids: [N] -> [N, dim]: [sin(id w_i) | cos(id w_i)], w_i = 10000^(-i / (dim/2)), i < dim/2
at::Tensor track_id_embedding(const at::Tensor& ids, int64_t dim);

// Raster of pixel frames `frames` (indices into the TrackSet; beyond its last frame the last frame is held) onto a
// grid_h x grid_w grid whose cells are `stride` pixels of a model image of grid_w*stride x grid_h*stride.
// Track pixels are scaled from the TrackSet's image size to that model image. -> [len(frames), grid_h, grid_w, dim]
at::Tensor rasterize_tracks(const TrackSet& tracks, const at::Tensor& ids, const std::vector<int64_t>& frames,
                            int64_t grid_h, int64_t grid_w, int64_t dim, int64_t stride = 8);

// The 4 pixel frames that latent frame f stands for: f = 0 -> {0, 0, 0, 0} (the first frame alone, repeated like
// the I2V mask), f >= 1 -> {4f - 3, 4f - 2, 4f - 1, 4f}.
std::vector<int64_t> latent_frame_pixels(int64_t latent_frame);

// The DiT's track input for latent frames [first, first + count): [1, 4 * dim, count, grid_h, grid_w],
// channel (k * dim + c) = embedding channel c of the k-th pixel frame of that latent frame.
at::Tensor packed_track_input(const TrackSet& tracks, const at::Tensor& ids, int64_t first_latent_frame,
                              int64_t latent_frames, int64_t grid_h, int64_t grid_w, int64_t dim, int64_t stride = 8);

// Wan-Move's latent trajectory guidance, written into an I2V condition [B, 4 + C, F, grid_h, grid_w] that covers
// latent frames [first_latent_frame, first_latent_frame + F): for every latent frame l >= 1 and every track visible
// on frame 0 and on pixel frame 4l (the last of l's four), the first frame's latent at the track's frame-0 cell is
// copied to its cell on that frame (latent channels only; the mask is untouched; where tracks share a cell, one of
// them wins). image_latent: [B, C, grid_h, grid_w]; tracks: one TrackSet per sample (no points: nothing copied).
void copy_latents_along_tracks(at::Tensor& condition, const at::Tensor& image_latent,
                               const std::vector<TrackSet>& tracks, int64_t first_latent_frame);

}  // namespace ms
