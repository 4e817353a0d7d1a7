// Camera control: lift the first image to 3D with a depth map, move a virtual pinhole camera, project back to
// point tracks (SPEC.md section 9). Conventions and formulas: docs/CAMERA.md.
//
// Camera coordinates: x right, y down, z forward (the optical axis), metres. Depth is z-depth (distance along the
// optical axis, not along the ray). Pixel (row i, column j) covers [j, j+1) x [i, i+1); the principal point is the
// image centre (width / 2, height / 2); a point projects to (f X / Z + cx, f Y / Z + cy).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <string>
#include <vector>

#include "motionstream/tracks/track_set.h"

namespace ms {

// Appended to the text prompt for camera-only moves; it helped the paper's results.
inline constexpr const char* kCameraPromptSuffix = "static scene, only camera motion, no object is moving";

struct Intrinsics {
  double focal = 0.0;  // pixels, the same for x and y
  double cx = 0.0, cy = 0.0;
};

// focal = (width / 2) / tan(fov / 2) for the horizontal field of view; principal point at the image centre.
Intrinsics intrinsics_from_fov(int64_t width, int64_t height, double fov_deg = 60.0);

// The default scene when the user has no depth map: a flat ground plane below a horizon, seen by a camera pitched
// down by p = atan((cy - h) / f) so that the horizon lies on row h. Below the horizon:
// depth = min(far, camera_height * f / (cos(p) * (y - h))), y the pixel-centre row; on and above it: far.
struct GroundPlane {
  double fov_deg = 60.0;        // must match the fov the tracks are made with
  double horizon = 0.4;         // horizon row as a fraction of the height, from the top
  double camera_height = 1.5;   // metres above the ground
  double far = 50.0;            // metres: the sky and the ground beyond it
};

// -> [H, W] float32 metres
at::Tensor default_ground_plane_depth(int64_t width, int64_t height, const GroundPlane& ground = {});

// One camera move, played linearly from the first frame (u = 0) to the last (u = 1). Kinds and signs:
//   pan        amount degrees, > 0 turns right (the scene slides left)
//   tilt       amount degrees, > 0 tilts up (the scene slides down)
//   dolly      amount metres along the optical axis, > 0 moves in (forward)
//   truck      amount metres sideways, > 0 moves right (the scene slides left)
//   pedestal   amount metres vertically, > 0 moves up (the scene slides down)
//   zoom       amount = final focal-length factor (> 0; 1.5 zooms in), pose fixed; the factor at u is amount^u
//   dolly_zoom amount metres in (> 0) or out, with the focal length scaled by (D - d) / D so that the subject at
//              depth D = target_depth keeps its size on screen
//   orbit      amount degrees around a vertical axis through the point at target_depth on the optical axis,
//              > 0 moves the camera to the right, turning it to keep the pivot in the centre ("arc" is the same)
// target_depth <= 0 means the depth at the image centre of the first frame.
struct CameraMove {
  std::string kind;
  double amount = 0.0;
  double target_depth = 0.0;
};

// "kind:amount" or "kind:amount@target_depth", e.g. "dolly:0.5", "pan:-15", "orbit:20@3.0", "zoom:1.5".
CameraMove parse_camera_move(const std::string& text);
// Several moves separated by ',' or '+', played together: "dolly:0.5,pan:10".
std::vector<CameraMove> parse_camera_moves(const std::string& text);

// Where the camera is at normalised time u, relative to the first frame: X_now = R X_first + t (row-major R), and
// the focal length is focal_scale times the first frame's.
struct CameraPose {
  std::array<double, 9> rotation{1, 0, 0, 0, 1, 0, 0, 0, 1};
  std::array<double, 3> translation{0, 0, 0};
  double focal_scale = 1.0;
};

// target_depth: the depth used when move.target_depth <= 0.
CameraPose camera_pose(const CameraMove& move, double u, double target_depth);
// Moves composed in order, each relative to the camera that the previous ones left.
CameraPose camera_pose(const std::vector<CameraMove>& moves, double u, double target_depth);

struct CameraOptions {
  double fov_deg = 60.0;
  double near = 0.05;  // metres: closer than this (or behind the camera) is invisible
  // A query is hidden when a point of the scene lands in its pixel (or, when that pixel got no point, within
  // zbuffer_stride pixels of it) with depth smaller than z * (1 - occlusion_tolerance) - slack;
  // slack = slope_margin * zbuffer_stride * (depth change per pixel of the surface under the query)
  //         * max(1, 1 / magnification),
  // which keeps slanted surfaces such as the ground near the horizon from hiding themselves.
  double occlusion_tolerance = 0.05;
  double slope_margin = 2.0;
  int64_t zbuffer_stride = 1;  // render every n-th depth pixel in each direction (1: all)
  bool occlusion = true;       // false: only "behind the camera" and "outside the image" hide points
};

// cols x rows points at the centres of an even grid over the image, row by row -> [rows * cols, 2] float32
at::Tensor grid_query_points(int64_t width, int64_t height, int64_t cols, int64_t rows);

// Tracks of the pixels query_xy ([N, 2] (x, y) on the first frame, inside the image) under the camera moves, on a
// width x height image where depth is [height, width] metres. Frame t is at u = t / (frames - 1). On frame 0 every
// query is visible (it is what the first image shows). Points behind the camera get finite positions that carry no
// meaning; points outside the image keep their true projection.
TrackSet camera_tracks(const at::Tensor& depth, const at::Tensor& query_xy, const std::vector<CameraMove>& moves,
                       int64_t frames, double fps = 16.0, const CameraOptions& options = {});

}  // namespace ms
