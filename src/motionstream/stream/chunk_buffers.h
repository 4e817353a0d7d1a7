// ChunkBuffers: every per-chunk input and output of the streaming passes, allocated once and written in place, so
// that their storage never changes from chunk to chunk (what a captured CUDA graph needs; docs/ENGINE.md).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "motionstream/model/dit_config.h"

namespace ms {

struct ChunkBuffers {
  // steps: the K denoising timesteps (the clean pass at t = 0 is added); latent size H x W; options: the model's.
  ChunkBuffers(const DitConfig& config, int64_t chunk_frames, const std::vector<double>& steps, int64_t latent_h,
               int64_t latent_w, const at::TensorOptions& options);

  // Noise for the K passes of a chunk, drawn on the host (the stream's CPU generator) into noise_host, then
  // uploaded. noise_host: [K, 1, C, F, H, W] float32 on the CPU, pinned for a CUDA model;
  // noise: the same in the model's dtype on its device (the very tensor noise_host on an fp32 CPU model).
  at::Tensor noise_host, noise;
  at::Tensor latents;    // [1, C, F, H, W] the noisy latents of the current pass
  at::Tensor clean;      // [1, C, F, H, W] x0 after the last denoising pass: the chunk's output
  at::Tensor timesteps;  // [K + 1, 1, F] float32: pass k's timestep for every frame; the clean pass (t = 0) last
  at::Tensor condition;  // [1, 4 + C, F, H, W] I2V condition (image-conditioned models, else undefined)
  at::Tensor tracks;     // [1, 4 * id_dim, F, H, W] packed track raster (models with a track head, else undefined)

  // Copies noise_host to the device (asynchronously from pinned memory).
  void upload_noise();
  // Writes a packed raster [1, 4 * id_dim, F, H, W] (CPU, float32) into `tracks`; undefined = no tracks (zeros).
  void write_tracks(const at::Tensor& raster);

  int64_t passes() const { return timesteps.size(0); }  // K + 1
  // Every tensor above and the staging buffers behind them: none is ever reallocated.
  std::vector<at::Tensor> all() const;

 private:
  at::Tensor noise_device_f32_;  // [K, 1, C, F, H, W] float32 on a non-CPU device: the upload target
  at::Tensor tracks_host_;       // staging for `tracks` on a non-CPU device (pinned, model dtype)
  bool tracks_zero_ = false;     // `tracks` holds zeros already
};

}  // namespace ms
