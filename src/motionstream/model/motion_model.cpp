#include "motionstream/model/motion_model.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "motionstream/io/state_dict.h"
#include "motionstream/model/clip_vision_checkpoint.h"
#include "motionstream/model/umt5_prompt_encoder.h"

namespace fs = std::filesystem;

namespace ms {

void to_json(nlohmann::json& j, const Umt5TextSpec& s) {
  j = {{"kind", "umt5"}, {"weights", s.weights}, {"tokenizer", s.tokenizer}, {"cache", s.cache}, {"preset", s.preset}};
}

void from_json(const nlohmann::json& j, Umt5TextSpec& s) {
  if (j.value("kind", "") != "umt5") throw std::invalid_argument("text_encoder: kind must be \"umt5\"");
  for (const auto& item : j.items())
    if (item.key() != "kind" && item.key() != "weights" && item.key() != "tokenizer" && item.key() != "cache" &&
        item.key() != "preset")
      throw std::invalid_argument("text_encoder: unknown field '" + item.key() + "'");
  s.weights = j.at("weights").get<std::string>();
  s.tokenizer = j.at("tokenizer").get<std::string>();
  s.cache = j.value("cache", "");
  s.preset = j.value("preset", "umt5-xxl");
}

MotionModelImpl::MotionModelImpl(const DitConfig& dit_config, std::vector<std::string> vocabulary) {
  dit = register_module("dit", WanDiT(dit_config));
  text = register_module("text", WordTextEncoder(std::move(vocabulary), dit_config.text_len, dit_config.text_dim));
}

MotionModelImpl::MotionModelImpl(const DitConfig& dit_config, std::shared_ptr<Umt5PromptEncoder> umt5, Umt5TextSpec spec)
    : umt5_(std::move(umt5)), umt5_spec_(std::move(spec)) {
  if (!umt5_) throw std::invalid_argument("MotionModel: the umT5 prompt encoder is missing");
  dit = register_module("dit", WanDiT(dit_config));
}

at::Tensor MotionModelImpl::prompt_context(const std::vector<std::string>& prompts) {
  if (text) return text->encode(prompts);
  const at::Tensor weight = dit->patch_embedding->weight;
  std::vector<at::Tensor> rows;
  for (const auto& prompt : prompts) rows.push_back(umt5_->encode(prompt));  // [1, text_len, dim] each, CPU
  return at::cat(rows).to(weight.device(), weight.scalar_type());
}

void MotionModelImpl::set_clip(std::shared_ptr<ClipVisionEncoderImpl> clip, std::string weights, std::string preset) {
  clip_ = std::move(clip);
  clip_weights_ = std::move(weights);
  clip_preset_ = std::move(preset);
}

at::Tensor MotionModelImpl::image_tokens(const at::Tensor& first_frames) {
  const DitConfig& c = dit->config();
  if (!c.image_branch()) throw std::invalid_argument("image_tokens: this model has no CLIP image cross-attention");
  if (!clip_) throw std::invalid_argument("image_tokens: the model's CLIP vision weights are not set (model.json image_encoder)");
  const at::Tensor weight = dit->patch_embedding->weight;
  const auto device = clip_->pos_embedding.device();
  std::vector<at::Tensor> rows;
  at::NoGradGuard no_grad;
  for (int64_t b = 0; b < first_frames.size(0); ++b)
    rows.push_back(clip_->forward(clip_preprocess(first_frames[b].to(at::kFloat), clip_->config()).to(device)));
  return at::cat(rows).to(weight.device(), weight.scalar_type());  // [B, 257, 1280]
}

TextKv MotionModelImpl::encode_prompts(const std::vector<std::string>& prompts) {
  return dit->encode_text(prompt_context(prompts));
}

namespace {

// One shared object per key in a process, made by `open` on first use and kept while anyone holds it: a trainer's
// teacher, critic, student and EMA share one frozen encoder's weights.
template <typename T, typename Open>
std::shared_ptr<T> shared_per_process(const std::string& key, Open open) {
  static std::mutex mutex;  // one per T
  static std::map<std::string, std::weak_ptr<T>> alive;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto shared = alive[key].lock()) return shared;
  std::shared_ptr<T> made = open();
  alive[key] = made;
  return made;
}

}  // namespace

