#include "motionstream/stream/streaming_generator.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>
#include <torch/utils.h>

#include <sstream>
#include <stdexcept>

#include "motionstream/model/warp_hint.h"
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
  compute_ = std::make_unique<gpu::Stream>(options_.device());
  if (config_.cuda_graphs && !compute_->is_cuda())
    throw std::invalid_argument(
        "StreamConfig.cuda_graphs: CUDA graphs need a CUDA model in a build with the CUDA code; the model is on " +
        options_.device().str() + (gpu::cuda_compiled() ? "" : " and this build has no CUDA code"));
  graphs_on_ = config_.cuda_graphs;
  set_prompt(text);
  gen_ = at::detail::createCPUGenerator(config_.seed);
  const TokenGrid chunk_grid{config_.layout.chunk_frames, latent_h / 2, latent_w / 2};
  cache_ = std::make_unique<KvCache>(c, config_.layout, 1, chunk_grid, options_);
  buffers_ = std::make_unique<ChunkBuffers>(c, config_.layout.chunk_frames, config_.timesteps, latent_h, latent_w,
                                            options_);
}

void StreamingGenerator::set_prompt(const at::Tensor& text) {
  torch::NoGradGuard no_grad;
  TextKv fresh = model_->encode_text(text.to(options_));
  const bool same_shapes = !text_kv_.k.empty() && text_kv_.k.size() == fresh.k.size() &&
                           text_kv_.k[0].sizes() == fresh.k[0].sizes();
  if (!same_shapes) {  // first prompt (or a new text length): graphs captured so far read the old tensors
    fresh.image = std::move(text_kv_.image);  // the image's K/V stay with a new prompt
    text_kv_ = std::move(fresh);
    graphs_.clear();
    return;
  }
  // In place, because captured graphs read these very tensors: after the chunk in flight, before the next one.
  compute_->wait_for_current();
  {
    gpu::Stream::Scope on_compute(*compute_);
    for (size_t i = 0; i < fresh.k.size(); ++i) {
      text_kv_.k[i].copy_(fresh.k[i]);
      text_kv_.v[i].copy_(fresh.v[i]);
    }
  }
  compute_->join_into_current();  // `fresh` is freed on the current stream: its memory is reused only after the copy
}

void StreamingGenerator::set_image_tokens(const at::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  // Once per stream, before the first chunk: graphs captured later read these tensors.
  text_kv_.image = model_->encode_image(tokens.to(options_));
  graphs_.clear();
}

void StreamingGenerator::set_warp_hint_source(LatentCodec& codec, const at::Tensor& image) {
  if (image.dim() != 3 || image.size(0) != 3 || image.size(1) != 8 * latent_h_ || image.size(2) != 8 * latent_w_) {
    std::ostringstream got;
    got << image.sizes();
    throw std::invalid_argument("StreamingGenerator: the warp hint's image must be [3, " + std::to_string(8 * latent_h_) +
                                ", " + std::to_string(8 * latent_w_) + "], got " + got.str());
  }
  hint_codec_ = &codec;
  hint_image_ = image.to(at::kCPU, at::kFloat);
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
  cache_->reset();  // the captured graphs stay valid: same buffers, and a steady cache is steady again
  gen_ = at::detail::createCPUGenerator(config_.seed);
  track_ids_ = at::Tensor();
  if (tracks_) set_tracks(*tracks_);
}

void StreamingGenerator::write_condition(at::Tensor& condition) const {
  const auto& c = model_->config();
  const int64_t first = frames_done();
  write_image_condition(condition, image_latent_, first);
  if (c.track_latent_copy && tracks_ && tracks_->points() > 0)
    copy_latents_along_tracks(condition, image_latent_, {*tracks_}, first);
  if (c.track_warp_hint && tracks_ && tracks_->points() > 0) {
    if (!hint_codec_)
      throw std::invalid_argument("StreamingGenerator: this model takes the warp hint (track_warp_hint): call "
                                  "set_warp_hint_source with the codec and the first image before streaming");
    write_warp_hint(condition, *hint_codec_, hint_image_, *tracks_, first);
  }
}

at::Tensor StreamingGenerator::track_raster() const {
  const auto& c = model_->config();
  if (c.track_channels == 0 || !tracks_ || tracks_->points() == 0) return at::Tensor();
  return packed_track_input(*tracks_, track_ids_.narrow(0, 0, tracks_->points()), frames_done(),
                            config_.layout.chunk_frames, latent_h_, latent_w_, c.track_id_dim);
}

DitInput StreamingGenerator::chunk_conditioning() const {
  const auto& c = model_->config();
  DitInput in;
  if (c.image_condition) {
    in.condition = at::empty({1, 4 + c.latent_channels, config_.layout.chunk_frames, latent_h_, latent_w_}, options_);
    write_condition(in.condition);
  }
  const at::Tensor raster = track_raster();
  if (raster.defined()) in.tracks = raster.to(options_);
  return in;
}

