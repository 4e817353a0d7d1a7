#include "motionstream/model/rope.h"

#include <stdexcept>

namespace ms {

RopeSplit rope_split(int64_t head_dim) {
  if (head_dim % 2 != 0 || head_dim < 6)
    throw std::invalid_argument("rope_split: head_dim must be even and >= 6, got " + std::to_string(head_dim));
  const int64_t d_hw = 2 * (head_dim / 6);
  const int64_t d_t = head_dim - 2 * d_hw;
  return {d_t / 2, d_hw / 2, d_hw / 2};
}

at::Tensor grid_positions(int64_t frames, int64_t h, int64_t w, int64_t first_frame) {
  auto opts = at::TensorOptions().dtype(at::kDouble);
  auto f = at::arange(first_frame, first_frame + frames, opts).view({frames, 1, 1}).expand({frames, h, w});
  auto r = at::arange(h, opts).view({1, h, 1}).expand({frames, h, w});
  auto c = at::arange(w, opts).view({1, 1, w}).expand({frames, h, w});
  return at::stack({f, r, c}, -1).reshape({frames * h * w, 3});
}

RopeTable rope_table(const at::Tensor& positions, int64_t head_dim) {
  TORCH_CHECK(positions.dim() == 2 && positions.size(1) == 3, "rope_table: positions must be [L, 3], got ",
              positions.sizes());
  const RopeSplit split = rope_split(head_dim);
  auto pos = positions.to(at::kDouble).cpu();
  std::vector<at::Tensor> angles;
  const int64_t pairs[3] = {split.t, split.h, split.w};
  for (int axis = 0; axis < 3; ++axis) {
    const double d = 2.0 * static_cast<double>(pairs[axis]);
    auto j = at::arange(pairs[axis], at::TensorOptions().dtype(at::kDouble));
    auto freq = at::pow(10000.0, -2.0 * j / d);                          // [pairs]
    angles.push_back(pos.select(1, axis).unsqueeze(1) * freq.unsqueeze(0));  // [L, pairs]
  }
  auto angle = at::cat(angles, 1);  // [L, head_dim/2]
  return {at::cos(angle).to(at::kFloat).to(positions.device()), at::sin(angle).to(at::kFloat).to(positions.device())};
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTable& table) {
  const auto B = x.size(0), L = x.size(1), H = x.size(2), d = x.size(3);
  TORCH_CHECK(table.cos.size(0) == L && table.cos.size(1) == d / 2, "apply_rope: table ", table.cos.sizes(),
              " does not fit x ", x.sizes());
  // Adjacent elements are (re, im) of one complex number: the rotation is one complex multiply (3 kernels).
  auto pairs = at::view_as_complex(x.to(at::kFloat).reshape({B, L, H, d / 2, 2}));  // [B, L, H, d/2]
  auto turn = at::complex(table.cos, table.sin).to(x.device()).view({1, L, 1, d / 2});
  return at::view_as_real(pairs * turn).view({B, L, H, d}).to(x.scalar_type());
}

}  // namespace ms