std::shared_ptr<Umt5PromptEncoder> open_umt5_prompt_encoder(const Umt5TextSpec& spec, const at::Device& device) {
  const std::string key = spec.weights + "|" + spec.tokenizer + "|" + spec.cache + "|" + spec.preset + "|" + device.str();
  return shared_per_process<Umt5PromptEncoder>(key, [&] {
    Umt5PromptEncoderOptions options;
    options.config = umt5_preset(spec.preset);
    options.device = device;
    options.dtype = device.is_cpu() ? at::kFloat : at::kBFloat16;
    options.cache_folder = spec.cache;
    return std::make_shared<Umt5PromptEncoder>(spec.weights, spec.tokenizer, options);
  });
}

std::shared_ptr<ClipVisionEncoderImpl> open_clip_vision_encoder(const std::string& weights, const at::Device& device,
                                                               const std::string& preset) {
  return shared_per_process<ClipVisionEncoderImpl>(weights + "|" + preset + "|" + device.str(), [&] {
    ClipVisionEncoder encoder = load_clip_vision_encoder(weights, clip_vision_preset(preset));
    encoder->to(device);
    return encoder.ptr();
  });
}

MotionModel same_kind_model(const MotionModelImpl& like, const DitConfig& dit_config) {
  MotionModel model = like.uses_umt5() ? MotionModel(dit_config, like.umt5(), like.umt5_spec())
                                        : MotionModel(dit_config, like.text->vocabulary());
  model->set_clip(like.clip(), like.clip_weights(), like.clip_preset());
  return model;
}

void save_motion_model(MotionModel& model, const std::string& folder, const std::string& codec_folder,
                       const nlohmann::json& extra) {
  fs::create_directories(folder);
  io::save_state_dict(*model->dit, (fs::path(folder) / "dit.safetensors").string());
  nlohmann::json j = extra;
  j["dit"] = model->dit->config();
  if (model->uses_umt5()) {
    j["text_encoder"] = model->umt5_spec();
  } else {
    io::save_state_dict(*model->text, (fs::path(folder) / "text_encoder.safetensors").string());
    j["vocabulary"] = model->text->vocabulary();
  }
  if (!model->clip_weights().empty())
    j["image_encoder"] = {{"kind", "clip"}, {"weights", model->clip_weights()}, {"preset", model->clip_preset()}};
  j["codec"] = codec_folder;
  std::ofstream(fs::path(folder) / "model.json") << j.dump(2) << "\n";
}

LoadedMotionModel load_motion_model(const std::string& folder, const at::Device& device) {
  const auto path = (fs::path(folder) / "model.json").string();
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot read the model description");
  const auto resolve = [&](const std::string& p) {
    return p.empty() || fs::path(p).is_absolute() ? p : (fs::path(folder) / p).lexically_normal().string();
  };
  LoadedMotionModel out;
  try {
    out.description = nlohmann::json::parse(in);
    const auto dit_config = out.description.at("dit").get<DitConfig>();
    if (out.description.contains("text_encoder")) {
      Umt5TextSpec spec = out.description.at("text_encoder").get<Umt5TextSpec>();
      Umt5TextSpec opened = spec;
      // Absolute, so that a model saved elsewhere (a trainer's export) still finds the files.
      const auto absolute = [&](const std::string& p) { return p.empty() ? p : fs::absolute(resolve(p)).string(); };
      opened.weights = absolute(spec.weights);
      opened.tokenizer = absolute(spec.tokenizer);
      opened.cache = absolute(spec.cache);
      out.model = MotionModel(dit_config, open_umt5_prompt_encoder(opened, device), opened);
    } else {
      out.model = MotionModel(dit_config, out.description.at("vocabulary").get<std::vector<std::string>>());
    }
    if (out.description.contains("image_encoder")) {
      const auto& image = out.description.at("image_encoder");
      const std::string weights = fs::absolute(resolve(image.at("weights").get<std::string>())).string();
      const std::string preset = image.value("preset", "clip-vit-h-14");
      out.model->set_clip(open_clip_vision_encoder(weights, device, preset), weights, preset);
    }
    out.codec_folder = resolve(out.description.at("codec").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  io::load_state_dict(*out.model->dit, (fs::path(folder) / "dit.safetensors").string());
  if (out.model->text) io::load_state_dict(*out.model->text, (fs::path(folder) / "text_encoder.safetensors").string());
  out.model->to(device);
  out.model->eval();
  return out;
}

}  // namespace ms
