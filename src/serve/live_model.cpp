#include "serve/live_model.h"

#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>

#include "motionstream/diffusion/flow_schedule.h"
#include "motionstream/model/dit_config.h"
#include "motionstream/stream/streaming_generator.h"
#include "motionstream/tracks/track_warp.h"

namespace fs = std::filesystem;

namespace ms::serve {

// Frames of a steady chunk: each latent frame decodes to 4 video frames (the very first to 1).
static int64_t video_frames_per_chunk(const StreamLayout& layout) { return 4 * layout.chunk_frames; }

class ModelSource : public FrameSource {
 public:
  explicit ModelSource(const LiveModel& live) : live_(live), decoder_(live.codec_->vae()) {}

  void start(const at::Tensor& image, const std::string& prompt) override {
    torch::NoGradGuard no_grad;
    const auto& o = live_.options_;
    const at::Tensor latent = live_.codec_->encode(image.view({1, 1, 3, o.height, o.width})).select(2, 0);
    StreamConfig config;
    config.layout = o.layout;
    config.timesteps = live_.timesteps_;
    config.seed = o.seed;
    generator_ = std::make_unique<StreamingGenerator>(live_.model_->dit, config, encode(prompt), latent,
                                                      o.height / 8, o.width / 8);
    MotionModel model = live_.model_;
    if (model->dit->config().image_branch())  // Wan I2V: the first frame through CLIP as well
      generator_->set_image_tokens(model->image_tokens(image.view({1, 3, o.height, o.width})));
    if (model->dit->config().track_warp_hint)  // the first frame warped along the tracks, in the condition
      generator_->set_warp_hint_source(*live_.codec_, image.view({3, o.height, o.width}));
    decoder_.reset();
    frames_done_ = 0;
  }

  void set_prompt(const std::string& prompt) override { generator_->set_prompt(encode(prompt)); }

  int64_t tracks_needed() const override {
    // Latent frame l stands for video frames up to 4l (ms::latent_frame_pixels).
    return 4 * (generator_->frames_done() + live_.options_.layout.chunk_frames) - 3;
  }

  at::Tensor next_frames(const std::optional<TrackSet>& tracks) override {
    torch::NoGradGuard no_grad;
    if (tracks)
      generator_->set_tracks(*tracks);
    else
      generator_->clear_tracks();
    const at::Tensor latents = generator_->next_chunk();  // [1, C, chunk, h, w]
    std::vector<at::Tensor> frames;
    for (int64_t f = 0; f < latents.size(2); ++f)
      frames.push_back(decoder_.push(live_.codec_->denormalize_frame(latents.select(2, f)))[0]);  // [n, 3, H, W]
    at::Tensor out = at::cat(frames);
    frames_done_ += out.size(0);
    return out;
  }

  int64_t frames_done() const override { return frames_done_; }

 private:
  at::Tensor encode(const std::string& prompt) {  // -> [1, Lt, D]
    MotionModel model = live_.model_;  // a handle to the shared weights (encoding does not change them)
    return model->prompt_context({prompt});
  }

  const LiveModel& live_;
  std::unique_ptr<StreamingGenerator> generator_;
  StreamingDecoder decoder_;
  int64_t frames_done_ = 0;
};

class WarpSource : public FrameSource {
 public:
  explicit WarpSource(const LiveModelOptions& options) : frames_per_chunk_(video_frames_per_chunk(options.layout)) {}

  void start(const at::Tensor& image, const std::string&) override {
    image_ = image;
    frames_done_ = 0;
  }
  void set_prompt(const std::string&) override {}
  int64_t tracks_needed() const override { return frames_done_ + frames_per_chunk_; }

  at::Tensor next_frames(const std::optional<TrackSet>& tracks) override {
    at::Tensor out = tracks ? warp_along_tracks(image_, *tracks, frames_done_, frames_per_chunk_)
                            : image_.unsqueeze(0).expand({frames_per_chunk_, -1, -1, -1}).contiguous();
    frames_done_ += frames_per_chunk_;
    return out;
  }

  int64_t frames_done() const override { return frames_done_; }

 private:
  int64_t frames_per_chunk_;
  at::Tensor image_;  // [3, H, W]
  int64_t frames_done_ = 0;
};

LiveModel::LiveModel(const LiveModelOptions& options) : options_(options) {
  if (options.width <= 0 || options.height <= 0 || options.width % 16 || options.height % 16)
    throw std::invalid_argument("width and height must be positive multiples of 16, got " +
                                std::to_string(options.width) + "x" + std::to_string(options.height));
  if (options.steps < 1) throw std::invalid_argument("steps must be >= 1, got " + std::to_string(options.steps));
  if (!(options.fps > 0)) throw std::invalid_argument("fps must be positive");
  options_.layout.validate();
  if (options.backend == "warp") {
    name_ = "warp baseline";
    trained_ = true;  // nothing to train: the frames are the image moved along the tracks
    return;
  }
  if (options.backend != "model")
    throw std::invalid_argument("backend must be 'model' or 'warp', got '" + options.backend + "'");

  torch::NoGradGuard no_grad;
  double shift = 5.0;
  std::string codec_dir;
  if (!options.model_dir.empty()) {
    LoadedMotionModel loaded = load_motion_model(options.model_dir);
    model_ = loaded.model;
    codec_dir = loaded.codec_folder;
    if (loaded.description.contains("shift") && loaded.description["shift"].is_number())
      shift = loaded.description["shift"].get<double>();
    // The folder's name; a run's export is RUN/model, so then the run's name says more.
    fs::path folder = fs::path(options.model_dir).lexically_normal();
    if (folder.filename().empty()) folder = folder.parent_path();
    if (folder.filename() == "model" && folder.has_parent_path()) folder = folder.parent_path();
    name_ = folder.filename().string();
    trained_ = true;
  } else {
    model_ = MotionModel(dit_preset(options.random_preset), std::vector<std::string>{});
    init_dit_weights(*model_->dit, options.seed);
    codec_dir = options.random_codec;
    if (codec_dir.empty())
      throw std::invalid_argument("random weights need an autoencoder folder to decode with (random_codec)");
    name_ = options.random_preset + " (random weights)";
  }
  model_->eval();
  codec_ = std::make_shared<LatentCodec>(codec_dir);
  if (codec_->channels() != model_->dit->config().latent_channels)
    throw std::runtime_error(codec_dir + ": the autoencoder has " + std::to_string(codec_->channels()) +
                             " latent channels, the model " + std::to_string(model_->dit->config().latent_channels));
  timesteps_ = FlowSchedule{shift}.denoising_steps(options.steps);
}

std::unique_ptr<FrameSource> LiveModel::new_source() const {
  if (options_.backend == "warp") return std::make_unique<WarpSource>(options_);
  return std::make_unique<ModelSource>(*this);
}

nlohmann::json LiveModel::describe() const {
  return {{"name", name_},
          {"trained", trained_},
          {"backend", options_.backend},
          {"width", options_.width},
          {"height", options_.height},
          {"fps", options_.fps},
          {"chunk_frames", video_frames_per_chunk(options_.layout)},
          {"steps", options_.backend == "warp" ? 0 : options_.steps}};
}

}  // namespace ms::serve