DitInput StreamingGenerator::pass_input(DitInput conditioning, const at::Tensor& latents, double timestep) const {
  conditioning.noisy = latents;
  conditioning.timesteps =  // float32 even in bf16 runs: t near 1000 needs the precision
      at::full({1, config_.layout.chunk_frames}, timestep, options_.dtype(at::kFloat));
  return conditioning;
}

DitInput StreamingGenerator::buffer_input(const at::Tensor& latents, int64_t pass) const {
  const ChunkBuffers& b = *buffers_;
  DitInput in;
  in.noisy = latents;
  in.timesteps = b.timesteps[pass];  // [1, F]
  in.condition = b.condition;
  in.tracks = b.tracks;  // zeros without tracks: the same input as none (the track head's bias)
  return in;
}

at::Tensor StreamingGenerator::next_chunk() {
  torch::NoGradGuard no_grad;
  compute_->wait_for_current();  // what the caller queued before (a new prompt's embedding, ...) comes first
  {
    gpu::Stream::Scope on_compute(*compute_);
    prepare_chunk();
    run_chunk();
  }
  compute_->join_into_current();
  return buffers_->clean.clone();  // on the caller's stream: the buffer itself is rewritten by the next chunk
}

void StreamingGenerator::prepare_chunk() {
  ChunkBuffers& b = *buffers_;
  uploads_done_.wait_host();  // the staging buffers are free again (at once, unless the device is a chunk behind)
  // Noise on the host from the stream's generator, in the order the passes use it: a seed gives the same stream on
  // every device, and a captured graph needs no random numbers of its own.
  for (int64_t k = 0; k < b.noise_host.size(0); ++k) b.noise_host[k].normal_(0.0, 1.0, gen_);
  b.upload_noise();
  if (b.condition.defined()) write_condition(b.condition);
  b.write_tracks(track_raster());
  uploads_done_ = compute_->mark();
}

void StreamingGenerator::run_chunk() {
  const bool steady = cache_->steady();
  if (!graphs_on_ || !steady || steady_eager_chunks_ == 0) {
    // Eager: always until the sink and window are full (the work differs chunk to chunk until then), and once at
    // the steady shape before any capture, so that cuBLAS/cuDNN handles, plans and workspaces exist on this stream.
    run_passes();
    ++counts_.eager_chunks;
    if (steady) ++steady_eager_chunks_;
    return;
  }
  PhaseGraph& slot = graphs_[cache_->ring_phase()];
  if (!slot.graph) {
    const KvCache::Cursor before = cache_->cursor();
    auto graph = std::make_unique<gpu::Graph>();
    std::string why;
    const bool ok = graph->capture(*compute_, [this] { run_passes(); }, &why);
    slot.after = cache_->cursor();
    cache_->set_cursor(before);  // the capture ran the host code (moving the cursor) but no device work
    if (!ok) {
      graphs_on_ = false;
      graphs_.clear();
      graph_error_ = why;
      TORCH_WARN("StreamingGenerator: CUDA graph capture failed, chunks run eagerly from now on: ", why);
      run_passes();
      ++counts_.eager_chunks;
      return;
    }
    slot.graph = std::move(graph);
    ++counts_.graphs_captured;
  }
  const int64_t committed = cache_->chunks_committed();
  slot.graph->replay();
  KvCache::Cursor next = slot.after;
  next.chunks_committed = committed + 1;
  cache_->set_cursor(next);
  ++counts_.graph_replays;
}

void StreamingGenerator::run_passes() {
  ChunkBuffers& b = *buffers_;
  const auto& steps = config_.timesteps;
  const int64_t K = static_cast<int64_t>(steps.size());
  b.latents.copy_(b.noise[0]);
  cache_->set_commit(false);
  for (int64_t k = 0; k < K; ++k) {
    const double s = FlowSchedule::noise_level(steps[static_cast<size_t>(k)]);
    const at::Tensor velocity = model_->forward(buffer_input(b.latents, k), text_kv_, *cache_);
    b.clean.copy_(FlowSchedule::x0_from_velocity(b.latents, velocity, s));
    if (k + 1 < K)  // re-noise x0 with fresh noise to the next level
      b.latents.copy_(FlowSchedule::add_noise(b.clean, b.noise[k + 1],
                                              FlowSchedule::noise_level(steps[static_cast<size_t>(k + 1)])));
  }
  // The clean pass: the chunk's keys/values at t = 0 become context for the chunks after it.
  cache_->set_commit(true);
  model_->forward(buffer_input(b.clean, K), text_kv_, *cache_);
  cache_->set_commit(false);
}

}  // namespace ms
