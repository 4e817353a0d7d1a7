// MotionModel: a motion-conditioned video model as one unit: the Wan-layout DiT and its prompt encoder.
// On disk, a model folder holds dit.safetensors (Wan2.1 names) and model.json (DiT config, prompt encoder, and the
// autoencoder folder whose latents it works in). The prompt encoder is either
//   - "words": a small learned encoder trained with the DiT (the bundled models): its weights in
//     text_encoder.safetensors, its vocabulary in model.json; or
//   - "umt5": Wan's published umT5-XXL, frozen: model.json names its weights, tokenizer and prompt cache.
// A DiT with Wan I2V's CLIP image cross-attention also reads the first frame through a frozen CLIP ViT-H/14
// (model.json "image_encoder": {"kind": "clip", "weights": FILE}).
#pragma once

#include <torch/nn/module.h>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "motionstream/model/dit.h"
#include "motionstream/model/text_encoder.h"

namespace ms {

class Umt5PromptEncoder;
class ClipVisionEncoderImpl;

// Where a umT5 model's prompt context comes from (model.json "text_encoder"; paths relative to the model folder
// or absolute).
struct Umt5TextSpec {
  std::string weights;    // models_t5_umt5-xxl-enc-bf16.pth, or a safetensors file (Wan or Hugging Face names)
  std::string tokenizer;  // the umT5 sentencepiece model (spiece.model / tokenizer.model)
  std::string cache;      // prompt-embedding cache folder ("" = none): the encoder is loaded only on a miss
  std::string preset = "umt5-xxl";
};
void to_json(nlohmann::json& j, const Umt5TextSpec& s);
void from_json(const nlohmann::json& j, Umt5TextSpec& s);

class MotionModelImpl : public torch::nn::Module {
 public:
  // A model with its own learned word encoder (trained along with the DiT).
  MotionModelImpl(const DitConfig& dit_config, std::vector<std::string> vocabulary);
  // A model reading Wan's frozen umT5 encoder: it is not a parameter of this model, and several models (a student
  // and its EMA, a teacher and its critic) may share one.
  MotionModelImpl(const DitConfig& dit_config, std::shared_ptr<Umt5PromptEncoder> umt5, Umt5TextSpec spec);

  // prompts -> the context the DiT reads: [B, Lt, text_dim] on the DiT's device and dtype
  at::Tensor prompt_context(const std::vector<std::string>& prompts);
  // prompts -> text K/V for every block (the per-prompt part of a pass)
  TextKv encode_prompts(const std::vector<std::string>& prompts);

  // The CLIP tokens of first frames [B, 3, H, W] in [0, 1] -> [B, image_tokens, image_token_dim] on the DiT's device
  // and dtype, for StreamingGenerator::set_image_tokens / WanDiTImpl::encode_image. Throws for a model without
  // the image branch or without CLIP weights.
  at::Tensor image_tokens(const at::Tensor& first_frames);
  void set_clip(std::shared_ptr<ClipVisionEncoderImpl> clip, std::string weights, std::string preset = "clip-vit-h-14");
  std::shared_ptr<ClipVisionEncoderImpl> clip() const { return clip_; }
  const std::string& clip_weights() const { return clip_weights_; }
  const std::string& clip_preset() const { return clip_preset_; }

  bool uses_umt5() const { return static_cast<bool>(umt5_); }
  const Umt5TextSpec& umt5_spec() const { return umt5_spec_; }
  std::shared_ptr<Umt5PromptEncoder> umt5() const { return umt5_; }

  WanDiT dit{nullptr};
  WordTextEncoder text{nullptr};  // the learned word encoder; null for umT5 models

 private:
  std::shared_ptr<Umt5PromptEncoder> umt5_;
  Umt5TextSpec umt5_spec_;
  std::shared_ptr<ClipVisionEncoderImpl> clip_;  // frozen, not a parameter of this model; may be shared
  std::string clip_weights_, clip_preset_;
};
TORCH_MODULE(MotionModel);

// Opens the umT5 prompt encoder a spec names (paths as given): on `device`, bf16 on CUDA, fp32 on the CPU.
std::shared_ptr<Umt5PromptEncoder> open_umt5_prompt_encoder(const Umt5TextSpec& spec, const at::Device& device);
// The CLIP vision encoder in `weights` (Wan or Hugging Face names), float32, opened once per (file, device).
std::shared_ptr<ClipVisionEncoderImpl> open_clip_vision_encoder(const std::string& weights, const at::Device& device,
                                                               const std::string& preset = "clip-vit-h-14");
// A model of the same kind as `like` (same prompt encoder, shared when frozen) with another DiT config.
MotionModel same_kind_model(const MotionModelImpl& like, const DitConfig& dit_config);

// Writes dit.safetensors, model.json and (word encoders) text_encoder.safetensors into `folder`; `extra` joins
// model.json. umT5 paths are written as the model holds them.
void save_motion_model(MotionModel& model, const std::string& folder, const std::string& codec_folder,
                       const nlohmann::json& extra = nlohmann::json::object());
struct LoadedMotionModel {
  MotionModel model{nullptr};
  std::string codec_folder;  // as written in model.json, resolved against the model folder when relative
  nlohmann::json description;
};
LoadedMotionModel load_motion_model(const std::string& folder, const at::Device& device = at::kCPU);

}  // namespace ms
