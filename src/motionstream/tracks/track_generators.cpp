#include "motionstream/tracks/track_generators.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ms {

namespace {

std::string indexed(const std::string& name, size_t i) { return name + "[" + std::to_string(i) + "]"; }

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

void check_canvas(const TrackCanvas& canvas) {
  require(canvas.frames >= 1, "canvas.frames must be at least 1, got " + std::to_string(canvas.frames));
  require(canvas.width > 0 && canvas.height > 0, "canvas size must be positive, got " +
                                                     std::to_string(canvas.width) + "x" +
                                                     std::to_string(canvas.height));
  require(std::isfinite(canvas.fps) && canvas.fps > 0.0, "canvas.fps must be positive, got " +
                                                             std::to_string(canvas.fps));
}

void check_point(const Point2& p, const std::string& name) {
  require(std::isfinite(p.x) && std::isfinite(p.y), name + " must be finite");
}

double frame_time(int64_t frame, const TrackCanvas& canvas) { return static_cast<double>(frame) / canvas.fps; }
double last_frame_time(const TrackCanvas& canvas) { return frame_time(canvas.frames - 1, canvas); }

bool inside_image(const Point2& p, const TrackCanvas& canvas) {
  return p.x >= 0.0 && p.x < static_cast<double>(canvas.width) && p.y >= 0.0 &&
         p.y < static_cast<double>(canvas.height);
}

// Positions and visibility filled point by point, then turned into tensors once.
class TrackBuilder {
 public:
  TrackBuilder(const TrackCanvas& canvas, int64_t points)
      : canvas_(canvas), points_(points), xy_(canvas.frames * points * 2), visible_(canvas.frames * points) {}

  void set(int64_t frame, int64_t point, const Point2& p, bool visible) {
    const int64_t i = frame * points_ + point;
    xy_[2 * i] = static_cast<float>(p.x);
    xy_[2 * i + 1] = static_cast<float>(p.y);
    visible_[i] = visible && inside_image(p, canvas_);
  }

  TrackSet finish() {
    TrackSet t;
    t.xy = at::tensor(xy_, at::kFloat).reshape({canvas_.frames, points_, 2});  // [T, N, 2]
    t.visible = at::tensor(visible_, at::kByte).reshape({canvas_.frames, points_}).to(at::kBool);  // [T, N]
    t.fps = canvas_.fps;
    t.width = canvas_.width;
    t.height = canvas_.height;
    t.validate();
    return t;
  }

 private:
  TrackCanvas canvas_;
  int64_t points_;
  std::vector<float> xy_;
  std::vector<uint8_t> visible_;
};

// ---- polylines ----

// A validated polyline with its cumulative arc lengths, sampled by time.
class PathSampler {
 public:
  PathSampler(const Polyline& line, const TrackCanvas& canvas, const std::string& name) : vertices_(line.vertices) {
    require(!vertices_.empty(), name + ".vertices must not be empty");
    for (size_t j = 0; j < vertices_.size(); ++j) check_point(vertices_[j], indexed(name + ".vertices", j));
    require(std::isfinite(line.start_s), name + ".start_s must be finite");
    require(std::isfinite(line.end_s), name + ".end_s must be finite");
    start_s_ = line.start_s;
    if (line.end_s >= 0.0) {
      require(line.end_s >= line.start_s, name + ".end_s must not be before start_s");
      end_s_ = line.end_s;
    } else {
      end_s_ = std::max(start_s_, last_frame_time(canvas));  // a start after the last frame: the point never moves
    }
    cumulative_.push_back(0.0);
    for (size_t j = 1; j < vertices_.size(); ++j)
      cumulative_.push_back(cumulative_.back() + std::hypot(vertices_[j].x - vertices_[j - 1].x,
                                                            vertices_[j].y - vertices_[j - 1].y));
  }

  Point2 at_time(double time_s) const { return at_length(progress(time_s) * cumulative_.back()); }

