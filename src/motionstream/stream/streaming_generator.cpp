#include "motionstream/stream/streaming_generator.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <stdexcept>

#include "motionstream/tracks/track_raster.h"

namespace ms {

StreamingGenerator::StreamingGenerator(WanDiT model, StreamConfig config, const at::Tensor& text,
                                       const at::Tensor& image_latent, int64_t latent_h, int64_t latent_w)
    : model_(std::move(model)), config_(std::move(config)), latent_h_(latent_h), latent_w_(latent_w) {
  const auto& c = model_->config();
  options_ = model_->patch_embedding->weight.options();
  if (config_.timesteps.empty()) config_.timesteps = FlowSchedule{5.0}.denoising_steps(3);
  for (double t : config_.timesteps)
    if (!(t > 0.0 && t <= 1000.0))
      throw std::invalid_argument("StreamConfig.timesteps: " + std::to_string(t) + " is outside (0, 1000]");
  if (latent_h % 2 || latent_w % 2 || latent_h <= 0 || latent_w <= 0)
    throw std::invalid_argument("StreamingGenerator: latent size must be positive and even, got " +
                                std::to_string(latent_h) + "x" + std::to_string(latent_w));
  if (c.image_condition) {
    if (!image_latent.defined() || image_latent.sizes() != at::IntArrayRef({1, c.latent_channels, latent_h, latent_w}))
      throw std::invalid_argument("StreamingGenerator: the image latent must be [1, " + std::to_string(c.latent_channels) +
                                  ", " + std::to_string(latent_h) + ", " + std::to_string(latent_w) + "]");
    image_latent_ = image_latent.to(options_);
  }
  set_prompt(text);
  gen_ = at::detail::createCPUGenerator(config_.seed);
  const TokenGrid chunk_grid{config_.layout.chunk_frames, latent_h / 2, latent_w / 2};
  cache_ = std::make_unique<KvCache>(c, config_.layout, 1, chunk_grid, options_);
}

void StreamingGenerator::set_prompt(const at::Tensor& text) {
  torch::NoGradGuard no_grad;
  ImageKv image = std::move(text_kv_.image);
  text_kv_ = model_->encode_text(text.to(options_));
  text_kv_.image = std::move(image);
}

void StreamingGenerator::set_image_tokens(const at::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  text_kv_.image = model_->encode_image(tokens.to(options_));
}

void StreamingGenerator::set_tracks(const TrackSet& tracks) {
  tracks.validate();
  const int64_t have = track_ids_.defined() ? track_ids_.size(0) : 0;
  if (tracks.points() > have) {
    auto more = draw_track_ids(tracks.points() - have, gen_);
    track_ids_ = have ? at::cat({track_ids_, more}) : more;
  }
  tracks_ = tracks;
}

void StreamingGenerator::clear_tracks() { tracks_.reset(); }

void StreamingGenerator::reset() {
  cache_->reset();
  gen_ = at::detail::createCPUGenerator(config_.seed);
  track_ids_ = at::Tensor();
  if (tracks_) set_tracks(*tracks_);
}

at::Tensor StreamingGenerator::noise() {
  // Drawn on the CPU so that a seed gives the same stream on every device.
  const auto& c = model_->config();
  return at::randn({1, c.latent_channels, config_.layout.chunk_frames, latent_h_, latent_w_}, gen_).to(options_);
}

DitInput StreamingGenerator::chunk_conditioning() const {
  const auto& c = model_->config();
  const int64_t frames = config_.layout.chunk_frames, first = frames_done();
  DitInput in;
  if (c.image_condition) in.condition = image_condition(image_latent_, first, frames);
  if (c.image_condition && c.track_latent_copy && tracks_ && tracks_->points() > 0)
    copy_latents_along_tracks(in.condition, image_latent_, {*tracks_}, first);
  if (c.track_channels > 0 && tracks_ && tracks_->points() > 0)
    in.tracks = packed_track_input(*tracks_, track_ids_.narrow(0, 0, tracks_->points()), first, frames, latent_h_,
                                   latent_w_, c.track_id_dim)
                    .to(options_);
  return in;
}

DitInput StreamingGenerator::pass_input(DitInput conditioning, const at::Tensor& latents, double timestep) const {
  conditioning.noisy = latents;
  conditioning.timesteps =  // float32 even in bf16 runs: t near 1000 needs the precision
      at::full({1, config_.layout.chunk_frames}, timestep, options_.dtype(at::kFloat));
  return conditioning;
}

at::Tensor StreamingGenerator::next_chunk() {
  torch::NoGradGuard no_grad;
  const auto& steps = config_.timesteps;
  const DitInput conditioning = chunk_conditioning();
  at::Tensor x = noise(), x0;
  cache_->set_commit(false);
  for (size_t i = 0; i < steps.size(); ++i) {
    const double s = FlowSchedule::noise_level(steps[i]);
    auto velocity = model_->forward(pass_input(conditioning, x, steps[i]), text_kv_, *cache_);
    x0 = FlowSchedule::x0_from_velocity(x, velocity, s);
    if (i + 1 < steps.size()) x = FlowSchedule::add_noise(x0, noise(), FlowSchedule::noise_level(steps[i + 1]));
  }
  // The clean pass: the chunk's keys/values at t = 0 become context for the chunks after it.
  cache_->set_commit(true);
  model_->forward(pass_input(conditioning, x0, 0.0), text_kv_, *cache_);
  cache_->set_commit(false);
  return x0;
}

}  // namespace ms
