#include "motionstream/train/training_run.h"

#include <torch/utils.h>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace ms {

void record_run_config(const std::string& run_dir, const nlohmann::json& config, const std::set<std::string>& free) {
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
      if (!stored.contains(key) || stored[key] != value)
        throw std::invalid_argument(path.string() + ": field '" + key + "' is " +
                                    (stored.contains(key) ? stored[key].dump() : "absent") + " in this run but " +
                                    value.dump() + " now; use a new run folder");
    }
  }
  std::ofstream(path) << config.dump(2) << "\n";
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

}  // namespace ms
