// Checkpoints of a training run: <run>/checkpoints/step-00001200/{<module>.safetensors, <optimizer>.pt, state.json}.
// Written into a temporary folder and renamed into place, so a run killed mid-write keeps its last good checkpoint.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ms {

// The modules a checkpoint holds, by file name: {"model", &model}, {"ema", &ema}, ...
using NamedModules = std::vector<std::pair<std::string, torch::nn::Module*>>;
// Its optimizers, by file name: {"optimizer", &adamw}, ... Each state lands on the device of the first module.
using NamedOptimizers = std::vector<std::pair<std::string, torch::optim::Optimizer*>>;

class Checkpoints {
 public:
  explicit Checkpoints(std::string run_dir, int keep = 3);

  void save(int64_t step, const NamedModules& modules, const NamedOptimizers& optimizers,
            const nlohmann::json& state) const;
  std::optional<std::string> latest() const;  // the newest complete checkpoint folder
  // Restores the modules and the optimizer from a checkpoint folder and returns its state.json. A missing, corrupt
  // or mismatched checkpoint throws an error naming the file (each module is checked before anything is copied).
  nlohmann::json load(const std::string& folder, const NamedModules& modules, const NamedOptimizers& optimizers) const;

 private:
  std::string dir_;
  int keep_;
};

}  // namespace ms
