// Attention primitives shared by the full-sequence and the streaming (KV cache) passes.
#pragma once

#include <ATen/ATen.h>

#include "motionstream/model/rope.h"

namespace ms {

// The token grid of one forward pass: frames x rows x columns after patchifying.
struct TokenGrid {
  int64_t frames = 0, h = 0, w = 0;
  int64_t tokens() const { return frames * h * w; }
  int64_t tokens_per_frame() const { return h * w; }
  bool operator==(const TokenGrid& o) const { return frames == o.frames && h == o.h && w == o.w; }
};

// softmax(q k^T / sqrt(d) + mask) v.  q: [B, Lq, H, d], k/v: [B, Lk, H, d], mask: [Lq, Lk] additive
// (0 or -inf) or undefined. -> [B, Lq, H, d]. Uses the fused kernel where torch provides one.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask = {});

// The part of self-attention that differs between passes: where keys come from and which positions they get.
// A forward pass calls begin() once, then attend() once per block in order.
class SelfAttention {
 public:
  virtual ~SelfAttention() = default;
  virtual void begin(const TokenGrid& grid) = 0;
  // q, k, v: [B, L, H, d], RMS-normed, not yet rotated. -> [B, L, H, d]
  virtual at::Tensor attend(int64_t block, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) = 0;
};

// Full-sequence self-attention: RoPE at explicit token positions and an optional additive mask.
// Bidirectional (teacher) with no mask; block-causal/sink/window with streaming_attention_mask().
class MaskedSelfAttention : public SelfAttention {
 public:
  MaskedSelfAttention(at::Tensor positions /*[L, 3]*/, int64_t head_dim, at::Tensor mask = {} /*[L, L]*/);
  // Positions of the grid itself (frame 0 first), no mask: the plain bidirectional pass.
  static MaskedSelfAttention bidirectional(const TokenGrid& grid, int64_t head_dim);
  void begin(const TokenGrid& grid) override;
  at::Tensor attend(int64_t block, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) override;

 private:
  RopeTable rope_;
  at::Tensor mask_;
  int64_t tokens_;
};

}  // namespace ms
