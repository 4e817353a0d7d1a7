// Drawn-motion track generators against hand-computed positions.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "motionstream/tracks/track_generators.h"

using namespace ms;

namespace {

void expect_at(const TrackSet& t, int64_t frame, int64_t point, double x, double y, double tol = 1e-4) {
  EXPECT_NEAR(t.xy[frame][point][0].item<float>(), x, tol) << "frame " << frame << " point " << point;
  EXPECT_NEAR(t.xy[frame][point][1].item<float>(), y, tol) << "frame " << frame << " point " << point;
}

// The call throws std::invalid_argument and its message starts with `name`.
void expect_error_naming(const std::function<void()>& call, const std::string& name) {
  try {
    call();
    ADD_FAILURE() << "no error for " << name;
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind(name, 0), 0u) << e.what();
  }
}

TrackCanvas canvas(int64_t frames, double fps, int64_t size = 64) { return {frames, size, size, fps}; }

}  // namespace

TEST(TrackGenerators, PolylineLShapeReachesCornerAndEnd) {
  // Legs of 30 and 10 pixels over 41 frames: one pixel of path per frame.
  const TrackSet t = polyline_tracks({{{{10, 10}, {40, 10}, {40, 20}}}}, canvas(41, 16.0));
  ASSERT_EQ(t.frames(), 41);
  ASSERT_EQ(t.points(), 1);
  expect_at(t, 0, 0, 10, 10);
  expect_at(t, 15, 0, 25, 10);
  expect_at(t, 30, 0, 40, 10);
  expect_at(t, 35, 0, 40, 15);
  expect_at(t, 40, 0, 40, 20);
  EXPECT_TRUE(t.visible.all().item<bool>());
  EXPECT_EQ(t.width, 64);
  EXPECT_DOUBLE_EQ(t.fps, 16.0);
}

TEST(TrackGenerators, PolylineHoldsOutsideItsTimeWindow) {
  Polyline line{{{0, 5}, {20, 5}}, 1.0, 2.0};
  Polyline still{{{7, 9}}};
  const TrackSet t = polyline_tracks({line, still}, canvas(31, 10.0));  // frames at 0.0, 0.1, ... 3.0 s
  expect_at(t, 0, 0, 0, 5);
  expect_at(t, 10, 0, 0, 5);
  expect_at(t, 15, 0, 10, 5);
  expect_at(t, 20, 0, 20, 5);
  expect_at(t, 30, 0, 20, 5);
  for (int64_t f : {0, 17, 30}) expect_at(t, f, 1, 7, 9);
}

TEST(TrackGenerators, KeyframesLinear) {
  const std::vector<Keyframe> a{{0.0, 10, 10}, {1.0, 30, 10}, {2.0, 30, 50}};
  const std::vector<Keyframe> b{{0.5, 4, 4}, {1.0, 8, 12}};
  const TrackSet t = keyframe_tracks({a, b}, canvas(13, 4.0));  // frames every 0.25 s up to 3 s
  expect_at(t, 1, 0, 15, 10);
  expect_at(t, 2, 0, 20, 10);
  expect_at(t, 4, 0, 30, 10);
  expect_at(t, 6, 0, 30, 30);
  expect_at(t, 7, 0, 30, 40);
  expect_at(t, 12, 0, 30, 50);  // held after the last keyframe
  expect_at(t, 0, 1, 4, 4);     // held before the first keyframe
  expect_at(t, 1, 1, 4, 4);
  expect_at(t, 3, 1, 6, 8);
  expect_at(t, 10, 1, 8, 12);
}

TEST(TrackGenerators, KeyframesCatmullRom) {
  // Keys (0 s: 0,0) (1 s: 10,0) (2 s: 10,10). Tangent at the middle key (10,10)/2 = (5,5), at the last (0,10).
  // At 1.5 s (s = 0.5, h = 1): Hermite weights 0.5, 0.125, 0.5, -0.125 ->
  // x = 5 + 0.625 + 5 - 0 = 10.625, y = 0 + 0.625 + 5 - 1.25 = 4.375.
  const std::vector<Keyframe> keys{{0, 0, 0}, {1, 10, 0}, {2, 10, 10}};
  const TrackSet t = keyframe_tracks({keys}, canvas(5, 2.0), Interpolation::kCatmullRom);
  expect_at(t, 0, 0, 0, 0);
  expect_at(t, 2, 0, 10, 0);
  expect_at(t, 3, 0, 10.625, 4.375);
  expect_at(t, 4, 0, 10, 10);

  // Unevenly timed keyframes of one constant velocity (4 px/s) give exactly that motion.
  const std::vector<Keyframe> steady{{0, 2, 1}, {0.5, 4, 1}, {2.0, 10, 1}, {2.5, 12, 1}};
  const TrackSet s = keyframe_tracks({steady}, canvas(11, 4.0), Interpolation::kCatmullRom);
  for (int64_t f = 0; f < 11; ++f) expect_at(s, f, 0, 2 + 4 * (f / 4.0), 1);
}

