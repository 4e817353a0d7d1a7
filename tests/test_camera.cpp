// Camera moves turned into tracks, against hand-computed pinhole projections.
// Most cases use a 100x100 image with a 90 degree field of view: f = 50, principal point (50, 50).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "motionstream/tracks/camera.h"
#include "test_util.h"

using namespace ms;

namespace {

constexpr double kPi = 3.14159265358979323846;

CameraOptions fov90() {
  CameraOptions o;
  o.fov_deg = 90.0;
  return o;
}

at::Tensor flat(double metres) { return at::full({100, 100}, metres, at::kFloat); }

at::Tensor points(std::initializer_list<std::pair<double, double>> xy) {
  std::vector<float> v;
  for (const auto& p : xy) v.insert(v.end(), {static_cast<float>(p.first), static_cast<float>(p.second)});
  return at::tensor(v, at::kFloat).reshape({-1, 2});
}

TrackSet tracks(const at::Tensor& depth, const at::Tensor& query, const std::string& moves, int64_t frames) {
  return camera_tracks(depth, query, parse_camera_moves(moves), frames, 16.0, fov90());
}

void expect_at(const TrackSet& t, int64_t frame, int64_t point, double x, double y, double tol = 1e-4) {
  EXPECT_NEAR(t.xy[frame][point][0].item<float>(), x, tol) << "frame " << frame << " point " << point;
  EXPECT_NEAR(t.xy[frame][point][1].item<float>(), y, tol) << "frame " << frame << " point " << point;
}

bool visible(const TrackSet& t, int64_t frame, int64_t point) { return t.visible[frame][point].item<bool>(); }

}  // namespace

TEST(Camera, IntrinsicsFromFieldOfView) {
  const Intrinsics k = intrinsics_from_fov(100, 80, 90.0);
  EXPECT_NEAR(k.focal, 50.0, 1e-12);
  EXPECT_DOUBLE_EQ(k.cx, 50.0);
  EXPECT_DOUBLE_EQ(k.cy, 40.0);
  EXPECT_NEAR(intrinsics_from_fov(832, 480).focal, 416.0 / std::tan(kPi / 6), 1e-9);
  EXPECT_STREQ(kCameraPromptSuffix, "static scene, only camera motion, no object is moving");
}

TEST(Camera, TruckShiftsAPlaneByFocalTimesDistanceOverDepth) {
  // Camera 0.2 m to the right in front of a plane at 2 m: everything slides left by 50 * 0.2 / 2 = 5 px.
  const TrackSet t = tracks(flat(2.0), points({{50.5, 50.5}, {10.5, 70.5}, {90.5, 20.5}}), "truck:0.2", 11);
  const double x0[] = {50.5, 10.5, 90.5}, y0[] = {50.5, 70.5, 20.5};
  for (int64_t f = 0; f < 11; ++f)
    for (int64_t n = 0; n < 3; ++n) {
      expect_at(t, f, n, x0[n] - 5.0 * static_cast<double>(f) / 10.0, y0[n]);
      EXPECT_TRUE(visible(t, f, n));
    }
}

TEST(Camera, DollyInScalesOffsetsByDepthRatio) {
  // 1 m in towards a plane at 2 m: z 2 -> 1.5 -> 1, offsets from the centre times 1, 4/3, 2.
  const TrackSet t = tracks(flat(2.0), points({{60.5, 45.5}, {50, 50}}), "dolly:1", 3);
  expect_at(t, 1, 0, 50 + 10.5 * 4 / 3, 50 - 4.5 * 4 / 3);
  expect_at(t, 2, 0, 50 + 10.5 * 2, 50 - 4.5 * 2);
  expect_at(t, 2, 1, 50, 50);
}

TEST(Camera, ZoomScalesOffsetsByFocalFactor) {
  const TrackSet t = tracks(flat(2.0), points({{60.5, 45.5}}), "zoom:1.5", 3);
  expect_at(t, 1, 0, 50 + 10.5 * std::sqrt(1.5), 50 - 4.5 * std::sqrt(1.5));
  expect_at(t, 2, 0, 50 + 10.5 * 1.5, 50 - 4.5 * 1.5);
}

