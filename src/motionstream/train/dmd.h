// Stage 3: Self-Forcing with distribution matching distillation (DMD).
//
// The student generates whole clips autoregressively through the SAME KvCache as inference (sink + rolling window):
// each chunk starts from noise and is denoised with re-noising between steps, but stops at one random step whose
// x0 keeps its gradient; its clean pass then commits the detached result as context. The clip is noised to a random
// level; the teacher (real score, joint guidance) and a critic (fake score, trained with the plain flow loss on the
// student's clips) predict x0; the student is pushed along (fake - real) / mean|x - real|:
//   loss = 0.5 || x - stopgrad(x - grad) ||^2.
// The critic takes `critic_steps` updates per student update.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "motionstream/train/vae_trainer.h"

namespace ms {

struct DmdConfig {
  std::string student = "models/student-128/causal/model";  // causal-init result (a model folder)
  std::string teacher = "models/teacher-128/run/model";     // the real score; also initialises the critic
  int64_t width = 128, height = 128, frames = 21;
  int64_t chunk_frames = 3;
  std::vector<int64_t> sinks{1}, windows{1};
  int64_t student_steps = 3;
  double student_shift = 5.0, score_shift = 5.0;
  double min_timestep = 20, max_timestep = 980;             // DMD noise levels, after the shift
  std::string guidance = "joint";
  double text_weight = 3.0, motion_weight = 1.5;
  int64_t min_tracks = 1, max_tracks = 64;
  int64_t batch = 2, pool_size = 0, fresh_per_step = 0;
  int64_t steps = 2000;                                     // student updates
  int64_t critic_steps = 5;
  double lr = 2e-5, critic_lr = 4e-6, grad_clip = 10.0, ema = 0.99;
  double checkpoint_minutes = 5.0;
  uint64_t seed = 0;
  std::string device = "cpu", render_device, photos;
  // Data parallel (docs/TRAINING.md): `batch` is the global batch, split evenly over world_size processes.
  int64_t rank = 0, world_size = 1, master_port = 29500;
  std::string master_addr = "127.0.0.1";
  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DmdConfig, student, teacher, width, height, frames, chunk_frames, sinks,
                                                windows, student_steps, student_shift, score_shift, min_timestep,
                                                max_timestep, guidance, text_weight, motion_weight, min_tracks,
                                                max_tracks, batch, pool_size, fresh_per_step, steps, critic_steps, lr,
                                                critic_lr, grad_clip, ema, checkpoint_minutes, seed, device,
                                                render_device, photos, rank, world_size, master_port, master_addr)

// Trains into run_dir (resuming); at config.steps exports the EMA student to run_dir/model. Returns the step reached.
int64_t train_dmd(const DmdConfig& config, const std::string& run_dir, const RunLimits& limits = {});

}  // namespace ms
