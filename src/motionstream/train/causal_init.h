// Stage 2: causal initialisation. The bidirectional teacher samples whole clips (Euler ODE, joint guidance) from
// the world's first frames, tracks and captions; the causal student, initialised from the teacher's weights, learns
// to map the trajectory's states at its own few denoising timesteps straight to the teacher's clean result, chunk by
// chunk through the same KvCache the stream uses (previous chunks enter the cache clean, from the teacher's result).
// Sink and window sizes are drawn per step so that one student serves every setting.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "motionstream/train/vae_trainer.h"

namespace ms {

struct CausalInitConfig {
  std::string teacher = "models/teacher-128/run/model";  // a model folder (its model.json names the codec)
  // The student's (and its EMA's) first weights: a causal model folder of the teacher's shape, for a further phase
  // (longer clips, other layouts); empty = the teacher's weights.
  std::string student_init;
  int64_t width = 128, height = 128, frames = 21;          // frames: 1 + 4k with 1 + k latent frames a multiple of chunk
  int64_t chunk_frames = 3;
  std::vector<int64_t> sinks{1}, windows{1, 2};            // drawn per step
  int64_t student_steps = 3;
  double student_shift = 5.0;
  int64_t teacher_substeps = 4;                            // teacher Euler steps per student interval
  std::string guidance = "joint";
  double text_weight = 3.0, motion_weight = 1.5;
  int64_t min_tracks = 1, max_tracks = 64;
  int64_t batch = 4, pool_size = 0, fresh_per_step = 0;
  // The teacher's sampling is nearly all of a step's cost: each rollout serves this many consecutive steps (each
  // with its own student timesteps and sink/window), as Self-Forcing trains on a fixed set of teacher ODE pairs.
  int64_t rollout_reuse = 1;
  int64_t steps = 20000;
  double lr = 1e-4, weight_decay = 0.01, grad_clip = 1.0, warmup_steps = 200, ema = 0.99;
  double checkpoint_minutes = 5.0;
  int64_t validate_every = 500, validation_clips = 4;
  uint64_t seed = 0;
  std::string device = "cpu", render_device, photos;
  // Data parallel (docs/TRAINING.md): `batch` is the global batch, split evenly over world_size processes.
  int64_t rank = 0, world_size = 1, master_port = 29500;
  std::string master_addr = "127.0.0.1";

  // Student timesteps (warped by student_shift) and the teacher's finer grid through them.
  std::vector<double> student_timesteps() const;
  std::vector<double> teacher_timesteps() const;
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CausalInitConfig, teacher, student_init, width, height, frames,
                                                chunk_frames, sinks, windows, student_steps, student_shift, teacher_substeps, guidance,
                                                text_weight, motion_weight, min_tracks, max_tracks, batch, pool_size,
                                                fresh_per_step, rollout_reuse, steps, lr, weight_decay, grad_clip,
                                                warmup_steps, ema, checkpoint_minutes, validate_every, validation_clips,
                                                seed, device, render_device, photos, rank, world_size, master_port, master_addr)

// Trains into run_dir (resuming); at config.steps exports the EMA student to run_dir/model. Returns the step reached.
int64_t train_causal_init(const CausalInitConfig& config, const std::string& run_dir, const RunLimits& limits = {});

}  // namespace ms