 private:
  double progress(double time_s) const {
    if (time_s <= start_s_) return 0.0;
    if (time_s >= end_s_) return 1.0;
    return (time_s - start_s_) / (end_s_ - start_s_);
  }

  Point2 at_length(double s) const {
    // First vertex whose cumulative length exceeds s ends the segment that holds s.
    const auto after = std::upper_bound(cumulative_.begin(), cumulative_.end(), s);
    if (after == cumulative_.end()) return vertices_.back();
    const size_t j = static_cast<size_t>(after - cumulative_.begin());
    const double segment = cumulative_[j] - cumulative_[j - 1];
    const double w = (s - cumulative_[j - 1]) / segment;  // segment > 0: s lies strictly inside it
    return {vertices_[j - 1].x + w * (vertices_[j].x - vertices_[j - 1].x),
            vertices_[j - 1].y + w * (vertices_[j].y - vertices_[j - 1].y)};
  }

  std::vector<Point2> vertices_;
  std::vector<double> cumulative_;
  double start_s_ = 0.0, end_s_ = 0.0;
};

// ---- keyframes ----

void check_keyframes(const std::vector<Keyframe>& keys, const std::string& name) {
  require(!keys.empty(), name + " must hold at least one keyframe");
  for (size_t j = 0; j < keys.size(); ++j) {
    const std::string key = indexed(name, j);
    require(std::isfinite(keys[j].time_s) && std::isfinite(keys[j].x) && std::isfinite(keys[j].y),
            key + " must be finite");
    if (j > 0) require(keys[j].time_s > keys[j - 1].time_s, key + ".time_s must be greater than the previous one");
  }
}

// Velocity (pixels per second) of the Catmull-Rom curve at keyframe i.
Point2 catmull_rom_tangent(const std::vector<Keyframe>& keys, size_t i) {
  const size_t lo = i == 0 ? 0 : i - 1;
  const size_t hi = i + 1 == keys.size() ? i : i + 1;
  const double dt = keys[hi].time_s - keys[lo].time_s;
  return {(keys[hi].x - keys[lo].x) / dt, (keys[hi].y - keys[lo].y) / dt};
}

Point2 interpolate_keyframes(const std::vector<Keyframe>& keys, double time_s, Interpolation interpolation) {
  if (time_s <= keys.front().time_s) return {keys.front().x, keys.front().y};
  if (time_s >= keys.back().time_s) return {keys.back().x, keys.back().y};
  const auto after = std::upper_bound(keys.begin(), keys.end(), time_s,
                                      [](double t, const Keyframe& k) { return t < k.time_s; });
  const size_t i = static_cast<size_t>(after - keys.begin()) - 1;
  const Keyframe& a = keys[i];
  const Keyframe& b = keys[i + 1];
  const double h = b.time_s - a.time_s;
  const double s = (time_s - a.time_s) / h;
  if (interpolation == Interpolation::kLinear) return {a.x + s * (b.x - a.x), a.y + s * (b.y - a.y)};
  // Cubic Hermite basis; tangents are velocities, so they are scaled by the segment duration h.
  const double h00 = (1 + 2 * s) * (1 - s) * (1 - s), h10 = s * (1 - s) * (1 - s);
  const double h01 = s * s * (3 - 2 * s), h11 = s * s * (s - 1);
  const Point2 ma = catmull_rom_tangent(keys, i), mb = catmull_rom_tangent(keys, i + 1);
  return {h00 * a.x + h10 * h * ma.x + h01 * b.x + h11 * h * mb.x,
          h00 * a.y + h10 * h * ma.y + h01 * b.y + h11 * h * mb.y};
}

void check_grid_drag(const GridDrag& drag) {
  require(drag.k >= 1, "drag.k must be at least 1, got " + std::to_string(drag.k));
  require(std::isfinite(drag.spacing) && drag.spacing > 0.0, "drag.spacing must be positive");
  require(std::isfinite(drag.release_s), "drag.release_s must be finite");
}

}  // namespace