TEST(TrackGenerators, GridDragFollowsPathAndDisappearsAfterRelease) {
  GridDrag drag;
  drag.path = Polyline{{{20, 30}, {40, 30}}};  // 20 px over 20 frames: 1 px per frame
  drag.k = 3;
  drag.spacing = 8;
  drag.release_s = 1.5;
  const TrackSet t = grid_drag(drag, canvas(21, 10.0));
  ASSERT_EQ(t.points(), 9);
  for (int64_t f = 0; f < 21; ++f) {
    const bool held = f <= 15;  // frame 15 is shown at 1.5 s, the release itself
    const double cx = 20.0 + static_cast<double>(held ? f : 15);
    for (int64_t row = 0; row < 3; ++row)
      for (int64_t col = 0; col < 3; ++col) {
        const int64_t n = row * 3 + col;
        expect_at(t, f, n, cx + 8.0 * static_cast<double>(col - 1), 30.0 + 8.0 * static_cast<double>(row - 1));
        EXPECT_EQ(t.visible[f][n].item<bool>(), held) << f << " " << n;
      }
  }
  drag.release_s = -1.0;
  EXPECT_TRUE(grid_drag(drag, canvas(21, 10.0)).visible.all().item<bool>());
}

TEST(TrackGenerators, PinsStayPutAndOutsidePointsAreInvisible) {
  const TrackSet t = pins({{3, 4}, {63.5, 0}, {64, 10}}, canvas(9, 16.0));
  for (int64_t f = 0; f < 9; ++f) {
    expect_at(t, f, 0, 3, 4);
    expect_at(t, f, 1, 63.5, 0);
    expect_at(t, f, 2, 64, 10);
    EXPECT_TRUE(t.visible[f][0].item<bool>());
    EXPECT_TRUE(t.visible[f][1].item<bool>());
    EXPECT_FALSE(t.visible[f][2].item<bool>());  // x = width is outside [0, width)
  }
}

TEST(TrackGenerators, ConcatAppendsPoints) {
  const TrackSet a = pins({{1, 2}}, canvas(5, 16.0));
  const TrackSet b = polyline_tracks({{{{0, 0}, {8, 0}}}, {{{5, 5}}}}, canvas(5, 16.0));
  const TrackSet c = concat_points(a, b);
  ASSERT_EQ(c.points(), 3);
  ASSERT_EQ(c.frames(), 5);
  expect_at(c, 4, 0, 1, 2);
  expect_at(c, 2, 1, 4, 0);
  expect_at(c, 3, 2, 5, 5);
  expect_error_naming([&] { concat_points(a, pins({{1, 2}}, canvas(6, 16.0))); }, "b.frames");
  expect_error_naming([&] { concat_points(a, pins({{1, 2}}, canvas(5, 8.0))); }, "b.fps");
  expect_error_naming([&] { concat_points(a, pins({{1, 2}}, canvas(5, 16.0, 32))); }, "b image size");
}

TEST(TrackGenerators, BadInputsNameTheArgument) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_error_naming([] { polyline_tracks({}, canvas(5, 16.0)); }, "polylines");
  expect_error_naming([] { polyline_tracks({Polyline{}}, canvas(5, 16.0)); }, "polylines[0].vertices");
  expect_error_naming([&] { polyline_tracks({{{{0, 0}, {nan, 1}}}}, canvas(5, 16.0)); },
                      "polylines[0].vertices[1]");
  expect_error_naming([] { polyline_tracks({{{{0, 0}, {1, 1}}, 2.0, 1.0}}, canvas(5, 16.0)); },
                      "polylines[0].end_s");
  expect_error_naming([] { keyframe_tracks({{{0, 1, 1}, {0, 2, 2}}}, canvas(5, 16.0)); }, "points[0][1].time_s");
  expect_error_naming([] { keyframe_tracks({{{0, 1, 1}}, {}}, canvas(5, 16.0)); }, "points[1]");
  expect_error_naming([&] { keyframe_tracks({{{0, nan, 1}}}, canvas(5, 16.0)); }, "points[0][0]");
  expect_error_naming([] { pins({{1, 1}}, {5, 0, 64, 16.0}); }, "canvas size");
  expect_error_naming([] { pins({{1, 1}}, {0, 64, 64, 16.0}); }, "canvas.frames");
  expect_error_naming([&] { pins({{1, 1}}, {5, 64, 64, nan}); }, "canvas.fps");
  expect_error_naming([&] { pins({{1, nan}}, canvas(5, 16.0)); }, "points[0]");
  expect_error_naming([] { pins({}, canvas(5, 16.0)); }, "points");
  GridDrag drag;
  drag.path = Polyline{{{10, 10}}};
  drag.k = 0;
  expect_error_naming([&] { grid_drag(drag, canvas(5, 16.0)); }, "drag.k");
  drag.k = 2;
  drag.spacing = 0;
  expect_error_naming([&] { grid_drag(drag, canvas(5, 16.0)); }, "drag.spacing");
  drag.spacing = 4;
  drag.path.vertices.clear();
  expect_error_naming([&] { grid_drag(drag, canvas(5, 16.0)); }, "drag.path.vertices");
}
