// Pieces every training stage shares: the run folder's identity, the learning-rate schedule, EMA weights.
#pragma once

#include <torch/nn/module.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace ms {

// Writes run_dir/config.json, or, when the folder already holds a run, checks that `config` is the same run:
// every field but those in `free` (how long and where it computes, not what) must match. The error names the field.
void record_run_config(const std::string& run_dir, const nlohmann::json& config, const std::set<std::string>& free);

// Linear warm-up, then a cosine from `lr` down to lr * floor at `total` steps.
double scheduled_lr(double lr, int64_t step, double warmup_steps, int64_t total, double floor = 0.1);

// ema = decay * ema + (1 - decay) * model, parameter by parameter (same architecture).
void ema_update(torch::nn::Module& ema, const torch::nn::Module& model, double decay);

}  // namespace ms
