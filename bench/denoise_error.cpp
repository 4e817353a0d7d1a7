// Where a motion model's denoiser stands, on the world's validation clips with every track given: the error of its
// clean-latent estimate x0 = x_s - s * v at each noise level s on the later latent frames (the first is given by the
// I2V condition), with the tracks and without them (no tracks, no hint in the condition), beside two estimates that
// need no model: the noisy input rescaled (x_s / (1 - s)) and the still first frame. A teacher that has learned
// motion is clearly better with the tracks than without; one whose two columns agree ignores them, however low its
// flow loss. Also the error of the later frames' condition latents themselves (the latent copy or the warp hint)
// against the truth: how much a hint says before any training. One JSON line per level, then one for the hint.
//   denoise_error --model runs/teacher/model [--clips 8] [--levels 0.1,0.3,0.6,0.9]
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "motionstream/model/motion_model.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/train/motion_batch.h"
#include "motionstream/train/training_run.h"
#include "motionstream/util/cli_args.h"

using namespace ms;

namespace {

std::vector<double> parse_levels(const std::string& list) {
  std::vector<double> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stod(item));
  return out;
}

// Mean squared error over the later latent frames (1..T-1). estimate, x0: [B, C, T, h, w]
double later_error(const at::Tensor& estimate, const at::Tensor& x0) {
  const int64_t T = x0.size(2);
  return (estimate.narrow(2, 1, T - 1) - x0.narrow(2, 1, T - 1)).pow(2).mean().item<double>();
}

}  // namespace

int main(int argc, char** argv) try {
  CliArgs args(argc, argv, 1, {"model", "clips", "levels", "width", "height", "frames", "photos"});
  torch::NoGradGuard no_grad;
  LoadedMotionModel loaded = load_motion_model(args.str("model", ""));
  MotionModel& model = loaded.model;
  model->eval();
  const DitConfig& dit = model->dit->config();
  LatentCodec codec(loaded.codec_folder);
  const auto spec = world_spec(args.integer("width", 128), args.integer("height", 128), args.integer("frames", 17));
  auto photos = open_photo_bank(args.str("photos", ""));
  MotionDataConfig all;
  all.text_dropout = all.track_dropout = all.frame_zero_prob = 0;

  enum { kWithMotion, kWithoutMotion, kRescaled, kStill, kColumns };
  const std::vector<double> levels = parse_levels(args.str("levels", "0.1,0.3,0.6,0.9"));
  std::vector<std::array<double, kColumns>> sums(levels.size(), std::array<double, kColumns>{});
  double hint_sum = 0;
  const auto seeds = world::validation_seeds(args.integer("clips", 8));
  for (uint64_t seed : seeds) {
    const world::Clip clip = world::render_clip(spec, seed, photos.get());
    auto gen = at::detail::createCPUGenerator(seed);
    const at::Tensor latents = codec.encode(clip.video.unsqueeze(0));  // [1, C, T, h, w]
    const MotionBatch b = make_motion_batch({&clip}, {latents[0]}, dit, all, gen, &codec);
    const int64_t T = b.x0.size(2), C = b.x0.size(1);
    const at::Tensor still = b.x0.narrow(2, 0, 1).expand_as(b.x0);
    hint_sum += later_error(b.condition.narrow(1, 4, C), b.x0);  // zeros where the model takes no hint
    DitInput with_motion;
    with_motion.condition = b.condition;
    with_motion.tracks = b.tracks;
    DitInput without_motion;
    without_motion.condition = condition_without_motion(b.condition);
    without_motion.tracks = at::zeros_like(b.tracks);
    const auto context = model->encode_prompts(b.captions);
    auto attn = MaskedSelfAttention::bidirectional({T, b.x0.size(3) / 2, b.x0.size(4) / 2}, dit.head_dim());
    for (size_t i = 0; i < levels.size(); ++i) {
      const double s = levels[i];
      const at::Tensor noisy = (1 - s) * b.x0 + s * at::randn(b.x0.sizes(), gen);
      auto x0_estimate = [&](DitInput in) {
        in.noisy = noisy;
        in.timesteps = at::full({1, T}, s * 1000.0);
        return noisy - s * model->dit->forward(in, context, attn);
      };
      sums[i][kWithMotion] += later_error(x0_estimate(with_motion), b.x0);
      sums[i][kWithoutMotion] += later_error(x0_estimate(without_motion), b.x0);
      sums[i][kRescaled] += later_error(noisy / (1 - s), b.x0);
      sums[i][kStill] += later_error(still, b.x0);
    }
  }
  const double n = static_cast<double>(seeds.size());
  for (size_t i = 0; i < levels.size(); ++i)
    std::cout << nlohmann::json{{"level", levels[i]},
                                {"model_with_motion", sums[i][kWithMotion] / n},
                                {"model_without_motion", sums[i][kWithoutMotion] / n},
                                {"rescaled_input", sums[i][kRescaled] / n},
                                {"still_first_frame", sums[i][kStill] / n}}
                     .dump()
              << std::endl;
  const std::string hint = dit.track_warp_hint ? "warp" : dit.track_latent_copy ? "latent copy" : "none";
  std::cout << nlohmann::json{{"hint", hint}, {"hint_later_error", hint_sum / n}}.dump() << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::cerr << "denoise_error: " << e.what() << std::endl;
  return 1;
}