TEST(Camera, PanAndTiltFollowTheDocumentedSigns) {
  const double a = 10.0 * kPi / 180.0;
  // Pan right by a: the centre slides left to cx - f tan(a); a ray at angle atan(0.4) ends at atan(0.4) - a.
  const TrackSet pan = tracks(flat(2.0), points({{50, 50}, {70, 60}}), "pan:10", 2);
  expect_at(pan, 1, 0, 50 - 50 * std::tan(a), 50);
  expect_at(pan, 1, 1, 50 + 50 * std::tan(std::atan(0.4) - a), 50 + 50 * 0.2 / (0.4 * std::sin(a) + std::cos(a)));
  // Tilt up by a: the centre slides down to cy + f tan(a).
  const TrackSet tilt = tracks(flat(2.0), points({{50, 50}}), "tilt:10", 2);
  expect_at(tilt, 1, 0, 50, 50 + 50 * std::tan(a));
  // Pedestal up by 0.2 m: the plane at 2 m slides down by 5 px.
  expect_at(tracks(flat(2.0), points({{50, 50}}), "pedestal:0.2", 2), 1, 0, 50, 55);
}

TEST(Camera, OrbitKeepsThePivotCentred) {
  // Pivot at 2 m, centre point at 4 m. Orbiting by a, the far point appears at cx + f tan(a / 2) (worked out in
  // docs/CAMERA.md); with the pivot on the plane itself the centre stays put.
  const double a = 20.0 * kPi / 180.0;
  const TrackSet around_nearer = tracks(flat(4.0), points({{50, 50}}), "orbit:20@2", 2);
  expect_at(around_nearer, 1, 0, 50 + 50 * std::tan(a / 2), 50);
  const TrackSet around_centre = tracks(flat(4.0), points({{50, 50}}), "arc:20", 2);
  expect_at(around_centre, 1, 0, 50, 50);
}

TEST(Camera, DollyZoomKeepsTheSubjectSize) {
  // A box at 2 m in front of a wall at 4 m. 1 m in with the focal length halved: the box stays, the wall scales by
  // 0.5 * 4 / 3 = 2/3 about the centre.
  at::Tensor depth = flat(4.0);
  depth.slice(0, 40, 60).slice(1, 40, 60).fill_(2.0);
  const TrackSet t = tracks(depth, points({{45.5, 55.5}, {10.5, 90.5}}), "dolly_zoom:1@2", 2);
  expect_at(t, 1, 0, 45.5, 55.5);
  expect_at(t, 1, 1, 50 - 39.5 * 2 / 3, 50 + 40.5 * 2 / 3);
  EXPECT_TRUE(visible(t, 1, 0));
  EXPECT_TRUE(visible(t, 1, 1));
}

TEST(Camera, MovesComposeInOrder) {
  // Dolly doubles the offsets, the zoom halves them back.
  const TrackSet t = tracks(flat(2.0), points({{60.5, 45.5}}), "dolly:1,zoom:0.5", 2);
  expect_at(t, 1, 0, 60.5, 45.5);
}

TEST(Camera, PointsBehindTheCameraAreInvisible) {
  // 3 m in towards a plane at 2 m over 31 frames: z = 2 - 0.1 t falls to the near plane (0.05 m) between
  // frames 19 (z = 0.1) and 20 (z = 0).
  const TrackSet t = tracks(flat(2.0), points({{50.5, 50.5}}), "dolly:3", 31);
  for (int64_t f = 0; f < 31; ++f) EXPECT_EQ(visible(t, f, 0), f <= 19) << f;
  EXPECT_TRUE(at::isfinite(t.xy).all().item<bool>());
}

TEST(Camera, PointsLeavingTheFrameAreInvisible) {
  // 2 m sideways over 21 frames at 2 m depth: 2.5 px per frame to the left; x = 10.5 - 2.5 t leaves at t = 5.
  const TrackSet t = tracks(flat(2.0), points({{10.5, 50.5}}), "truck:2", 21);
  for (int64_t f = 0; f < 21; ++f) {
    expect_at(t, f, 0, 10.5 - 2.5 * static_cast<double>(f), 50.5);
    EXPECT_EQ(visible(t, f, 0), f <= 4) << f;
  }
}

