// Tiny autoencoder benchmark: streaming decode (one latent -> 4 frames, as the live stream does) and whole-clip
// encode, frames per second, on this machine. Prints JSON lines; never fails on a number.
//   vae_bench --preset cpu --width 128 --height 128 --latents 40 [--weights run/model.safetensors] [--device cuda]
#include <torch/cuda.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>

#include "motionstream/io/state_dict.h"
#include "motionstream/model/vae/tiny_vae.h"
#include "motionstream/util/cli_args.h"

using namespace ms;

int main(int argc, char** argv) try {
  CliArgs args(argc, argv, 1, {"preset", "width", "height", "latents", "weights", "device", "dtype", "threads"});
  const at::Device device(args.str("device", "cpu"));
  const auto dtype = args.str("dtype", "fp32") == "fp16" ? at::kHalf : args.str("dtype", "fp32") == "bf16" ? at::kBFloat16 : at::kFloat;
  if (device.is_cpu()) torch::set_num_threads(static_cast<int>(args.integer("threads", 1)));
  const int64_t width = args.integer("width", 128), height = args.integer("height", 128);
  const int64_t count = args.integer("latents", 40);
  TinyVae vae(tiny_vae_preset(args.str("preset", "cpu")));
  if (args.has("weights")) io::load_state_dict(*vae, args.str("weights", ""));
  vae->to(device, dtype);
  vae->eval();
  torch::NoGradGuard no_grad;
  auto now = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  auto latents = torch::randn({1, count, vae->config().latent_channels, height / 8, width / 8}, opts);

  StreamingDecoder decoder(vae);
  decoder.push(latents.select(1, 0));  // warm-up (and the single-frame first latent)
  int64_t frames = 0;
  const double t0 = now();
  for (int64_t i = 1; i < count; ++i) frames += decoder.push(latents.select(1, i)).size(1);
  const double decode_s = now() - t0;

  auto clip = torch::rand({1, 1 + 4 * 12, 3, height, width}, opts);
  vae->encode(clip);  // warm-up
  const double t1 = now();
  vae->encode(clip);
  const double encode_s = now() - t1;

  std::cout << nlohmann::json{{"bench", "tiny_vae"}, {"preset", vae->config().name}, {"device", device.str()},
                              {"width", width}, {"height", height}, {"decoded_frames", frames},
                              {"decode_fps", frames / decode_s}, {"decode_ms_per_latent", decode_s / (count - 1) * 1e3},
                              {"encode_fps", clip.size(1) / encode_s}}
                   .dump()
            << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::cerr << "vae_bench: " << e.what() << std::endl;
  return 2;
}
