// Stage 1: the bidirectional teacher. A motion-conditioned Wan-layout DiT (image-to-video + track channels) and its
// prompt encoder, trained with the rectified-flow loss (timestep shift 6) on the world's clips in the autoencoder's
// normalised latent space, with text and track dropout (what guidance needs) and random-frame track zeroing.
// AdamW, warm-up + cosine, gradient clipping, EMA; checkpoints and exact resume like every stage.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "motionstream/train/motion_batch.h"
#include "motionstream/train/vae_trainer.h"

namespace ms {

struct TeacherTrainConfig {
  std::string dit_preset = "cpu-small";
  std::string codec = "models/tiny-vae-128";  // autoencoder folder (model.safetensors + vae.json)
  int64_t width = 128, height = 128, frames = 17;
  int64_t batch = 8, pool_size = 0, fresh_per_step = 0;
  int64_t steps = 100000;
  double lr = 3e-4, weight_decay = 0.01, grad_clip = 1.0, warmup_steps = 500, ema = 0.999;
  double shift = 6.0;
  // Fraction of training noise levels drawn uniformly instead of through the shift: the shift spends most steps at
  // high noise, and a sampler's last steps (and the causal init's teacher trajectories) need the low ones too.
  double uniform_fraction = 0.0;
  int64_t min_tracks = 1, max_tracks = 64;
  double text_dropout = 0.1, track_dropout = 0.1, frame_zero_prob = 0.2;
  bool track_latent_copy = false;  // DitConfig::track_latent_copy: the first frame's latent copied along the tracks
  bool track_warp_hint = false;    // DitConfig::track_warp_hint: the first frame warped along the tracks, encoded
  std::string init_from;           // a model folder whose weights a new run starts from ("" = random init)
  // Prompts through Wan's frozen umT5-XXL instead of a learned word encoder (published weights and tokenizer; the
  // prompt cache keeps the 5.7B encoder from running twice for a caption). "" = the learned word encoder.
  std::string umt5, umt5_tokenizer, prompt_cache;
  double checkpoint_minutes = 5.0;
  int64_t validate_every = 500, validation_clips = 8;
  uint64_t seed = 0;
  std::string device = "cpu", render_device, photos;
  // Data parallel (docs/TRAINING.md): `batch` is the global batch, split evenly over world_size processes.
  int64_t rank = 0, world_size = 1, master_port = 29500;
  std::string master_addr = "127.0.0.1";

  MotionDataConfig data() const { return {min_tracks, max_tracks, text_dropout, track_dropout, frame_zero_prob}; }
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TeacherTrainConfig, dit_preset, codec, width, height, frames, batch,
                                                pool_size, fresh_per_step, steps, lr, weight_decay, grad_clip,
                                                warmup_steps, ema, shift, uniform_fraction, min_tracks, max_tracks, text_dropout,
                                                track_dropout, frame_zero_prob, track_latent_copy, track_warp_hint, init_from,
                                                umt5, umt5_tokenizer, prompt_cache,
                                                checkpoint_minutes, validate_every,
                                                validation_clips, seed, device, render_device, photos, rank,
                                                world_size, master_port, master_addr)

// Noise levels s in [0, 1] for `count` training samples: uniform u warped by the shift, s = k u / (1 + (k - 1) u),
// except a `uniform_fraction` of them left at u (no extra draw when it is 0, so older runs replay exactly). [count]
at::Tensor training_noise_levels(int64_t count, double shift, double uniform_fraction, at::Generator& gen);

// Trains into run_dir, resuming from its newest checkpoint. When the run reaches config.steps, exports the EMA
// model to run_dir/model (save_motion_model). Returns the step reached.
int64_t train_teacher(const TeacherTrainConfig& config, const std::string& run_dir, const RunLimits& limits = {});

}  // namespace ms
