#include "motionstream/train/training_run.h"

#include <torch/utils.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

namespace ms {

void record_run_config(const std::string& run_dir, const nlohmann::json& config, const std::set<std::string>& free,
                       const nlohmann::json& defaults) {
  const fs::path path = fs::path(run_dir) / "config.json";
  fs::create_directories(run_dir);
  if (fs::exists(path)) {
    std::ifstream in(path);
    nlohmann::json stored;
    try {
      stored = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(path.string() + ": corrupt run config (" + e.what() + ")");
    }
    for (const auto& [key, value] : config.items()) {
      if (free.count(key)) continue;
      // A field added to the config after the run began counts as its default there.
      const bool same = stored.contains(key) ? stored[key] == value : defaults.contains(key) && defaults[key] == value;
      if (!same)
        throw std::invalid_argument(path.string() + ": field '" + key + "' is " +
                                    (stored.contains(key) ? stored[key].dump() : "absent") + " in this run but " +
                                    value.dump() + " now; use a new run folder");
    }
  }
  std::ofstream(path) << config.dump(2) << "\n";
}

TrainingRun::TrainingRun(const std::string& run_dir, const std::string& label, int64_t total_steps,
                         double checkpoint_minutes, const RunLimits& limits, NamedModules modules,
                         NamedOptimizers optimizers, bool writer)
    : checkpoints_(run_dir),
      modules_(std::move(modules)),
      optimizers_(std::move(optimizers)),
      total_(total_steps),
      checkpoint_minutes_(checkpoint_minutes),
      limits_(limits),
      writer_(writer) {
  if (auto latest = checkpoints_.latest()) {
    step_ = checkpoints_.load(*latest, modules_, optimizers_).at("step").get<int64_t>();
    if (writer_) std::fprintf(stderr, "resuming %s from step %lld\n", run_dir.c_str(), static_cast<long long>(step_));
  }
  first_step_ = step_;
  if (writer_) log_.open(fs::path(run_dir) / "log.jsonl", std::ios::app);
  progress_ = std::make_unique<Progress>(label, total_, step_);
  started_ = last_checkpoint_ = std::chrono::steady_clock::now();
}

double TrainingRun::minutes_since(std::chrono::steady_clock::time_point t) const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count() / 60.0;
}

bool TrainingRun::finish_step(nlohmann::json row, const std::string& figures) {
  ++step_;
  row["step"] = step_;
  if (writer_) {
    log_ << row.dump() << "\n";
    progress_->update(step_, figures);
  }
  const bool slice_over = (limits_.max_steps >= 0 && step_ - first_step_ >= limits_.max_steps) ||
                          (limits_.max_minutes >= 0 && minutes_since(started_) >= limits_.max_minutes);
  if (writer_ && (minutes_since(last_checkpoint_) >= checkpoint_minutes_ || complete() || slice_over)) {
    log_.flush();
    checkpoints_.save(step_, modules_, optimizers_, nlohmann::json::object());
    last_checkpoint_ = std::chrono::steady_clock::now();
  }
  if (complete() || slice_over) {
    if (writer_) progress_->finish(figures);
    return false;
  }
  return true;
}

double scheduled_lr(double lr, int64_t step, double warmup_steps, int64_t total, double floor) {
  const double warm = std::min(1.0, static_cast<double>(step + 1) / std::max(1.0, warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, total)));
  return lr * warm * (floor + (1.0 - floor) * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

void ema_update(torch::nn::Module& ema, const torch::nn::Module& model, double decay) {
  torch::NoGradGuard no_grad;
  auto target = ema.parameters();
  auto source = model.parameters();
  TORCH_CHECK(target.size() == source.size(), "ema_update: the two modules differ");
  for (size_t i = 0; i < target.size(); ++i) target[i].mul_(decay).add_(source[i].detach(), 1.0 - decay);
}

std::unique_ptr<world::PhotoBank> open_photo_bank(const std::string& option) {
  if (option == "none") return nullptr;
  const std::string path = option.empty() ? world::find_photo_bank() : option;
  if (path.empty()) return nullptr;
  return std::make_unique<world::PhotoBank>(path);
}

world::WorldSpec world_spec(int64_t width, int64_t height, int64_t frames) {
  world::WorldSpec spec;
  spec.width = width;
  spec.height = height;
  spec.frames = frames;
  return spec;
}

ClipPoolConfig clip_pool_config(const world::WorldSpec& spec, int64_t batch, int64_t pool_size, int64_t fresh_per_step,
                                uint64_t seed, const at::Device& device, const std::string& render_device) {
  ClipPoolConfig c;
  c.spec = spec;
  c.batch = batch;
  c.pool = pool_size > 0 ? pool_size : batch;
  c.fresh = fresh_per_step > 0 ? fresh_per_step : batch;
  c.seed = seed;
  c.render_device = render_device.empty() ? device : at::Device(render_device);
  return c;
}

}  // namespace ms
