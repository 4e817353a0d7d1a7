// What a user draws, turned into point tracks: paths, keyframed points, grid drags and pins.
//
// Conventions shared by every generator:
// - frame t is shown at time t / fps seconds; the last frame at (frames - 1) / fps;
// - positions are pixels of a width x height image (x right, y down, (0, 0) the top-left corner);
// - a point is visible while it lies inside the image, [0, width) x [0, height), and (for a released drag) before
//   its release; the positions of invisible points are still finite and meaningful (held or extrapolated path).
// Bad input throws std::invalid_argument whose message starts with the name of the offending argument.
#pragma once

#include <vector>

#include "motionstream/tracks/track_set.h"

namespace ms {

struct Point2 {
  double x = 0.0, y = 0.0;
};

// Frame count, frame rate and image size of the tracks a generator returns.
struct TrackCanvas {
  int64_t frames = 81;
  int64_t width = 832, height = 480;
  double fps = 16.0;
};

// A path played at constant speed along its length (arc-length parametrised): at the first vertex until start_s,
// at the last vertex from end_s on. A single vertex is a point that holds still.
struct Polyline {
  std::vector<Point2> vertices;
  double start_s = 0.0;
  double end_s = -1.0;  // < 0: the time of the last frame
};

// One point per polyline.
TrackSet polyline_tracks(const std::vector<Polyline>& polylines, const TrackCanvas& canvas);

struct Keyframe {
  double time_s = 0.0, x = 0.0, y = 0.0;
};

// kCatmullRom: a cubic Hermite curve through the keyframes whose tangent at each inner keyframe is the chord
// (p[i+1] - p[i-1]) / (t[i+1] - t[i-1]) (time-aware, so uneven keyframe spacing does not overshoot), and the
// one-sided chord at the first and last keyframe. Keyframes of a constant-velocity motion give exactly that motion.
enum class Interpolation { kLinear, kCatmullRom };

// One point per keyframe list; times strictly increasing. Before the first / after the last keyframe the point holds
// that keyframe's position.
TrackSet keyframe_tracks(const std::vector<std::vector<Keyframe>>& points, const TrackCanvas& canvas,
                         Interpolation interpolation = Interpolation::kLinear);

// The MotionStream drag: a k x k grid of points, `spacing` pixels apart, centred on the path's position, all
// translating together. Points are ordered row by row (y outer, x inner). With release_s >= 0 the drag is let go
// at that time: on frames shown after it (time > release_s) every point is invisible and holds its release position.
struct GridDrag {
  Polyline path;  // the grid centre; its first vertex is where the user grabbed
  int64_t k = 3;
  double spacing = 8.0;
  double release_s = -1.0;  // < 0: never released
};

TrackSet grid_drag(const GridDrag& drag, const TrackCanvas& canvas);

// Points that hold still on every frame (anchors that tell the model "this does not move").
TrackSet pins(const std::vector<Point2>& points, const TrackCanvas& canvas);

// The points of a followed by those of b; both must share frames, fps and image size.
TrackSet concat_points(const TrackSet& a, const TrackSet& b);

}  // namespace ms
