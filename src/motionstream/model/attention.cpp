#include "motionstream/model/attention.h"

#include <torch/version.h>

#include <cmath>
#include <optional>

namespace ms {

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask) {
  auto qh = q.transpose(1, 2), kh = k.transpose(1, 2), vh = v.transpose(1, 2);  // [B, H, L, d]
#if TORCH_VERSION_MAJOR >= 2
  std::optional<at::Tensor> m;
  if (mask.defined()) m = mask.to(q.scalar_type());
  return at::scaled_dot_product_attention(qh, kh, vh, m).transpose(1, 2);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = at::matmul(qh, kh.transpose(-2, -1)).mul_(scale);  // [B, H, Lq, Lk]
  if (mask.defined()) scores.add_(mask.to(scores.scalar_type()));
  return at::matmul(at::softmax(scores, -1), vh).transpose(1, 2);
#endif
}

MaskedSelfAttention::MaskedSelfAttention(at::Tensor positions, int64_t head_dim, at::Tensor mask)
    : rope_(rope_table(positions, head_dim)), mask_(std::move(mask)), tokens_(positions.size(0)) {
  TORCH_CHECK(!mask_.defined() || (mask_.dim() == 2 && mask_.size(0) == tokens_ && mask_.size(1) == tokens_),
              "MaskedSelfAttention: mask ", mask_.sizes(), " does not match ", tokens_, " positions");
}

MaskedSelfAttention MaskedSelfAttention::bidirectional(const TokenGrid& grid, int64_t head_dim) {
  return MaskedSelfAttention(grid_positions(grid.frames, grid.h, grid.w), head_dim);
}

void MaskedSelfAttention::begin(const TokenGrid& grid) {
  TORCH_CHECK(grid.tokens() == tokens_, "MaskedSelfAttention: built for ", tokens_, " tokens, the input has ",
              grid.tokens());
}

at::Tensor MaskedSelfAttention::attend(int64_t, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  at::Tensor mask = mask_.defined() ? mask_.to(q.device()) : mask_;
  return attention(apply_rope(q, rope_), apply_rope(k, rope_), v, mask);
}

}  // namespace ms
