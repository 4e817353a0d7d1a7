// KvCache: the streaming self-attention context (SPEC.md section 4).
//
// Chunk i attends to S sink chunks (the first S chunks, never evicted) and a rolling window of the W most recent
// other chunks, plus itself. RoPE frame positions come from the cache slot, not absolute time: slot j holds frames
// j*c .. j*c + c - 1 and the current chunk takes the slot after the last cached one, so no position ever exceeds
// (S + W + 1) c - 1 however long the stream runs. Sink keys are stored rotated (their slot never changes); window
// keys are stored un-rotated and re-rotated into their current slot whenever the window moves.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "motionstream/model/attention.h"
#include "motionstream/model/dit_config.h"

namespace ms {

struct StreamLayout {
  int64_t chunk_frames = 3;   // latent frames per chunk
  int64_t sink_chunks = 1;    // S
  int64_t window_chunks = 1;  // W
  void validate() const;
  // The largest RoPE frame position a stream with this layout uses.
  int64_t position_limit() const { return (sink_chunks + window_chunks + 1) * chunk_frames - 1; }
};

// Chunks that chunk i attends to, in cache-slot order (chunk i itself last): its slot is its index here.
std::vector<int64_t> visible_chunks(int64_t chunk, const StreamLayout& layout);
// The full-sequence additive mask (0 visible, -inf hidden) equivalent to streaming `chunks` chunks: [L, L],
// L = chunks * tokens_per_chunk.
at::Tensor streaming_attention_mask(int64_t chunks, int64_t tokens_per_chunk, const StreamLayout& layout);

class KvCache : public SelfAttention {
 public:
  // chunk_grid: the token grid of one chunk (frames = layout.chunk_frames).
  KvCache(const DitConfig& config, const StreamLayout& layout, int64_t batch, const TokenGrid& chunk_grid,
          const at::TensorOptions& options);

  // The next forward pass either only reads the cache (denoising steps) or, as the chunk's clean pass, also
  // commits its keys/values: the chunk then joins the sink or the window.
  void set_commit(bool commit) { commit_ = commit; }
  void reset();

  void begin(const TokenGrid& grid) override;
  at::Tensor attend(int64_t block, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) override;

  int64_t chunks_committed() const { return chunks_committed_; }
  int64_t cached_chunks() const { return sink_filled_ + window_filled_; }
  int64_t cached_tokens() const { return cached_chunks() * tokens_per_chunk_; }
  int64_t capacity_tokens() const { return keys_.empty() ? 0 : keys_[0].size(1); }  // fixed at construction
  int64_t max_position_used() const { return max_position_used_; }
  const StreamLayout& layout() const { return layout_; }

  // The host-side bookkeeping, apart from the tensors. A captured CUDA graph replays a chunk's device work without
  // the host code that moves this cursor, so the graph's owner saves it before capture and sets it after replay.
  struct Cursor {
    int64_t sink_filled = 0, window_filled = 0, window_oldest = 0, chunks_committed = 0, max_position_used = -1;
  };
  Cursor cursor() const;
  void set_cursor(const Cursor& c);
  // Sink and window full: from here on every chunk runs the same kernels on the same buffers, except for the
  // window ring's phase (which ring entry is oldest): a chunk's device work is a function of ring_phase() alone.
  bool steady() const { return sink_filled_ == layout_.sink_chunks && window_filled_ == layout_.window_chunks; }
  int64_t ring_phase() const { return window_oldest_; }
  // Every key/value buffer, all allocated at construction and never replaced.
  std::vector<at::Tensor> buffers() const;

 private:
  void commit(int64_t block, const at::Tensor& k_rotated, const at::Tensor& k_raw, const at::Tensor& v);
  void advance();  // after the last block of a committing pass
  void rotate_window(int64_t block);

  StreamLayout layout_;
  TokenGrid chunk_grid_;
  int64_t num_blocks_, tokens_per_chunk_;
  std::vector<RopeTable> slot_rope_;  // per slot 0 .. S + W: the RoPE table of a chunk in that slot
  // Per block. keys_/values_: [B, (S + W + 1) * Lc, H, d] laid out [sink | window (oldest first) | current chunk];
  // window_keys_/window_values_: [B, W * Lc, H, d] ring of un-rotated window entries.
  std::vector<at::Tensor> keys_, values_, window_keys_, window_values_;
  int64_t sink_filled_ = 0, window_filled_ = 0, window_oldest_ = 0, chunks_committed_ = 0;
  int64_t max_position_used_ = -1;
  bool commit_ = false;
};

}  // namespace ms