TEST(Camera, NearBoxHidesAndRevealsWallPoints) {
  // Wall at 4 m; a box at 2 m over columns 48..51, rows 20..79. Truck 1.6 m right over 21 frames: the wall slides
  // 50 * 1.6 / 4 / 20 = 1 px per frame left, the box 2 px. A wall point from column c sits in pixel column c - t;
  // the box covers columns 48 - 2t .. 51 - 2t, so it hides the point while 48 <= c + t <= 51.
  at::Tensor depth = flat(4.0);
  depth.slice(0, 20, 80).slice(1, 48, 52).fill_(2.0);
  const TrackSet t =
      tracks(depth, points({{40.5, 50.5}, {47.5, 50.5}, {30.5, 50.5}, {49.5, 50.5}, {40.5, 10.5}, {52.5, 50.5}}),
             "truck:1.6", 21);
  for (int64_t f = 0; f < 21; ++f) {
    EXPECT_EQ(visible(t, f, 0), !(f >= 8 && f <= 11)) << "wall c=40, frame " << f;
    EXPECT_EQ(visible(t, f, 1), !(f >= 1 && f <= 4)) << "wall c=47, frame " << f;
    EXPECT_EQ(visible(t, f, 2), f < 18) << "wall c=30, frame " << f;
    EXPECT_TRUE(visible(t, f, 3)) << "box, frame " << f;
    EXPECT_TRUE(visible(t, f, 4)) << "wall above the box, frame " << f;
    EXPECT_TRUE(visible(t, f, 5)) << "wall right of the box, frame " << f;
    expect_at(t, f, 0, 40.5 - static_cast<double>(f), 50.5);
    expect_at(t, f, 3, 49.5 - 2.0 * static_cast<double>(f), 50.5);
  }
  // Without the occlusion test only the image border hides points.
  CameraOptions no_occlusion = fov90();
  no_occlusion.occlusion = false;
  const TrackSet all = camera_tracks(depth, points({{40.5, 50.5}}), parse_camera_moves("truck:1.6"), 21, 16.0,
                                     no_occlusion);
  EXPECT_TRUE(all.visible.all().item<bool>());
}

TEST(Camera, GroundPlaneDepthFormula) {
  // 100x100, fov 90 (f = 50), horizon row 40 (pitch atan(10 / 50)), camera 1.5 m, far 50 m.
  GroundPlane g;
  g.fov_deg = 90.0;
  const at::Tensor d = default_ground_plane_depth(100, 100, g);
  ASSERT_EQ(d.size(0), 100);
  ASSERT_EQ(d.size(1), 100);
  const double cos_pitch = std::cos(std::atan(0.2));
  EXPECT_NEAR(d[60][7].item<float>(), 1.5 * 50 / (cos_pitch * 20.5), 1e-4);
  EXPECT_NEAR(d[99][93].item<float>(), 1.5 * 50 / (cos_pitch * 59.5), 1e-4);
  EXPECT_FLOAT_EQ(d[41][0].item<float>(), 50.0f);  // 1.5 * 50 / (cos * 1.5) = 51 m: beyond far
  EXPECT_FLOAT_EQ(d[30][50].item<float>(), 50.0f);  // sky
  EXPECT_TRUE((d[70] == d[70][0]).all().item<bool>());
}

