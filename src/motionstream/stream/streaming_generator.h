// StreamingGenerator: chunk after chunk of latent video from one image, a prompt and live tracks (SPEC.md section 4).
//
// Per chunk: start from fresh noise; for each of the K denoising timesteps predict x0 (reading the KV cache) and,
// between steps, re-noise x0 with FRESH noise to the next level; then run the model once more on the clean x0 at
// t = 0 to commit the chunk's keys/values to the cache. Cost per chunk is constant however long the stream runs.
//
// Every per-chunk input and output lives in buffers allocated once (ChunkBuffers; the cache's are allocated at
// construction too), and a chunk's work runs on a stream of its own. With StreamConfig::cuda_graphs the steady-state
// chunks replay a captured CUDA graph (docs/ENGINE.md).
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "motionstream/diffusion/flow_schedule.h"
#include "motionstream/model/dit.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/stream/chunk_buffers.h"
#include "motionstream/stream/kv_cache.h"
#include "motionstream/tracks/track_set.h"
#include "motionstream/util/gpu.h"

namespace ms {

struct StreamConfig {
  StreamLayout layout;             // chunk 3, sink 1, window 1
  std::vector<double> timesteps;   // denoising timesteps in [0, 1000]; empty = FlowSchedule{5}.denoising_steps(3)
  uint64_t seed = 0;
  // CUDA models only: once the sink and window are full (and one chunk warmed up eagerly at that shape), capture a
  // chunk's passes as a CUDA graph per window-ring phase and replay it. Off (the default): every chunk runs eagerly.
  bool cuda_graphs = false;
};

// How the chunks so far were run.
struct EngineCounts {
  int64_t eager_chunks = 0, graph_replays = 0, graphs_captured = 0;
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
  // The codec and the first image [3, H, W] (values in [0, 1]) that the warp hint is made from, required before the
  // first chunk by models that take it (DitConfig::track_warp_hint). The codec must outlive the generator.
  void set_warp_hint_source(LatentCodec& codec, const at::Tensor& image);
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

  // The buffers every chunk reads and writes in place (their storage never changes).
  const ChunkBuffers& buffers() const { return *buffers_; }
  const EngineCounts& engine_counts() const { return counts_; }
  // Why graph capture failed (graphs are then off and chunks run eagerly); empty when it did not.
  const std::string& graph_error() const { return graph_error_; }

 private:
  void prepare_chunk();  // draws the noise, writes the conditioning into the buffers
  void run_chunk();      // eagerly, or by capturing / replaying the graph of the cache's ring phase
  void run_passes();     // the K denoising passes and the clean pass, on the buffers
  DitInput buffer_input(const at::Tensor& latents, int64_t pass) const;
  void write_condition(at::Tensor& condition) const;  // I2V condition of the next chunk, in place
  at::Tensor track_raster() const;                    // packed raster of the next chunk (CPU), undefined = none

  WanDiT model_;
  StreamConfig config_;
  at::TensorOptions options_;
  int64_t latent_h_, latent_w_;
  at::Tensor image_latent_;
  LatentCodec* hint_codec_ = nullptr;  // with hint_image_ [3, H, W]: the warp hint's source (track_warp_hint models)
  at::Tensor hint_image_;
  TextKv text_kv_;
  std::optional<TrackSet> tracks_;
  at::Tensor track_ids_;  // [N] int64, grows as tracks are added
  at::Generator gen_;
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<ChunkBuffers> buffers_;
  std::unique_ptr<gpu::Stream> compute_;  // where a chunk's work runs (the host itself on the CPU)
  gpu::Mark uploads_done_;                // the last chunk's host-to-device copies have left the staging buffers

  struct PhaseGraph {
    std::unique_ptr<gpu::Graph> graph;
    KvCache::Cursor after;  // the cache's cursor after the captured chunk (chunks_committed aside)
  };
  std::map<int64_t, PhaseGraph> graphs_;  // by window-ring phase
  bool graphs_on_ = false;
  int64_t steady_eager_chunks_ = 0;
  EngineCounts counts_;
  std::string graph_error_;
};

}  // namespace ms
