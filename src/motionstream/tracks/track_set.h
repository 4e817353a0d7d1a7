// TrackSet: N 2D point tracks over T video frames, in pixels of the image they were drawn on.
#pragma once

#include <ATen/ATen.h>

namespace ms {

struct TrackSet {
  at::Tensor xy;       // [T, N, 2] float32, (x, y) pixels; x to the right, y down, (0, 0) the top-left corner
  at::Tensor visible;  // [T, N] bool; false = occluded or out of view
  double fps = 16.0;
  int64_t width = 0, height = 0;  // size of the image the pixel coordinates refer to

  int64_t frames() const { return xy.defined() ? xy.size(0) : 0; }
  int64_t points() const { return xy.defined() ? xy.size(1) : 0; }
  // Throws std::invalid_argument naming the field: shapes, dtypes, finite coordinates, positive size and fps.
  void validate() const;
  // Tracks that hold still at the given positions for `frames` frames (all visible). xy: [N, 2]
  static TrackSet still(const at::Tensor& xy, int64_t frames, int64_t width, int64_t height, double fps = 16.0);
};

}  // namespace ms
