// Training the tiny video autoencoder on clips rendered by the world, on the fly.
//
// Loss: L1 on pixels + L1 on spatial gradients (edges stay sharp) + a small L2 pull on the latents (keeps their
// scale near 1 for the diffusion model). AdamW, gradient clipping, checkpoints every few minutes; a run resumes
// from its newest checkpoint to the same result as an uninterrupted run (clip seeds and noise depend on the step).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "motionstream/model/vae/tiny_vae.h"
#include "motionstream/train/training_run.h"

namespace ms {

struct VaeTrainConfig {
  std::string preset = "cpu";  // tiny_vae_preset
  // An exported autoencoder folder (vae.json + model.safetensors) to start from instead of `preset`'s random weights.
  std::string init;
  // false: only the decoder learns (needs `init`). The latent space, and so every diffusion model trained in it,
  // stays as it was: the export keeps the init's latent statistics and a better decoder drops into those models.
  bool train_encoder = true;
  // Decoder stage widths (4, see TinyVaeConfig); empty = those of `init` or `preset`. With `init`, each may only
  // grow: the init's decoder is widened so that it starts from exactly what it computed (widen_decoder).
  std::vector<int64_t> decoder_widths;
  // Add a linear path (TinyVaeConfig.linear_path) fitted to world clips before the first step, so that training
  // starts from the best linear codec of the latent's size; kept as it is when `init` already has one.
  bool linear_path = false;
  // The linear decoder's kernel (TinyVaeConfig.linear_decoder_kernel); 0 = that of `init` (1 for a new path). A
  // larger kernel than init's is fitted at the first step (fit_linear_decoder) without touching the encoder.
  int64_t linear_decoder_kernel = 0;
  int64_t width = 128, height = 128, frames = 17, batch = 4;
  // Rendered clips live in a pool of `pool_size`; each step renders `fresh_per_step` new ones into it and trains on
  // `batch` drawn from it. 0 = batch (every clip used once). A pool pays off where rendering, not the model, is
  // the bottleneck (a GPU).
  int64_t pool_size = 0, fresh_per_step = 0;
  int64_t steps = 20000;
  double lr = 1e-3, weight_decay = 1e-4, grad_clip = 1.0, warmup_steps = 200;
  // loss = l1_weight * L1 + mse_weight * MSE + gradient_weight * L1 of spatial gradients + latent_weight * mean z^2
  double l1_weight = 1.0, mse_weight = 0.0, gradient_weight = 0.5, latent_weight = 1e-3;
  double checkpoint_minutes = 3.0;
  int64_t validate_every = 500, validation_clips = 8;
  uint64_t seed = 0;
  std::string device = "cpu";
  std::string render_device;  // where the world renders clips; empty = `device`
  std::string photos;  // data/photos.safetensors; empty = look for the bundled one, "none" = procedural only
  // Data parallel (docs/TRAINING.md): `batch` is the global batch, split evenly over world_size processes.
  int64_t rank = 0, world_size = 1, master_port = 29500;
  std::string master_addr = "127.0.0.1";
  int64_t pool() const { return pool_size > 0 ? pool_size : batch; }
  int64_t fresh() const { return fresh_per_step > 0 ? fresh_per_step : batch; }
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VaeTrainConfig, preset, init, train_encoder, decoder_widths, linear_path,
                                                linear_decoder_kernel, width, height, frames,
                                                batch, pool_size, fresh_per_step, steps, lr, weight_decay, grad_clip,
                                                warmup_steps, l1_weight, mse_weight, gradient_weight, latent_weight, checkpoint_minutes,
                                                validate_every, validation_clips, seed, device, render_device, photos,
                                                rank, world_size, master_port, master_addr)

// Mean PSNR (dB) of reconstructions of the world's validation clips. frames: [N, F, 3, H, W] in [0, 1].
double psnr(const at::Tensor& a, const at::Tensor& b);

// Round-trip PSNR (dB) of the world's first `clips` validation clips, `frames` frames at width x height, rendered on
// `render_on`: {"mean": per clip, then averaged (the training log's val_psnr), "by_frame": [F] over the pooled error,
// "by_clip": [{seed, psnr, caption}]}.
nlohmann::json validation_reconstruction(TinyVae& vae, const world::PhotoBank* photos, int64_t clips, int64_t width,
                                         int64_t height, int64_t frames, const at::Device& render_on);

// Round-trip PSNR (dB) of every photo of the bank, panned and zoomed by the world's camera (photo_camera_scene),
// `frames` frames at width x height: {"mean": dB, "photos": {name: {"pan": dB, "zoom": dB}}}.
nlohmann::json photo_reconstruction(TinyVae& vae, const world::PhotoBank& photos, int64_t width, int64_t height,
                                    int64_t frames);

// Trains into run_dir (config.json, log.jsonl, checkpoints/), resuming from its newest checkpoint if there is one.
// When the run reaches config.steps, writes run_dir/model.safetensors and run_dir/vae.json (config + per-channel
// latent mean/std + validation PSNR, and the photo PSNR where there is a photo bank). Returns the step reached.
int64_t train_vae(const VaeTrainConfig& config, const std::string& run_dir, const RunLimits& limits = {});

// Per-channel latent statistics of the validation clips: {"latent_mean": [...], "latent_std": [...]}.
nlohmann::json latent_statistics(TinyVae& vae, const VaeTrainConfig& config);

}  // namespace ms
