// Pieces every training stage shares: the run folder and its bookkeeping (identity, resume, log, progress,
// checkpoints, slices), the learning-rate schedule, EMA weights, and the world's clips.
#pragma once

#include <torch/nn/module.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "motionstream/train/checkpoint.h"
#include "motionstream/train/clip_pool.h"
#include "motionstream/util/progress.h"

namespace ms {

// How much of the run this invocation may do: a run can be done in slices (a few minutes on a lent GPU, a session
// at a time on a CPU); each slice ends with a checkpoint. Negative = no limit.
struct RunLimits {
  int64_t max_steps = -1;
  double max_minutes = -1;
  bool export_now = false;  // export the model when this invocation ends, even if the run is not complete
};

// Writes run_dir/config.json, or, when the folder already holds a run, checks that `config` is the same run:
// every field but those in `free` (how long and where it computes, not what) must match. The error names the field.
// A field the stored config lacks (added to the code later) matches when `config` holds its value from `defaults`.
void record_run_config(const std::string& run_dir, const nlohmann::json& config, const std::set<std::string>& free,
                       const nlohmann::json& defaults = nlohmann::json::object());

// One invocation of a training stage over its run folder: resumes the modules and optimizers from the newest
// checkpoint, then after every step logs a JSON line (log.jsonl), redraws the progress line and checkpoints when
// `checkpoint_minutes` have passed, at the last step, and when the slice runs out. A run that is not the writer
// (a data-parallel rank other than 0) resumes and counts steps but writes nothing.
class TrainingRun {
 public:
  TrainingRun(const std::string& run_dir, const std::string& label, int64_t total_steps, double checkpoint_minutes,
              const RunLimits& limits, NamedModules modules, NamedOptimizers optimizers, bool writer = true);
  int64_t step() const { return step_; }  // the next step to run (the number of steps done)
  bool complete() const { return step_ >= total_; }
  bool wants_steps() const { return !complete() && limits_.max_steps != 0; }  // whether to enter the step loop
  bool export_due() const { return complete() || limits_.export_now; }        // whether to export when it ends
  // Counts the step just taken; false when this invocation should stop (run complete or slice over).
  bool finish_step(nlohmann::json row, const std::string& figures);

 private:
  double minutes_since(std::chrono::steady_clock::time_point t) const;
  Checkpoints checkpoints_;
  NamedModules modules_;
  NamedOptimizers optimizers_;
  int64_t total_, step_ = 0, first_step_ = 0;
  double checkpoint_minutes_;
  RunLimits limits_;
  bool writer_;
  std::ofstream log_;
  std::unique_ptr<Progress> progress_;
  std::chrono::steady_clock::time_point started_, last_checkpoint_;
};

// Linear warm-up, then a cosine from `lr` down to lr * floor at `total` steps.
double scheduled_lr(double lr, int64_t step, double warmup_steps, int64_t total, double floor = 0.1);

// ema = decay * ema + (1 - decay) * model, parameter by parameter (same architecture).
void ema_update(torch::nn::Module& ema, const torch::nn::Module& model, double decay);

// The photo bank a config names: "" = the bundled one if found, "none" = procedural textures only, else a path.
std::unique_ptr<world::PhotoBank> open_photo_bank(const std::string& option);
world::WorldSpec world_spec(int64_t width, int64_t height, int64_t frames);
// pool_size / fresh_per_step 0 = batch; render_device "" = device.
ClipPoolConfig clip_pool_config(const world::WorldSpec& spec, int64_t batch, int64_t pool_size, int64_t fresh_per_step,
                                uint64_t seed, const at::Device& device, const std::string& render_device);

}  // namespace ms
