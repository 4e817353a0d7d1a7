// MotionModel: a trained motion-conditioned video model as one unit: the Wan-layout DiT and its prompt encoder.
// On disk, a model folder holds dit.safetensors (Wan2.1 names), text_encoder.safetensors and model.json
// (DiT config, vocabulary, text length, and the autoencoder folder whose latents it works in).
#pragma once

#include <torch/nn/module.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "motionstream/model/dit.h"
#include "motionstream/model/text_encoder.h"

namespace ms {

class MotionModelImpl : public torch::nn::Module {
 public:
  MotionModelImpl(const DitConfig& dit_config, std::vector<std::string> vocabulary);
  // prompts -> text K/V for every block (the per-prompt part of a pass)
  TextKv encode_prompts(const std::vector<std::string>& prompts);

  WanDiT dit{nullptr};
  WordTextEncoder text{nullptr};
};
TORCH_MODULE(MotionModel);

// Writes dit.safetensors, text_encoder.safetensors and model.json into `folder`; `extra` joins model.json.
void save_motion_model(MotionModel& model, const std::string& folder, const std::string& codec_folder,
                       const nlohmann::json& extra = nlohmann::json::object());
struct LoadedMotionModel {
  MotionModel model{nullptr};
  std::string codec_folder;  // as written in model.json, resolved against the model folder when relative
  nlohmann::json description;
};
LoadedMotionModel load_motion_model(const std::string& folder, const at::Device& device = at::kCPU);

}  // namespace ms
