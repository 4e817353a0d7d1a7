#include "motionstream/tracks/live_tracks.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ms {

namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

int64_t checked_frame(int64_t frame, const char* what) {
  require(frame >= -1, std::string(what) + ".frame must be >= -1 (-1: before the first frame), got " +
                           std::to_string(frame));
  return frame;
}

// Position at fraction s in [0, 1] of the polyline's length.
Point2 along(const std::vector<Point2>& v, double s) {
  std::vector<double> length(v.size(), 0.0);
  for (size_t i = 1; i < v.size(); ++i) length[i] = length[i - 1] + std::hypot(v[i].x - v[i - 1].x, v[i].y - v[i - 1].y);
  const double target = std::clamp(s, 0.0, 1.0) * length.back();
  for (size_t i = 1; i < v.size(); ++i) {
    if (target <= length[i] && length[i] > length[i - 1]) {
      const double u = (target - length[i - 1]) / (length[i] - length[i - 1]);
      return {v[i - 1].x + u * (v[i].x - v[i - 1].x), v[i - 1].y + u * (v[i].y - v[i - 1].y)};
    }
  }
  return v.back();
}

}  // namespace

LiveTracks::LiveTracks(int64_t width, int64_t height, double fps) : width_(width), height_(height), fps_(fps) {
  require(width > 0 && height > 0, "image size must be positive, got " + std::to_string(width) + "x" +
                                        std::to_string(height));
  require(std::isfinite(fps) && fps > 0.0, "fps must be positive, got " + std::to_string(fps));
}

Point2 LiveTracks::checked(Point2 p, const char* what) const {
  require(std::isfinite(p.x) && std::isfinite(p.y), std::string(what) + " must be finite");
  require(p.x >= 0.0 && p.x < width_ && p.y >= 0.0 && p.y < height_,
          std::string(what) + " (" + std::to_string(p.x) + ", " + std::to_string(p.y) + ") is outside the " +
              std::to_string(width_) + "x" + std::to_string(height_) + " image");
  return p;
}

LiveTracks::Control* LiveTracks::held_drag() {
  for (auto it = controls_.rbegin(); it != controls_.rend(); ++it)
    if (it->kind == Control::kDrag) return it->released_after < 0 ? &*it : nullptr;
  return nullptr;
}

bool LiveTracks::dragging() const { return const_cast<LiveTracks*>(this)->held_drag() != nullptr; }

void LiveTracks::drag_down(int64_t frame, Point2 at, int64_t grid, double spacing) {
  checked_frame(frame, "drag");
  checked(at, "drag position");
  require(grid >= 1 && grid <= 16, "drag.grid must be in [1, 16], got " + std::to_string(grid));
  require(std::isfinite(spacing) && spacing > 0.0 && spacing <= std::max(width_, height_),
          "drag.spacing must be positive and at most the image size, got " + std::to_string(spacing));
  if (Control* old = held_drag()) old->released_after = std::max(frame, old->cursor.back().first);
  Control drag;
  const double centre = (grid - 1) / 2.0;
  for (int64_t r = 0; r < grid; ++r)
    for (int64_t c = 0; c < grid; ++c) drag.offsets.push_back({(c - centre) * spacing, (r - centre) * spacing});
  drag.cursor.push_back({frame, at});
  controls_.push_back(std::move(drag));
}

void LiveTracks::drag_move(int64_t frame, Point2 at) {
  checked_frame(frame, "drag");
  // The cursor may leave the image while dragging: its points then go out of view (invisible), like the content.
  require(std::isfinite(at.x) && std::isfinite(at.y), "drag position must be finite");
  Control* drag = held_drag();
  if (!drag) return;
  drag->cursor.push_back({std::max(frame, drag->cursor.back().first), at});  // arrival order wins over stale frames
}

void LiveTracks::drag_up(int64_t frame, Point2 at) {
  drag_move(frame, at);
  if (Control* drag = held_drag()) drag->released_after = drag->cursor.back().first;
}

void LiveTracks::pin(int64_t frame, Point2 at) {
  checked_frame(frame, "pin");
  Control pin;
  pin.kind = Control::kPin;
  pin.offsets = {{0.0, 0.0}};
  pin.vertices = {checked(at, "pin position")};
  controls_.push_back(std::move(pin));
}

void LiveTracks::path(int64_t frame, std::vector<Point2> vertices, int64_t frames) {
  checked_frame(frame, "path");
  require(!vertices.empty(), "path.points must not be empty");
  require(vertices.size() <= 4096, "path.points has " + std::to_string(vertices.size()) + " points, at most 4096");
  require(frames >= 1 && frames <= 100000, "path.frames must be in [1, 100000], got " + std::to_string(frames));
  for (const Point2& p : vertices) checked(p, "path point");
  Control path;
  path.kind = Control::kPath;
  path.offsets = {{0.0, 0.0}};
  path.start_frame = frame;
  path.frames = frames;
  path.vertices = std::move(vertices);
  controls_.push_back(std::move(path));
}

void LiveTracks::clear() { controls_.clear(); }

int64_t LiveTracks::points() const {
  int64_t n = 0;
  for (const Control& c : controls_) n += static_cast<int64_t>(c.offsets.size());
  return n;
}

Point2 LiveTracks::position(const Control& control, int64_t frame) const {
  switch (control.kind) {
    case Control::kDrag: {
      // The newest cursor drawn on a frame before this one; before the grab, where the grab happened.
      Point2 p = control.cursor.front().second;
      for (const auto& [drawn_on, at] : control.cursor) {
        if (drawn_on >= frame) break;
        p = at;
      }
      return p;
    }
    case Control::kPin:
      return control.vertices.front();
    case Control::kPath:
      return along(control.vertices, static_cast<double>(frame - control.start_frame) / control.frames);
  }
  return {};
}

TrackSet LiveTracks::tracks(int64_t frames) const {
  require(frames >= 1, "frames must be at least 1, got " + std::to_string(frames));
  const int64_t n = points();
  require(n > 0, "no controls: there are no tracks to make");
  std::vector<float> xy(frames * n * 2);
  std::vector<uint8_t> visible(frames * n);
  int64_t first = 0;  // index of the control's first point
  for (const Control& c : controls_) {
    for (int64_t f = 0; f < frames; ++f) {
      const Point2 anchor = position(c, f);
      const bool released = c.kind == Control::kDrag && c.released_after >= 0 && f > c.released_after;
      for (size_t j = 0; j < c.offsets.size(); ++j) {
        const double x = anchor.x + c.offsets[j].x, y = anchor.y + c.offsets[j].y;
        const int64_t i = f * n + first + static_cast<int64_t>(j);
        xy[2 * i] = static_cast<float>(x);
        xy[2 * i + 1] = static_cast<float>(y);
        visible[i] = !released && x >= 0.0 && x < width_ && y >= 0.0 && y < height_;
      }
    }
    first += static_cast<int64_t>(c.offsets.size());
  }
  TrackSet t;
  t.xy = at::tensor(xy, at::kFloat).reshape({frames, n, 2});                       // [T, N, 2]
  t.visible = at::tensor(visible, at::kByte).reshape({frames, n}).to(at::kBool);  // [T, N]
  t.fps = fps_;
  t.width = width_;
  t.height = height_;
  return t;
}

}  // namespace ms
