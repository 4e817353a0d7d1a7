// StreamingGenerator: chunk after chunk of latent video from one image, a prompt and live tracks (SPEC.md section 4).
//
// Per chunk: start from fresh noise; for each of the K denoising timesteps predict x0 (reading the KV cache) and,
// between steps, re-noise x0 with FRESH noise to the next level; then run the model once more on the clean x0 at
// t = 0 to commit the chunk's keys/values to the cache. Cost per chunk is constant however long the stream runs.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <vector>

#include "motionstream/diffusion/flow_schedule.h"
#include "motionstream/model/dit.h"
#include "motionstream/stream/kv_cache.h"
#include "motionstream/tracks/track_set.h"

namespace ms {

struct StreamConfig {
  StreamLayout layout;             // chunk 3, sink 1, window 1
  std::vector<double> timesteps;   // denoising timesteps in [0, 1000]; empty = FlowSchedule{5}.denoising_steps(3)
  uint64_t seed = 0;
};

class StreamingGenerator {
 public:
  // text: [1, Lt, text_dim] prompt embedding. image_latent: [1, C, H, W] latent of the first frame (required by
  // image-conditioned models, else undefined); H, W give the latent size of the whole stream.
  StreamingGenerator(WanDiT model, StreamConfig config, const at::Tensor& text, const at::Tensor& image_latent,
                     int64_t latent_h, int64_t latent_w);

  void set_prompt(const at::Tensor& text);  // takes effect from the next chunk
  // CLIP tokens of the first frame [1, image_tokens, image_token_dim], required before the first chunk by models
  // with the CLIP image cross-attention (DitConfig::image_tokens > 0); kept across prompts and resets.
  void set_image_tokens(const at::Tensor& tokens);
  // Tracks for the whole stream, frames indexed from the first video frame; used from the next chunk on.
  // Track n keeps its random ID across calls, so a drag that continues stays the same track to the model.
  void set_tracks(const TrackSet& tracks);
  void clear_tracks();
  // -> [1, C, chunk_frames, H, W] the next chunk's clean latents
  at::Tensor next_chunk();
  // Back to the first frame: empty cache, same seed, prompt and tracks.
  void reset();

  int64_t chunks_done() const { return cache_->chunks_committed(); }
  int64_t frames_done() const { return chunks_done() * config_.layout.chunk_frames; }
  const KvCache& cache() const { return *cache_; }
  const std::vector<double>& timesteps() const { return config_.timesteps; }
  // The next chunk's conditioning (I2V condition, packed tracks), built once per chunk and shared by its passes;
  // exposed so that benchmarks and training feed exactly what streaming feeds.
  DitInput chunk_conditioning() const;
  // That conditioning with the latents and timestep of one pass.
  DitInput pass_input(DitInput conditioning, const at::Tensor& latents, double timestep) const;

 private:
  at::Tensor noise();

  WanDiT model_;
  StreamConfig config_;
  at::TensorOptions options_;
  int64_t latent_h_, latent_w_;
  at::Tensor image_latent_;
  TextKv text_kv_;
  std::optional<TrackSet> tracks_;
  at::Tensor track_ids_;  // [N] int64, grows as tracks are added
  at::Generator gen_;
  std::unique_ptr<KvCache> cache_;
};

}  // namespace ms
