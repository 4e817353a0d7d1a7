#include "motionstream/train/vae_trainer.h"

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "motionstream/io/state_dict.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/train/checkpoint.h"
#include "motionstream/train/clip_pool.h"
#include "motionstream/train/data_parallel.h"
#include "motionstream/train/training_run.h"
#include "motionstream/train/photo_bank.h"
#include "motionstream/train/world.h"
#include "motionstream/util/progress.h"

namespace fs = std::filesystem;

namespace ms {

void VaeTrainConfig::validate() const {
  auto positive = [](const char* field, double v) {
    if (!(v > 0)) throw std::invalid_argument(std::string("VaeTrainConfig.") + field + " must be positive, got " + std::to_string(v));
  };
  positive("width", width);
  positive("height", height);
  positive("batch", batch);
  positive("steps", steps);
  positive("lr", lr);
  positive("validate_every", validate_every);
  positive("validation_clips", validation_clips);
  if (l1_weight < 0 || mse_weight < 0 || gradient_weight < 0 || latent_weight < 0 || !(l1_weight + mse_weight > 0))
    throw std::invalid_argument("VaeTrainConfig: loss weights must be >= 0 with l1_weight + mse_weight > 0, got l1 " +
                                std::to_string(l1_weight) + ", mse " + std::to_string(mse_weight));
  if (pool_size < 0 || fresh_per_step < 0) throw std::invalid_argument("VaeTrainConfig: pool_size and fresh_per_step must be >= 0");
  if (pool() < batch || fresh() > pool())
    throw std::invalid_argument("VaeTrainConfig: need batch <= pool_size and fresh_per_step <= pool_size, got batch " +
                                std::to_string(batch) + ", pool_size " + std::to_string(pool()) + ", fresh_per_step " +
                                std::to_string(fresh()));
  if (width % 16 || height % 16)
    throw std::invalid_argument("VaeTrainConfig: width and height must be multiples of 16, got " +
                                std::to_string(width) + "x" + std::to_string(height));
  if (frames < 5 || (frames - 1) % 4)
    throw std::invalid_argument("VaeTrainConfig.frames must be 1 + 4k with k >= 1, got " + std::to_string(frames));
  tiny_vae_preset(preset);
  if (!train_encoder && init.empty())
    throw std::invalid_argument("VaeTrainConfig.train_encoder false needs `init`: a trained autoencoder to keep the "
                                "encoder of");
  if (linear_decoder_kernel < 0 || (linear_decoder_kernel > 0 && linear_decoder_kernel % 2 == 0))
    throw std::invalid_argument("VaeTrainConfig.linear_decoder_kernel must be odd (or 0: init's), got " +
                                std::to_string(linear_decoder_kernel));
  if (linear_decoder_kernel > 0 && !linear_path)
    throw std::invalid_argument("VaeTrainConfig.linear_decoder_kernel needs linear_path true");
  DistributedConfig{rank, world_size, master_addr, master_port}.validate();
  if (batch % world_size)
    throw std::invalid_argument("VaeTrainConfig: batch " + std::to_string(batch) + " does not split over " +
                                std::to_string(world_size) + " processes");
}

double psnr(const at::Tensor& a, const at::Tensor& b) {
  // per clip, then averaged: one badly reconstructed clip is not hidden by a pooled MSE
  auto mse = (a.to(at::kFloat) - b.to(at::kFloat)).pow(2).flatten(1).mean(1).clamp_min(1e-10);
  return (-10.0 * at::log10(mse)).mean().item<double>();
}

namespace {

constexpr uint64_t kLinearFitSeed = 8'000'000'000'000;  // clips the linear path is fitted to: not validation clips

// [count, F, 3, H, W] clips with the given seeds, on `device`.
at::Tensor render_batch(const VaeTrainConfig& c, const std::vector<uint64_t>& seeds, const world::PhotoBank* photos,
                        const at::Device& device) {
  const world::WorldSpec spec = world_spec(c.width, c.height, c.frames);
  std::vector<at::Tensor> clips;
  const at::Device render_on = c.render_device.empty() ? device : at::Device(c.render_device);
  for (uint64_t s : seeds) clips.push_back(world::render_clip(spec, s, photos, render_on).video);
  return at::stack(clips).to(device);
}

at::Tensor spatial_gradients(const at::Tensor& x) {  // [..., H, W] -> horizontal and vertical differences
  auto dx = x.narrow(-1, 1, x.size(-1) - 1) - x.narrow(-1, 0, x.size(-1) - 1);
  auto dy = x.narrow(-2, 1, x.size(-2) - 1) - x.narrow(-2, 0, x.size(-2) - 1);
  return at::cat({dx.flatten(), dy.flatten()});
}

double validation_psnr(TinyVae& vae, const VaeTrainConfig& c, const world::PhotoBank* photos, const at::Device& device) {
  const at::Device render_on = c.render_device.empty() ? device : at::Device(c.render_device);
  return validation_reconstruction(vae, photos, c.validation_clips, c.width, c.height, c.frames, render_on)["mean"];
}

}  // namespace

nlohmann::json validation_reconstruction(TinyVae& vae, const world::PhotoBank* photos, int64_t clips, int64_t width,
                                         int64_t height, int64_t frames, const at::Device& render_on) {
  torch::NoGradGuard no_grad;
  const bool was_training = vae->is_training();
  vae->eval();
  const at::Device device = vae->parameters().front().device();
  const world::WorldSpec spec = world_spec(width, height, frames);
  double total = 0;
  at::Tensor frame_mse = at::zeros({frames}, at::kDouble);  // [F]: where the error sits among a latent's frames
  nlohmann::json by_clip = nlohmann::json::array();  // which content the mean loses on
  for (uint64_t seed : world::validation_seeds(clips)) {
    const auto sample = world::render_clip(spec, seed, photos, render_on);
    const auto clip = sample.video.unsqueeze(0).to(device);  // [1, F, 3, H, W]
    const auto recon = vae->decode(vae->encode(clip));
    const double db = psnr(recon, clip);
    total += db;
    by_clip.push_back({{"seed", seed}, {"psnr", db}, {"caption", sample.caption}});
    frame_mse += (recon - clip).pow(2).mean({0, 2, 3, 4}).to(at::kCPU, at::kDouble) / static_cast<double>(clips);
  }
  vae->train(was_training);
  const auto frame_db = (-10.0 * at::log10(frame_mse)).contiguous();
  return {{"mean", total / static_cast<double>(std::max<int64_t>(1, clips))},
          {"by_frame", std::vector<double>(frame_db.data_ptr<double>(), frame_db.data_ptr<double>() + frames)},
          {"by_clip", by_clip}};
}

nlohmann::json photo_reconstruction(TinyVae& vae, const world::PhotoBank& photos, int64_t width, int64_t height,
                                    int64_t frames) {
  torch::NoGradGuard no_grad;
  const bool was_training = vae->is_training();
  vae->eval();
  const at::Device device = vae->parameters().front().device();
  nlohmann::json per_photo = nlohmann::json::object();
  double total = 0;
  for (const auto& photo : photos.photos())
    for (auto move : {world::CameraMove::kPan, world::CameraMove::kZoom}) {
      const auto clip = world::render_scene(world::photo_camera_scene(photo, width, height, frames, move), device)
                            .video.unsqueeze(0);  // [1, F, 3, H, W]
      const double db = psnr(vae->decode(vae->encode(clip)), clip);
      per_photo[photo.name][move == world::CameraMove::kPan ? "pan" : "zoom"] = db;
      total += db;
    }
  vae->train(was_training);
  const auto clips = 2 * photos.size();
  return {{"mean", clips ? nlohmann::json(total / static_cast<double>(clips)) : nlohmann::json()}, {"photos", per_photo}};
}

nlohmann::json latent_statistics(TinyVae& vae, const VaeTrainConfig& c) {
  torch::NoGradGuard no_grad;
  auto photos = open_photo_bank(c.photos);
  const at::Device device = vae->parameters().front().device();
  std::vector<at::Tensor> latents;
  for (uint64_t s : world::validation_seeds(c.validation_clips))
    latents.push_back(vae->encode(render_batch(c, {s}, photos.get(), device)).transpose(1, 2).flatten(2));  // [1, C, T*h*w]
  auto all = at::cat(latents, 2).squeeze(0).to(at::kDouble).cpu();  // [C, n]
  auto mean = all.mean(1), stdev = all.std(1);
  return {{"latent_mean", std::vector<double>(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel())},
          {"latent_std", std::vector<double>(stdev.data_ptr<double>(), stdev.data_ptr<double>() + stdev.numel())}};
}

int64_t train_vae(const VaeTrainConfig& c, const std::string& run_dir, const RunLimits& limits) {
  c.validate();
  const fs::path dir(run_dir);
  DataParallel parallel({c.rank, c.world_size, c.master_addr, c.master_port});
  if (parallel.is_writer())
    record_run_config(run_dir, c, {"steps", "checkpoint_minutes", "device", "render_device", "validate_every", "rank",
                                   "world_size", "master_port", "master_addr"},
                      VaeTrainConfig{});

  const at::Device device(c.device);
  auto photos = open_photo_bank(c.photos);
  torch::manual_seed(c.seed);  // the initial weights are part of the run: same seed, same run
  TinyVae vae = c.init.empty() ? TinyVae(tiny_vae_preset(c.preset)) : LatentCodec(c.init, device).vae();
  if (!c.decoder_widths.empty() && c.decoder_widths != vae->config().decoder_widths) {
    TinyVaeConfig custom = vae->config();
    custom.decoder_widths = c.decoder_widths;
    vae = c.init.empty() ? TinyVae(custom) : widen_decoder(vae, c.decoder_widths);
  }
  // A linear path new to this run is fitted at its first step (below), once the run knows it is not resuming; so is
  // a linear decoder whose kernel this run enlarges (the encoder, and so the latent space, then stays as it is).
  const bool had_linear = vae->config().linear_path;
  const int64_t kernel = c.linear_decoder_kernel > 0 ? c.linear_decoder_kernel : vae->config().linear_decoder_kernel;
  const bool fit_linear = c.linear_path && !had_linear;
  const bool fit_decoder = c.linear_path && had_linear && kernel != vae->config().linear_decoder_kernel;
  if (fit_linear && !c.train_encoder)
    throw std::invalid_argument("VaeTrainConfig.linear_path adds a linear path to " + c.init +
                                ", which changes the encoder: it needs train_encoder true");
  if (fit_linear || fit_decoder) vae = with_linear_path(vae, kernel);
  // Same encoder, same latent space: the export keeps the statistics the models in it were trained with, digit for
  // digit. Read now, beside the weights, so that a missing field stops the run before training, not at its end.
  nlohmann::json kept_statistics;
  if (!c.train_encoder) {
    const auto init_json = nlohmann::json::parse(std::ifstream(fs::path(c.init) / "vae.json"));
    kept_statistics = {{"latent_mean", init_json.at("latent_mean")}, {"latent_std", init_json.at("latent_std")}};
  }
  vae->to(device);
  vae->train();
  if (!c.train_encoder)
    for (auto& p : vae->encoder_parameters()) p.set_requires_grad(false);
  // A linear path stays as fitted: a component's scale divides its weights, so Adam's equal-sized steps would
  // scramble the small ones; the convolutional paths learn what it misses.
  if (vae->config().linear_path)
    for (auto* path : {&vae->encoder_linear, &vae->decoder_linear})
      for (auto& p : (*path)->parameters()) p.set_requires_grad(false);
  std::vector<at::Tensor> trained;
  for (auto& p : vae->parameters())
    if (p.requires_grad()) trained.push_back(p);
  torch::optim::AdamW optimizer(trained,
                                torch::optim::AdamWOptions(c.lr).weight_decay(c.weight_decay).betas({0.9, 0.99}));
  TrainingRun run(run_dir, "vae", c.steps, c.checkpoint_minutes, limits, {{"model", vae.get()}},
                  {{"optimizer", &optimizer}}, parallel.is_writer());
  if ((fit_linear || fit_decoder) && run.step() == 0) {
    constexpr int64_t kFitClips = 64;  // about 20k pixel groups at 128x128x9: ample for 768x768 covariances
    std::vector<uint64_t> seeds;
    for (int64_t i = 0; i < kFitClips; ++i) seeds.push_back(kLinearFitSeed + static_cast<uint64_t>(i));
    const auto fit_clips = render_batch(c, seeds, photos.get(), device);  // every rank: the same clips, the same fit
    if (fit_linear) fit_linear_path(vae, fit_clips);
    else fit_linear_decoder(vae, fit_clips);
    if (parallel.is_writer())
      std::fprintf(stderr, "linear %s fitted to %lld clips: validation PSNR %.2f dB\n", fit_linear ? "path" : "decoder",
                   static_cast<long long>(kFitClips), validation_psnr(vae, c, photos.get(), device));
  }
  ClipPool pool(clip_pool_config(world_spec(c.width, c.height, c.frames), c.batch, c.pool_size, c.fresh_per_step,
                                 c.seed, device, c.render_device),
                photos.get(), run.step());
  double smoothed = -1;
  for (bool more = run.wants_steps(); more;) {
    const int64_t step = run.step();
    for (auto& group : optimizer.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(scheduled_lr(c.lr, step, c.warmup_steps, c.steps));

    // Every rank draws the whole global batch, then trains on its own rows.
    auto clips = ClipPool::videos(pool.next(step), device)
                     .narrow(0, parallel.slice_begin(c.batch), parallel.slice_size(c.batch));  // [B / W, F, 3, H, W]
    auto latents = vae->encode(clips);  // a frozen encoder records no graph: none of its inputs needs a gradient
    auto recon = vae->decode(latents, /*clamp=*/false);
    const auto error = recon - clips;
    auto l1 = error.abs().mean();
    auto edges = (spatial_gradients(recon) - spatial_gradients(clips)).abs().mean();
    auto loss = c.l1_weight * l1 + c.mse_weight * error.pow(2).mean() + c.gradient_weight * edges +
                c.latent_weight * latents.pow(2).mean();
    optimizer.zero_grad();
    loss.backward();
    parallel.average_gradients(*vae);
    torch::nn::utils::clip_grad_norm_(vae->parameters(), c.grad_clip);
    optimizer.step();

    const double value = loss.item<double>();
    smoothed = smoothed < 0 ? value : 0.98 * smoothed + 0.02 * value;
    nlohmann::json row{{"loss", value}, {"l1", l1.item<double>()}};
    if (parallel.is_writer() && ((step + 1) % c.validate_every == 0 || step + 1 == c.steps)) {
      const double world_db = validation_psnr(vae, c, photos.get(), device);
      row["val_psnr"] = world_db;
      std::fprintf(stderr, "\nstep %lld: validation PSNR %.2f dB", static_cast<long long>(step + 1), world_db);
      if (photos) {
        const double photo_db = photo_reconstruction(vae, *photos, c.width, c.height, c.frames)["mean"].get<double>();
        row["val_photo_psnr"] = photo_db;
        std::fprintf(stderr, ", panned and zoomed photos %.2f dB", photo_db);
      }
      std::fprintf(stderr, "\n");
    }
    char figures[96];
    std::snprintf(figures, sizeof figures, "loss %.4f", smoothed);
    more = run.finish_step(row, figures);
  }
  if (!run.export_due() || !parallel.is_writer()) return run.step();

  nlohmann::json exported{{"config", vae->config()}, {"train", c}};
  exported.update(c.train_encoder ? latent_statistics(vae, c) : kept_statistics);
  exported["val_psnr"] = validation_psnr(vae, c, photos.get(), device);
  if (photos) exported["photo_psnr"] = photo_reconstruction(vae, *photos, c.width, c.height, c.frames)["mean"];
  io::save_state_dict(*vae, (dir / "model.safetensors").string());
  std::ofstream(dir / "vae.json") << exported.dump(2) << "\n";
  return run.step();
}

}  // namespace ms
