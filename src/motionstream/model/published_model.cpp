#include "motionstream/model/published_model.h"

#include <filesystem>
#include <fstream>

#include "motionstream/io/state_dict.h"
#include "motionstream/model/umt5_prompt_encoder.h"
#include "motionstream/model/vae/tiny_vae.h"

namespace fs = std::filesystem;

namespace ms {

void import_taehv_codec(const std::string& taehv_file, const std::string& folder, const std::string& preset) {
  TinyVae vae(tiny_vae_preset(preset));
  io::load_state_dict(*vae, taehv_file);  // names and shapes checked before anything is copied
  fs::create_directories(folder);
  io::save_state_dict(*vae, (fs::path(folder) / "model.safetensors").string());
  // TAEHV encodes to and decodes from the latents the diffusion model itself uses (Wan's normalised ones), so the
  // codec's own statistics are the identity.
  const int64_t channels = vae->config().latent_channels;
  const nlohmann::json description{{"config", vae->config()},
                                   {"latent_mean", std::vector<double>(static_cast<size_t>(channels), 0.0)},
                                   {"latent_std", std::vector<double>(static_cast<size_t>(channels), 1.0)},
                                   {"source", fs::absolute(taehv_file).string()}};
  std::ofstream(fs::path(folder) / "vae.json") << description.dump(2) << "\n";
}

DitCheckpointPlan import_published_model(const PublishedFiles& files, const std::string& folder) {
  const DitConfig& config = files.config;
  if (config.image_branch() && files.clip.empty())
    throw std::invalid_argument("model " + config.name + " has the CLIP image branch: give the CLIP vision weights");
  const auto absolute = [](const std::string& p) { return p.empty() ? p : fs::absolute(p).string(); };
  for (const auto* path : {&files.dit, &files.text.weights, &files.text.tokenizer, &files.taehv})
    if (path->empty() || !fs::exists(*path))
      throw std::invalid_argument((path->empty() ? std::string("a required file") : *path) + ": not found");

  // Everything is read and checked before anything is written.
  WanDiT dit(config);
  const DitCheckpointPlan plan = load_published_dit(*dit, files.dit, {files.dit_part});
  Umt5TextSpec text = files.text;
  text.weights = absolute(text.weights);
  text.tokenizer = absolute(text.tokenizer);
  text.cache = absolute(text.cache);
  Umt5Tokenizer(text.tokenizer, umt5_preset(text.preset).text_len);  // a tokenizer that does not load stops here
  if (!files.clip.empty()) open_clip_vision_encoder(files.clip, at::kCPU, files.clip_preset);  // so does a CLIP file

  const fs::path out(folder);
  import_taehv_codec(files.taehv, (out / "codec").string(), files.taehv_preset);
  io::save_state_dict(*dit, (out / "dit.safetensors").string(), files.dtype);
  nlohmann::json description{{"dit", config},
                             {"text_encoder", text},
                             {"codec", "codec"},
                             {"source", {{"dit", absolute(files.dit)}, {"part", plan.part}, {"layout", plan.layout}}}};
  if (!files.clip.empty())
    description["image_encoder"] = {{"kind", "clip"}, {"weights", absolute(files.clip)}, {"preset", files.clip_preset}};
  std::ofstream(out / "model.json") << description.dump(2) << "\n";
  return plan;
}

}  // namespace ms
