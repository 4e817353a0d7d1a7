// Training memory of the DiT: what one flow-matching step (forward + backward, AdamW state) holds, measured on this
// machine at a few token counts with a cut-down number of blocks, then extrapolated to a full model and a clip size.
// Prints JSON lines; never fails on a number.
//
//   train_memory --preset wan-1.3b-motion --blocks 2 --frames 1,2 --latent-h 30 --latent-w 52
//       (extrapolated to --full-frames 21 --full-latent-h 60 --full-latent-w 104: 81 frames at 832x480)
//
// Peak memory of a step = weights + gradients + optimizer state + EMA (per parameter) + activations kept for the
// backward pass (per token and block, found from the slope between two token counts) + a token-independent rest.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <malloc.h>

#include <fstream>
#include <iostream>

#include "motionstream/model/dit.h"
#include "motionstream/util/cli_args.h"

using namespace ms;
using json = nlohmann::json;

namespace {

// Resident and peak resident memory of this process, in bytes (Linux /proc).
std::pair<double, double> rss_and_peak() {
  std::ifstream status("/proc/self/status");
  std::string line;
  double rss = 0, peak = 0;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stod(line.substr(6)) * 1024.0;
    if (line.rfind("VmHWM:", 0) == 0) peak = std::stod(line.substr(6)) * 1024.0;
  }
  return {rss, peak};
}

void reset_peak() { std::ofstream("/proc/self/clear_refs") << "5"; }  // VmHWM := VmRSS

// Bytes held at the peak of one forward + backward over `frames` latent frames of an h x w latent.
double step_peak_bytes(WanDiTImpl& model, int64_t frames, int64_t h, int64_t w, const at::Tensor& text) {
  const DitConfig& c = model.config();
  DitInput in;
  in.noisy = at::randn({1, c.latent_channels, frames, h, w});
  in.timesteps = at::full({1, frames}, 500.0);
  if (c.image_condition) in.condition = at::randn({1, 4 + c.latent_channels, frames, h, w});
  if (c.track_channels > 0) in.tracks = at::randn({1, c.packed_track_channels(), frames, h, w});
  auto attention = MaskedSelfAttention::bidirectional({frames, h / 2, w / 2}, c.head_dim());
  model.zero_grad();
  const double before = rss_and_peak().first;
  reset_peak();
  const at::Tensor v = model.forward(in, model.encode_text(text), attention);
  v.square().mean().backward();
  return rss_and_peak().second - before;
}

}  // namespace

int main(int argc, char** argv) try {
  CliArgs args(argc, argv, 1, {"preset", "blocks", "frames", "latent-h", "latent-w", "full-frames", "full-latent-h",
                               "full-latent-w"}, {});
  torch::set_num_threads(1);
  // Every tensor buffer of 64 KiB and more gets its own mapping, returned to the system when freed, so that resident
  // memory follows live memory (by default glibc keeps freed blocks, and the second measurement would reuse them).
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  DitConfig config = dit_preset(args.str("preset", "wan-1.3b-motion"));
  const int64_t full_blocks = config.num_layers;
  config.num_layers = args.integer("blocks", 2);
  const int64_t h = args.integer("latent-h", 30), w = args.integer("latent-w", 52);
  const auto frames = args.integers("frames", {1, 2});
  WanDiT model(config);
  for (auto& p : model->parameters()) p.mutable_grad() = at::zeros_like(p);  // gradients exist before the first peak
  const at::Tensor text = at::randn({1, config.text_len, config.text_dim});

  std::vector<double> peaks;
  for (int64_t f : frames) {
    step_peak_bytes(*model, f, h, w, text);  // warm-up: allocator pools, lazily built tables
    peaks.push_back(step_peak_bytes(*model, f, h, w, text));
    std::cout << json{{"bench", "train_step"}, {"preset", config.name}, {"blocks", config.num_layers},
                      {"tokens", f * (h / 2) * (w / 2)}, {"peak_mib", peaks.back() / 1048576.0}}
                     .dump()
              << std::endl;
  }
  const double tokens0 = frames.front() * (h / 2) * (w / 2), tokens1 = frames.back() * (h / 2) * (w / 2);
  const double per_token_block = (peaks.back() - peaks.front()) / (tokens1 - tokens0) / config.num_layers;

  // Extrapolation: fp32 weights + gradients + AdamW (2 moments) + EMA = 20 bytes per parameter.
  DitConfig full = config;
  full.num_layers = full_blocks;
  const double params = static_cast<double>(full.parameter_count());
  const int64_t ff = args.integer("full-frames", 21), fh = args.integer("full-latent-h", 60), fw = args.integer("full-latent-w", 104);
  const double full_tokens = static_cast<double>(ff * (fh / 2) * (fw / 2));
  const double activations = per_token_block * full_tokens * full_blocks;
  std::cout << json{{"bench", "train_memory"}, {"preset", full.name}, {"parameters", params},
                    {"activation_bytes_per_token_per_block", per_token_block},
                    {"state_gib", params * 20 / 1073741824.0}, {"full_tokens", full_tokens},
                    {"activations_gib", activations / 1073741824.0},
                    {"step_gib", (params * 20 + activations) / 1073741824.0},
                    {"note", "fp32, batch 1, no activation checkpointing; bf16 activations halve the activation part"}}
                   .dump()
            << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::cerr << "train_memory: " << e.what() << "\n";
  return 2;
}
