// LiveModel: the one loaded model every live session shares, and the FrameSource each session draws frames from.
//
// Backends:
//   model  the motion-conditioned DiT streamed chunk by chunk through its KV cache, decoded by the tiny VAE's
//          streaming decoder (a trained model folder, or random weights when none is given: `trained` says which)
//   warp   the first frame warped along the tracks (ms::warp_along_tracks): a baseline with no generative model
// All FrameSource calls of one session come from one thread (the server's generation thread).
#pragma once

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>

#include "motionstream/model/motion_model.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/stream/kv_cache.h"
#include "motionstream/tracks/track_set.h"

namespace ms::serve {

struct LiveModelOptions {
  std::string model_dir;            // a model folder (model.json, ...); empty: random weights of `random_preset`
  std::string backend = "model";    // "model" | "warp"
  std::string random_preset = "cpu-small";
  std::string random_codec;         // the autoencoder folder random weights decode with
  int64_t width = 128, height = 128;
  int64_t steps = 3;
  StreamLayout layout;              // chunk 3, sink 1, window 1
  double fps = 16.0;
  uint64_t seed = 0;
};

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // Starts over: first frame image [3, H, W] in [0, 1] at the model's size, and the prompt.
  virtual void start(const at::Tensor& image, const std::string& prompt) = 0;
  virtual void set_prompt(const std::string& prompt) = 0;
  // How many frames (from frame 0) the tracks given to the next next_frames() call should cover.
  virtual int64_t tracks_needed() const = 0;
  // The next frames, [n, 3, H, W] in [0, 1], steered by the tracks (model pixels) or by none.
  virtual at::Tensor next_frames(const std::optional<TrackSet>& tracks) = 0;
  virtual int64_t frames_done() const = 0;
};

class LiveModel {
 public:
  explicit LiveModel(const LiveModelOptions& options);
  std::unique_ptr<FrameSource> new_source() const;

  int64_t width() const { return options_.width; }
  int64_t height() const { return options_.height; }
  double fps() const { return options_.fps; }
  const LiveModelOptions& options() const { return options_; }
  // name, trained, backend, width, height, fps, chunk_frames (video frames per steady chunk), steps
  nlohmann::json describe() const;

 private:
  friend class ModelSource;
  LiveModelOptions options_;
  std::string name_;
  bool trained_ = false;
  MotionModel model_{nullptr};
  std::shared_ptr<LatentCodec> codec_;
  std::vector<double> timesteps_;
};

}  // namespace ms::serve
