#include "motionstream/tracks/track_set.h"

#include <stdexcept>
#include <string>

namespace ms {

namespace {
std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}
}  // namespace

void TrackSet::validate() const {
  if (!xy.defined() || xy.dim() != 3 || xy.size(2) != 2)
    throw std::invalid_argument("TrackSet.xy must be [T, N, 2], got " + (xy.defined() ? shape_str(xy) : "nothing"));
  if (xy.scalar_type() != at::kFloat) throw std::invalid_argument("TrackSet.xy must be float32");
  if (!visible.defined() || visible.dim() != 2 || visible.size(0) != xy.size(0) || visible.size(1) != xy.size(1))
    throw std::invalid_argument("TrackSet.visible must be [T, N] = [" + std::to_string(xy.size(0)) + ", " +
                                std::to_string(xy.size(1)) + "], got " +
                                (visible.defined() ? shape_str(visible) : "nothing"));
  if (visible.scalar_type() != at::kBool) throw std::invalid_argument("TrackSet.visible must be bool");
  if (!at::isfinite(xy).all().item<bool>()) throw std::invalid_argument("TrackSet.xy holds NaN or infinite coordinates");
  if (width <= 0 || height <= 0)
    throw std::invalid_argument("TrackSet image size must be positive, got " + std::to_string(width) + "x" +
                                std::to_string(height));
  if (!(fps > 0.0)) throw std::invalid_argument("TrackSet.fps must be positive, got " + std::to_string(fps));
}

TrackSet TrackSet::still(const at::Tensor& xy, int64_t frames, int64_t width, int64_t height, double fps) {
  TrackSet t;
  t.xy = xy.to(at::kFloat).unsqueeze(0).expand({frames, xy.size(0), 2}).contiguous();
  t.visible = at::ones({frames, xy.size(0)}, at::kBool);
  t.width = width;
  t.height = height;
  t.fps = fps;
  t.validate();
  return t;
}

}  // namespace ms