TEST(Camera, GroundPlaneNeverHidesItselfAndTiming) {
  // The lifted ground is a plane seen from above: no move here can put ground in front of ground, so on the ground
  // (depth well short of far) the occlusion test must agree with "in front and inside the image".
  const int64_t size = 256, frames = 81;
  const at::Tensor depth = default_ground_plane_depth(size, size);
  const at::Tensor query = grid_query_points(size, size, 64, 64);  // [4096, 2]
  CameraOptions no_occlusion;
  no_occlusion.occlusion = false;
  const at::Tensor ground = (depth.reshape({-1}).index_select(0, (query.select(1, 1).floor() * size +
                                                                  query.select(1, 0).floor()).to(at::kLong)) < 25.0);
  for (const char* move : {"dolly:1", "dolly:-2", "truck:0.5", "pan:15", "tilt:-10", "orbit:15", "pedestal:0.5",
                           "zoom:0.7", "dolly_zoom:2"}) {
    const auto start = std::chrono::steady_clock::now();
    const TrackSet with = camera_tracks(depth, query, parse_camera_moves(move), frames);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const TrackSet without = camera_tracks(depth, query, parse_camera_moves(move), frames, 16.0, no_occlusion);
    const int64_t wrong = (with.visible != without.visible).logical_and(ground).sum().item<int64_t>();
    EXPECT_EQ(wrong, 0) << move;
    std::printf("[ camera ] %-13s 64x64 queries, %lld frames, %lldx%lld depth: %.1f ms\n", move,
                static_cast<long long>(frames), static_cast<long long>(size), static_cast<long long>(size), ms);
  }
}

TEST(Camera, ParseMoves) {
  const CameraMove d = parse_camera_move("dolly:0.5");
  EXPECT_EQ(d.kind, "dolly");
  EXPECT_DOUBLE_EQ(d.amount, 0.5);
  EXPECT_DOUBLE_EQ(d.target_depth, 0.0);
  const CameraMove o = parse_camera_move("orbit:20@3.0");
  EXPECT_EQ(o.kind, "orbit");
  EXPECT_DOUBLE_EQ(o.amount, 20.0);
  EXPECT_DOUBLE_EQ(o.target_depth, 3.0);
  EXPECT_EQ(parse_camera_move("Arc:-5").kind, "orbit");
  EXPECT_EQ(parse_camera_move("vertigo:1@4").kind, "dolly_zoom");
  EXPECT_DOUBLE_EQ(parse_camera_move("pan:-15").amount, -15.0);
  const auto moves = parse_camera_moves("dolly:0.5,pan:15");
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_EQ(moves[1].kind, "pan");
  test::expect_invalid_argument([] { parse_camera_move("wobble:1"); }, "move.kind");
  test::expect_invalid_argument([] { parse_camera_move("pan"); }, "kind:amount");
  test::expect_invalid_argument([] { parse_camera_move("pan:abc"); }, "amount");
  test::expect_invalid_argument([] { parse_camera_move("pan:15deg"); }, "amount");
  test::expect_invalid_argument([] { parse_camera_move("zoom:0"); }, "zoom");
  test::expect_invalid_argument([] { parse_camera_move("orbit:20@-1"); }, "target_depth");
  test::expect_invalid_argument([] { parse_camera_move("dolly_zoom:3@2"); }, "target_depth");
  test::expect_invalid_argument([] { parse_camera_moves("pan:1,"); }, "kind:amount");
}

TEST(Camera, BadInputsNameTheArgument) {
  const auto moves = parse_camera_moves("pan:5");
  test::expect_invalid_argument([&] { camera_tracks(flat(2.0), points({{100, 5}}), moves, 3); }, "query_xy");
  test::expect_invalid_argument([&] { camera_tracks(flat(-1.0), points({{5, 5}}), moves, 3); }, "depth");
  test::expect_invalid_argument([&] { camera_tracks(at::ones({4}), points({{0, 0}}), moves, 3); }, "depth");
  test::expect_invalid_argument([&] { camera_tracks(flat(2.0), points({{5, 5}}), moves, 0); }, "frames");
  test::expect_invalid_argument([&] { camera_tracks(flat(2.0), points({{5, 5}}), {CameraMove{"spin", 1, 0}}, 3); },
                      "move.kind");
  // A dolly-zoom through its subject (the centre depth, 2 m) has no focal length left.
  test::expect_invalid_argument([&] { camera_tracks(flat(2.0), points({{5, 5}}), parse_camera_moves("dolly_zoom:2"), 3); },
                      "dolly_zoom");
}