TrackSet polyline_tracks(const std::vector<Polyline>& polylines, const TrackCanvas& canvas) {
  check_canvas(canvas);
  require(!polylines.empty(), "polylines must not be empty");
  std::vector<PathSampler> paths;
  for (size_t i = 0; i < polylines.size(); ++i) paths.emplace_back(polylines[i], canvas, indexed("polylines", i));
  TrackBuilder out(canvas, static_cast<int64_t>(paths.size()));
  for (int64_t t = 0; t < canvas.frames; ++t)
    for (size_t n = 0; n < paths.size(); ++n)
      out.set(t, static_cast<int64_t>(n), paths[n].at_time(frame_time(t, canvas)), true);
  return out.finish();
}

TrackSet keyframe_tracks(const std::vector<std::vector<Keyframe>>& points, const TrackCanvas& canvas,
                         Interpolation interpolation) {
  check_canvas(canvas);
  require(!points.empty(), "points must not be empty");
  for (size_t i = 0; i < points.size(); ++i) check_keyframes(points[i], indexed("points", i));
  TrackBuilder out(canvas, static_cast<int64_t>(points.size()));
  for (int64_t t = 0; t < canvas.frames; ++t)
    for (size_t n = 0; n < points.size(); ++n)
      out.set(t, static_cast<int64_t>(n), interpolate_keyframes(points[n], frame_time(t, canvas), interpolation),
              true);
  return out.finish();
}

TrackSet grid_drag(const GridDrag& drag, const TrackCanvas& canvas) {
  check_canvas(canvas);
  check_grid_drag(drag);
  const PathSampler path(drag.path, canvas, "drag.path");
  const bool released = drag.release_s >= 0.0;
  const double half = 0.5 * static_cast<double>(drag.k - 1);
  TrackBuilder out(canvas, drag.k * drag.k);
  for (int64_t t = 0; t < canvas.frames; ++t) {
    const double time_s = frame_time(t, canvas);
    const bool let_go = released && time_s > drag.release_s;
    const Point2 centre = path.at_time(let_go ? drag.release_s : time_s);
    for (int64_t row = 0; row < drag.k; ++row)
      for (int64_t col = 0; col < drag.k; ++col) {
        const Point2 p{centre.x + (static_cast<double>(col) - half) * drag.spacing,
                       centre.y + (static_cast<double>(row) - half) * drag.spacing};
        out.set(t, row * drag.k + col, p, !let_go);
      }
  }
  return out.finish();
}

TrackSet pins(const std::vector<Point2>& points, const TrackCanvas& canvas) {
  check_canvas(canvas);
  require(!points.empty(), "points must not be empty");
  for (size_t n = 0; n < points.size(); ++n) check_point(points[n], indexed("points", n));
  TrackBuilder out(canvas, static_cast<int64_t>(points.size()));
  for (int64_t t = 0; t < canvas.frames; ++t)
    for (size_t n = 0; n < points.size(); ++n) out.set(t, static_cast<int64_t>(n), points[n], true);
  return out.finish();
}

TrackSet concat_points(const TrackSet& a, const TrackSet& b) {
  auto validated = [](const TrackSet& t, const std::string& name) {
    try {
      t.validate();
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(name + ": " + e.what());
    }
  };
  validated(a, "a");
  validated(b, "b");
  require(a.frames() == b.frames(), "b.frames (" + std::to_string(b.frames()) + ") must match a.frames (" +
                                        std::to_string(a.frames()) + ")");
  require(a.width == b.width && a.height == b.height, "b image size must match a's");
  require(a.fps == b.fps, "b.fps must match a.fps");
  TrackSet out = a;
  out.xy = at::cat({a.xy, b.xy}, 1);                 // [T, Na + Nb, 2]
  out.visible = at::cat({a.visible, b.visible}, 1);  // [T, Na + Nb]
  return out;
}

}  // namespace ms
