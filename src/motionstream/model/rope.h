// 3D rotary position embedding in the Wan2.1 layout.
//
// head_dim/2 complex pairs (adjacent elements form a pair) are split over the three token axes:
// d_h = d_w = 2*floor(head_dim/6) elements, d_t = head_dim - d_h - d_w (128 -> t 44, h 42, w 42, i.e.
// 22/21/21 pairs). Pair j of an axis with d elements turns by pos * 10000^(-2j/d).
#pragma once

#include <ATen/ATen.h>

namespace ms {

struct RopeSplit {
  int64_t t, h, w;  // complex pairs per axis; t + h + w == head_dim / 2
};
RopeSplit rope_split(int64_t head_dim);

// Token positions of a (frames, h, w) grid flattened row-major (f, h, w), with the frame axis
// starting at first_frame. -> [frames*h*w, 3] float64 (frame, row, column)
at::Tensor grid_positions(int64_t frames, int64_t h, int64_t w, int64_t first_frame = 0);

struct RopeTable {
  at::Tensor cos, sin;  // [L, head_dim/2], float32
};
// positions: [L, 3] (frame, row, column); float64 so large positions keep their precision.
RopeTable rope_table(const at::Tensor& positions, int64_t head_dim);

// x: [B, L, H, head_dim] -> rotated, same shape and dtype (the rotation itself runs in float32).
at::Tensor apply_rope(const at::Tensor& x, const RopeTable& table);

}  // namespace ms
