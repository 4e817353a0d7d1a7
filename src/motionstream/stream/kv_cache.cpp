#include "motionstream/stream/kv_cache.h"

#include <limits>
#include <stdexcept>
#include <string>

namespace ms {

void StreamLayout::validate() const {
  if (chunk_frames < 1) throw std::invalid_argument("StreamLayout.chunk_frames must be >= 1, got " + std::to_string(chunk_frames));
  if (sink_chunks < 0) throw std::invalid_argument("StreamLayout.sink_chunks must be >= 0, got " + std::to_string(sink_chunks));
  if (window_chunks < 0)
    throw std::invalid_argument("StreamLayout.window_chunks must be >= 0, got " + std::to_string(window_chunks));
}

std::vector<int64_t> visible_chunks(int64_t chunk, const StreamLayout& layout) {
  std::vector<int64_t> out;
  const int64_t S = layout.sink_chunks, W = layout.window_chunks;
  for (int64_t j = 0; j < std::min(chunk, S); ++j) out.push_back(j);               // sink
  for (int64_t j = std::max(S, chunk - W); j < chunk; ++j) out.push_back(j);       // window
  out.push_back(chunk);
  return out;
}

at::Tensor streaming_attention_mask(int64_t chunks, int64_t tokens_per_chunk, const StreamLayout& layout) {
  const int64_t L = chunks * tokens_per_chunk;
  auto mask = at::full({L, L}, -std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < chunks; ++i)
    for (int64_t j : visible_chunks(i, layout))
      mask.narrow(0, i * tokens_per_chunk, tokens_per_chunk).narrow(1, j * tokens_per_chunk, tokens_per_chunk).zero_();
  return mask;
}

KvCache::KvCache(const DitConfig& config, const StreamLayout& layout, int64_t batch, const TokenGrid& chunk_grid,
                 const at::TensorOptions& options)
    : layout_(layout), chunk_grid_(chunk_grid), num_blocks_(config.num_layers), tokens_per_chunk_(chunk_grid.tokens()) {
  layout_.validate();
  TORCH_CHECK(chunk_grid.frames == layout.chunk_frames, "KvCache: chunk grid has ", chunk_grid.frames,
              " frames, the layout ", layout.chunk_frames);
  const int64_t S = layout.sink_chunks, W = layout.window_chunks, H = config.num_heads, d = config.head_dim();
  for (int64_t slot = 0; slot <= S + W; ++slot) {
    auto positions = grid_positions(chunk_grid.frames, chunk_grid.h, chunk_grid.w, slot * chunk_grid.frames);
    RopeTable t = rope_table(positions, d);
    slot_rope_.push_back({t.cos.to(options.device()), t.sin.to(options.device())});
  }
  for (int64_t b = 0; b < num_blocks_; ++b) {
    keys_.push_back(at::zeros({batch, (S + W + 1) * tokens_per_chunk_, H, d}, options));
    values_.push_back(at::zeros_like(keys_.back()));
    window_keys_.push_back(at::zeros({batch, W * tokens_per_chunk_, H, d}, options));
    window_values_.push_back(at::zeros_like(window_keys_.back()));
  }
}

void KvCache::reset() {
  sink_filled_ = window_filled_ = window_oldest_ = chunks_committed_ = 0;
  max_position_used_ = -1;
  commit_ = false;
}

KvCache::Cursor KvCache::cursor() const {
  return {sink_filled_, window_filled_, window_oldest_, chunks_committed_, max_position_used_};
}

void KvCache::set_cursor(const Cursor& c) {
  const auto& L = layout_;
  TORCH_CHECK(c.sink_filled >= 0 && c.sink_filled <= L.sink_chunks && c.window_filled >= 0 &&
                  c.window_filled <= L.window_chunks && c.window_oldest >= 0 &&
                  (L.window_chunks == 0 ? c.window_oldest == 0 : c.window_oldest < L.window_chunks),
              "KvCache::set_cursor: sink ", c.sink_filled, "/", L.sink_chunks, ", window ", c.window_filled, "/",
              L.window_chunks, ", oldest ", c.window_oldest, " do not fit the layout");
  sink_filled_ = c.sink_filled;
  window_filled_ = c.window_filled;
  window_oldest_ = c.window_oldest;
  chunks_committed_ = c.chunks_committed;
  max_position_used_ = c.max_position_used;
}

std::vector<at::Tensor> KvCache::buffers() const {
  std::vector<at::Tensor> out;
  for (const auto* list : {&keys_, &values_, &window_keys_, &window_values_})
    out.insert(out.end(), list->begin(), list->end());
  return out;
}

void KvCache::begin(const TokenGrid& grid) {
  TORCH_CHECK(grid == chunk_grid_, "KvCache: a pass over ", grid.frames, "x", grid.h, "x", grid.w,
              " tokens does not match the cache's chunk ", chunk_grid_.frames, "x", chunk_grid_.h, "x", chunk_grid_.w);
  const int64_t last_frame = (cached_chunks() + 1) * layout_.chunk_frames - 1;
  max_position_used_ = std::max(max_position_used_, last_frame);
}

at::Tensor KvCache::attend(int64_t block, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const RopeTable& rope = slot_rope_[cached_chunks()];
  auto q_rot = apply_rope(q, rope), k_rot = apply_rope(k, rope);  // [B, Lc, H, d]
  const int64_t n = cached_tokens(), Lc = tokens_per_chunk_;
  at::Tensor keys, values;
  if (k_rot.requires_grad() || v.requires_grad()) {
    // Training self-rollout: gradients flow through the current chunk only; the past stays detached.
    keys = at::cat({keys_[block].narrow(1, 0, n), k_rot}, 1);
    values = at::cat({values_[block].narrow(1, 0, n), v}, 1);
  } else {
    keys_[block].narrow(1, n, Lc).copy_(k_rot);
    values_[block].narrow(1, n, Lc).copy_(v);
    keys = keys_[block].narrow(1, 0, n + Lc);
    values = values_[block].narrow(1, 0, n + Lc);
  }
  auto out = attention(q_rot, keys, values);
  if (commit_) {
    commit(block, k_rot.detach(), k.detach(), v.detach());
    if (block == num_blocks_ - 1) advance();
  }
  return out;
}

void KvCache::commit(int64_t block, const at::Tensor& k_rotated, const at::Tensor& k_raw, const at::Tensor& v) {
  const int64_t Lc = tokens_per_chunk_, W = layout_.window_chunks;
  if (sink_filled_ < layout_.sink_chunks) {  // joins the sink, rotated once and for all
    keys_[block].narrow(1, sink_filled_ * Lc, Lc).copy_(k_rotated);
    values_[block].narrow(1, sink_filled_ * Lc, Lc).copy_(v);
  } else if (W > 0) {  // joins the window ring, evicting the oldest entry when full
    const int64_t ring = window_filled_ < W ? (window_oldest_ + window_filled_) % W : window_oldest_;
    window_keys_[block].narrow(1, ring * Lc, Lc).copy_(k_raw);
    window_values_[block].narrow(1, ring * Lc, Lc).copy_(v);
  }
}

void KvCache::advance() {
  const int64_t W = layout_.window_chunks;
  ++chunks_committed_;
  if (sink_filled_ < layout_.sink_chunks) {
    ++sink_filled_;
    return;
  }
  if (W == 0) return;
  if (window_filled_ < W)
    ++window_filled_;
  else
    window_oldest_ = (window_oldest_ + 1) % W;
  for (int64_t b = 0; b < num_blocks_; ++b) rotate_window(b);
}

void KvCache::rotate_window(int64_t block) {
  const int64_t Lc = tokens_per_chunk_, S = layout_.sink_chunks, W = layout_.window_chunks;
  for (int64_t i = 0; i < window_filled_; ++i) {  // i-th oldest entry -> slot S + i
    const int64_t ring = (window_oldest_ + i) % W;
    auto raw = window_keys_[block].narrow(1, ring * Lc, Lc);
    keys_[block].narrow(1, (S + i) * Lc, Lc).copy_(apply_rope(raw, slot_rope_[S + i]));
    values_[block].narrow(1, (S + i) * Lc, Lc).copy_(window_values_[block].narrow(1, ring * Lc, Lc));
  }
}

}  // namespace ms
