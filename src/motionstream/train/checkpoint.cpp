#include "motionstream/train/checkpoint.h"

#include <torch/serialize.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "motionstream/io/state_dict.h"

namespace fs = std::filesystem;

namespace ms {

namespace {
std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}
std::vector<fs::path> complete_checkpoints(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0 &&
        fs::exists(e.path() / "state.json"))
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

Checkpoints::Checkpoints(std::string run_dir, int keep) : dir_((fs::path(run_dir) / "checkpoints").string()), keep_(keep) {}

void Checkpoints::save(int64_t step, const NamedModules& modules, const NamedOptimizers& optimizers,
                       const nlohmann::json& state) const {
  const fs::path final_dir = fs::path(dir_) / step_name(step);
  const fs::path tmp = fs::path(dir_) / (".tmp-" + step_name(step));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const auto& [name, module] : modules) io::save_state_dict(*module, (tmp / (name + ".safetensors")).string());
  for (const auto& [name, optimizer] : optimizers) torch::save(*optimizer, (tmp / (name + ".pt")).string());
  nlohmann::json s = state;
  s["step"] = step;
  std::ofstream((tmp / "state.json").string()) << s.dump(2) << "\n";  // written last: marks the folder complete
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  auto all = complete_checkpoints(dir_);
  for (size_t i = 0; i + keep_ < all.size(); ++i) fs::remove_all(all[i]);
}

std::optional<std::string> Checkpoints::latest() const {
  auto all = complete_checkpoints(dir_);
  if (all.empty()) return std::nullopt;
  return all.back().string();
}

nlohmann::json Checkpoints::load(const std::string& folder, const NamedModules& modules,
                                 const NamedOptimizers& optimizers) const {
  const fs::path dir(folder);
  const fs::path state_path = dir / "state.json";
  std::ifstream in(state_path);
  if (!in) throw std::runtime_error(state_path.string() + ": cannot read checkpoint state");
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(state_path.string() + ": corrupt checkpoint state (" + e.what() + ")");
  }
  for (const auto& [name, module] : modules) io::load_state_dict(*module, (dir / (name + ".safetensors")).string());
  // The optimizer state goes where the model is: a run checkpointed on a GPU resumes on a CPU and back.
  const auto params = modules.front().second->parameters();
  const c10::optional<at::Device> device = params.empty() ? c10::nullopt : c10::optional<at::Device>(params.front().device());
  for (const auto& [name, optimizer] : optimizers) {
    const auto path = (dir / (name + ".pt")).string();
    try {
      torch::load(*optimizer, path, device);
    } catch (const c10::Error& e) {
      throw std::runtime_error(path + ": cannot restore the optimizer: " + e.what_without_backtrace());
    }
  }
  return state;
}

}  // namespace ms
