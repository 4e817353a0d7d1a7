#include "motionstream/model/published_model.h"

#include <filesystem>
#include <fstream>

#include "motionstream/io/state_dict.h"
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

}  // namespace ms
