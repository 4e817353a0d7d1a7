#include "motionstream/model/motion_model.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "motionstream/io/state_dict.h"

namespace fs = std::filesystem;

namespace ms {

MotionModelImpl::MotionModelImpl(const DitConfig& dit_config, std::vector<std::string> vocabulary) {
  dit = register_module("dit", WanDiT(dit_config));
  text = register_module("text", WordTextEncoder(std::move(vocabulary), dit_config.text_len, dit_config.text_dim));
}

TextKv MotionModelImpl::encode_prompts(const std::vector<std::string>& prompts) {
  return dit->encode_text(text->encode(prompts));
}

void save_motion_model(MotionModel& model, const std::string& folder, const std::string& codec_folder,
                       const nlohmann::json& extra) {
  fs::create_directories(folder);
  io::save_state_dict(*model->dit, (fs::path(folder) / "dit.safetensors").string());
  io::save_state_dict(*model->text, (fs::path(folder) / "text_encoder.safetensors").string());
  nlohmann::json j = extra;
  j["dit"] = model->dit->config();
  j["vocabulary"] = model->text->vocabulary();
  j["codec"] = codec_folder;
  std::ofstream(fs::path(folder) / "model.json") << j.dump(2) << "\n";
}

LoadedMotionModel load_motion_model(const std::string& folder, const at::Device& device) {
  const auto path = (fs::path(folder) / "model.json").string();
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot read the model description");
  LoadedMotionModel out;
  try {
    out.description = nlohmann::json::parse(in);
    out.model = MotionModel(out.description.at("dit").get<DitConfig>(),
                            out.description.at("vocabulary").get<std::vector<std::string>>());
    out.codec_folder = out.description.at("codec").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  if (fs::path(out.codec_folder).is_relative()) out.codec_folder = (fs::path(folder) / out.codec_folder).lexically_normal().string();
  io::load_state_dict(*out.model->dit, (fs::path(folder) / "dit.safetensors").string());
  io::load_state_dict(*out.model->text, (fs::path(folder) / "text_encoder.safetensors").string());
  out.model->to(device);
  out.model->eval();
  return out;
}

}  // namespace ms
