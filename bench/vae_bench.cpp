// Autoencoder benchmark: streaming decode (one latent -> 4 frames, as the live stream does) and whole-clip
// encode, frames per second and the process's peak memory, on this machine; with --quality, reconstruction PSNR
// on the world's validation clips and on every bundled photograph panned and zoomed by the world's camera.
// Prints JSON lines; never fails on a number.
//   vae_bench --preset cpu --width 128 --height 128 --latents 40 [--weights run/model.safetensors] [--device cuda]
//   vae_bench --weights models/tiny-vae-128/model.safetensors --quality 16 [--frames 17]   (16 validation clips)
//   vae_bench --preset cpu --decoder-widths 64,48,24,24   (random weights: what a wider decoder would cost)
//   vae_bench --preset wan-vae [--weights Wan2.1_VAE.pth] ...   the full Wan2.1 VAE (random weights without --weights)
#include <torch/cuda.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "motionstream/io/state_dict.h"
#include "motionstream/model/vae/tiny_vae.h"
#include "motionstream/model/vae/wan_latent_codec.h"
#include "motionstream/train/training_run.h"
#include "motionstream/train/vae_trainer.h"
#include "motionstream/train/world.h"
#include "motionstream/util/cli_args.h"

using namespace ms;

namespace {

// Peak resident memory of this process so far (VmHWM), in MiB; -1 where /proc is not there.
double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

// Round-trip PSNR (dB) of the world's validation clips and of every photo of the bank panned and zoomed, each
// clip `frames` frames at width x height. One JSON line.
nlohmann::json reconstruction_quality(TinyVae& vae, int64_t clips, int64_t width, int64_t height, int64_t frames) {
  const auto photos = open_photo_bank("");
  const auto world = validation_reconstruction(vae, photos.get(), clips, width, height, frames,
                                               vae->parameters().front().device());
  nlohmann::json out{{"bench", "tiny_vae_quality"}, {"width", width}, {"height", height}, {"frames", frames},
                     {"validation_clips", clips}, {"validation_psnr", world["mean"]},
                     {"validation_psnr_by_frame", world["by_frame"]},
                     {"validation_psnr_by_clip", world["by_clip"]}};
  if (photos) {
    const auto photo = photo_reconstruction(vae, *photos, width, height, frames);
    out["photo_clips"] = 2 * photos->size();
    out["photo_psnr"] = photo["mean"];
    out["per_photo"] = photo["photos"];
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  CliArgs args(argc, argv, 1, {"preset", "width", "height", "latents", "weights", "device", "dtype", "threads", "quality", "frames", "decoder-widths"});
  if (args.has("quality") && !args.has("weights")) throw std::invalid_argument("--quality measures trained weights: give --weights");
  const at::Device device(args.str("device", "cpu"));
  const auto dtype = args.str("dtype", "fp32") == "fp16" ? at::kHalf : args.str("dtype", "fp32") == "bf16" ? at::kBFloat16 : at::kFloat;
  if (device.is_cpu()) torch::set_num_threads(static_cast<int>(args.integer("threads", 1)));
  const int64_t width = args.integer("width", 128), height = args.integer("height", 128);
  const int64_t count = args.integer("latents", 40);
  auto now_s = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  if (is_wan_vae_preset(args.str("preset", "cpu"))) {
    const auto config = wan_vae_preset(args.str("preset", "cpu"));
    WanVae vae = args.has("weights") ? load_wan_vae(args.str("weights", ""), config) : WanVae(config);
    vae->to(device, dtype);
    vae->eval();
    torch::NoGradGuard no_grad;
    const auto opts = at::TensorOptions().device(device).dtype(dtype);
    auto latents = torch::randn({1, config.z_dim, count, height / 8, width / 8}, opts);
    WanStreamingDecoder decoder(vae);
    decoder.push(latents.select(2, 0));  // warm-up (and the single-frame first latent)
    int64_t frames = 0;
    const double t0 = now_s();
    const std::clock_t c0 = std::clock();  // process CPU time: less noisy than wall time on a shared machine
    for (int64_t i = 1; i < count; ++i) frames += decoder.push(latents.select(2, i)).size(2);
    const double decode_s = now_s() - t0, decode_cpu_s = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    auto clip = torch::rand({1, 3, 1 + 4 * 4, height, width}, opts) * 2 - 1;
    const double t1 = now_s();
    vae->encode(clip);
    const double encode_s = now_s() - t1;
    std::cout << nlohmann::json{{"bench", "wan_vae"}, {"preset", config.name}, {"device", device.str()},
                                {"width", width}, {"height", height}, {"decoded_frames", frames},
                                {"decode_fps", frames / decode_s}, {"decode_ms_per_latent", decode_s / (count - 1) * 1e3},
                                {"decode_cpu_ms_per_latent", decode_cpu_s / (count - 1) * 1e3},
                                {"encode_fps", clip.size(2) / encode_s}, {"parameters", config.parameter_count()},
                                {"peak_rss_mib", peak_rss_mib()}}
                     .dump()
              << std::endl;
    return 0;
  }
  TinyVaeConfig config = tiny_vae_preset(args.str("preset", "cpu"));
  if (args.has("weights")) {  // the widths the weights were trained with, from their vae.json where there is one
    const auto json_path = std::filesystem::path(args.str("weights", "")).parent_path() / "vae.json";
    if (std::filesystem::exists(json_path)) config = nlohmann::json::parse(std::ifstream(json_path)).at("config").get<TinyVaeConfig>();
  }
  config.decoder_widths = args.integers("decoder-widths", config.decoder_widths);  // sizing a decoder before training it
  TinyVae vae(config);
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
  const std::clock_t c0 = std::clock();
  for (int64_t i = 1; i < count; ++i) frames += decoder.push(latents.select(1, i)).size(1);
  const double decode_s = now() - t0, decode_cpu_s = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;

  auto clip = torch::rand({1, 1 + 4 * 12, 3, height, width}, opts);
  vae->encode(clip);  // warm-up
  const double t1 = now();
  vae->encode(clip);
  const double encode_s = now() - t1;

  std::cout << nlohmann::json{{"bench", "tiny_vae"}, {"preset", vae->config().name}, {"decoder_widths", vae->config().decoder_widths}, {"device", device.str()},
                              {"width", width}, {"height", height}, {"decoded_frames", frames},
                              {"decode_fps", frames / decode_s}, {"decode_ms_per_latent", decode_s / (count - 1) * 1e3},
                              {"decode_cpu_ms_per_latent", decode_cpu_s / (count - 1) * 1e3},
                              {"encode_fps", clip.size(1) / encode_s}, {"peak_rss_mib", peak_rss_mib()}}
                   .dump()
            << std::endl;
  if (args.has("quality")) {
    std::cout << reconstruction_quality(vae, args.integer("quality", 16), width, height, args.integer("frames", 17)).dump() << std::endl;
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "vae_bench: " << e.what() << std::endl;
  return 2;
}
