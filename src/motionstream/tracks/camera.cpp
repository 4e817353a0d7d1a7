#include "motionstream/tracks/camera.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace ms {

namespace {

using Mat3 = std::array<double, 9>;  // row-major
using Vec3 = std::array<double, 3>;

constexpr double kPi = 3.14159265358979323846;
double radians(double deg) { return deg * kPi / 180.0; }

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

// ---- small pose algebra ----

Mat3 matmul(const Mat3& a, const Mat3& b) {
  Mat3 c{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) c[3 * i + j] += a[3 * i + k] * b[3 * k + j];
  return c;
}

Vec3 apply(const Mat3& a, const Vec3& v) {
  Vec3 out{};
  for (int i = 0; i < 3; ++i) out[i] = a[3 * i] * v[0] + a[3 * i + 1] * v[1] + a[3 * i + 2] * v[2];
  return out;
}

// The rotation whose rows are the new camera's right, down and forward axes, written in first-frame coordinates.
Mat3 rows(const Vec3& right, const Vec3& down, const Vec3& forward) {
  return {right[0], right[1], right[2], down[0], down[1], down[2], forward[0], forward[1], forward[2]};
}

// A camera with rotation R whose centre sits at c: X_now = R (X - c).
CameraPose placed(const Mat3& rotation, const Vec3& centre) {
  CameraPose pose;
  pose.rotation = rotation;
  const Vec3 rc = apply(rotation, centre);
  pose.translation = {-rc[0], -rc[1], -rc[2]};
  return pose;
}

CameraPose moved_to(const Vec3& centre) { return placed(CameraPose{}.rotation, centre); }

// `second` expressed in the camera that `first` leaves: X = R2 (R1 X0 + t1) + t2.
CameraPose then(const CameraPose& first, const CameraPose& second) {
  CameraPose out;
  out.rotation = matmul(second.rotation, first.rotation);
  const Vec3 moved = apply(second.rotation, first.translation);
  for (int i = 0; i < 3; ++i) out.translation[i] = moved[i] + second.translation[i];
  out.focal_scale = first.focal_scale * second.focal_scale;
  return out;
}

// ---- the moves ----

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string canonical_kind(const std::string& kind) {
  const std::string k = lower(kind);
  if (k == "arc") return "orbit";
  if (k == "dollyzoom" || k == "dolly-zoom" || k == "vertigo") return "dolly_zoom";
  static const char* known[] = {"pan", "tilt", "dolly", "truck", "pedestal", "zoom", "dolly_zoom", "orbit"};
  for (const char* name : known)
    if (k == name) return k;
  throw std::invalid_argument("move.kind '" + kind +
                              "' is not one of pan, tilt, dolly, truck, pedestal, zoom, dolly_zoom, orbit (arc)");
}

void check_move(const std::string& kind, const CameraMove& move, double depth) {
  require(std::isfinite(move.amount), "move.amount must be finite");
  require(std::isfinite(move.target_depth), "move.target_depth must be finite");
  if (kind == "zoom") require(move.amount > 0.0, "move.amount of a zoom is a focal factor and must be positive");
  if (kind == "orbit" || kind == "dolly_zoom") require(depth > 0.0, "move.target_depth must be positive");
  if (kind == "dolly_zoom")
    require(move.amount < depth, "move.amount of a dolly_zoom must stay short of target_depth (" +
                                     std::to_string(depth) + " m)");
}

CameraPose pan(double angle) {
  const double c = std::cos(angle), s = std::sin(angle);
  return placed(rows({c, 0, -s}, {0, 1, 0}, {s, 0, c}), {0, 0, 0});
}

CameraPose tilt(double angle) {
  const double c = std::cos(angle), s = std::sin(angle);
  return placed(rows({1, 0, 0}, {0, c, s}, {0, -s, c}), {0, 0, 0});
}

// Camera on the circle of radius d around the pivot (0, 0, d), looking at it.
CameraPose orbit(double angle, double d) {
  const double c = std::cos(angle), s = std::sin(angle);
  return placed(rows({c, 0, s}, {0, 1, 0}, {-s, 0, c}), {d * s, 0, d - d * c});
}

CameraPose dolly_zoom(double distance, double d) {
  CameraPose pose = moved_to({0, 0, distance});
  pose.focal_scale = (d - distance) / d;
  return pose;
}

CameraPose zoom(double factor, double u) {
  CameraPose pose;
  pose.focal_scale = std::pow(factor, u);
  return pose;
}

// ---- inputs of camera_tracks ----

struct Scene {
  at::Tensor depth;  // [H, W] float64 metres
  int64_t width = 0, height = 0;
  Intrinsics k;
};

Scene checked_scene(const at::Tensor& depth, const CameraOptions& options) {
  require(depth.defined() && depth.dim() == 2 && depth.size(0) > 0 && depth.size(1) > 0,
          "depth must be a non-empty [H, W] tensor");
  require(at::isFloatingType(depth.scalar_type()), "depth must hold floating-point metres");
  Scene scene;
  scene.depth = depth.to(at::kCPU, at::kDouble).contiguous();
  require(at::isfinite(scene.depth).all().item<bool>() && (scene.depth > 0).all().item<bool>(),
          "depth must be finite and positive everywhere");
  scene.height = depth.size(0);
  scene.width = depth.size(1);
  require(options.fov_deg > 0.0 && options.fov_deg < 180.0, "options.fov_deg must lie in (0, 180)");
  require(options.near > 0.0, "options.near must be positive");
  require(options.occlusion_tolerance >= 0.0 && options.occlusion_tolerance < 1.0,
          "options.occlusion_tolerance must lie in [0, 1)");
  require(options.slope_margin >= 0.0, "options.slope_margin must not be negative");
  require(options.zbuffer_stride >= 1, "options.zbuffer_stride must be at least 1");
  scene.k = intrinsics_from_fov(scene.width, scene.height, options.fov_deg);
  return scene;
}

at::Tensor checked_queries(const at::Tensor& query_xy, const Scene& scene) {
  require(query_xy.defined() && query_xy.dim() == 2 && query_xy.size(1) == 2 && query_xy.size(0) > 0,
          "query_xy must be a non-empty [N, 2] tensor");
  const at::Tensor q = query_xy.to(at::kCPU, at::kDouble).contiguous();  // [N, 2]
  const at::Tensor x = q.select(1, 0), y = q.select(1, 1);
  require(at::isfinite(q).all().item<bool>(), "query_xy must be finite");
  require(((x >= 0) & (x < static_cast<double>(scene.width)) & (y >= 0) & (y < static_cast<double>(scene.height)))
              .all()
              .item<bool>(),
          "query_xy must lie inside the " + std::to_string(scene.width) + "x" + std::to_string(scene.height) +
              " image");
  return q;
}

// Value of the pixel of map ([H, W]) that holds each (x, y). xy: [N, 2] float64 -> [N]
at::Tensor pixel_value(const at::Tensor& map, const at::Tensor& xy) {
  const int64_t height = map.size(0), width = map.size(1);
  const at::Tensor col = xy.select(1, 0).floor().to(at::kLong).clamp(0, width - 1);
  const at::Tensor row = xy.select(1, 1).floor().to(at::kLong).clamp(0, height - 1);
  return map.reshape({-1}).index_select(0, row * width + col);
}

at::Tensor depth_under(const Scene& scene, const at::Tensor& xy) { return pixel_value(scene.depth, xy); }

// Pixels lifted to first-frame camera coordinates: X = z K^-1 [x, y, 1]. xy: [N, 2], z: [N] -> [N, 3]
at::Tensor lift(const Scene& scene, const at::Tensor& xy, const at::Tensor& z) {
  const at::Tensor x = (xy.select(1, 0) - scene.k.cx) / scene.k.focal;
  const at::Tensor y = (xy.select(1, 1) - scene.k.cy) / scene.k.focal;
  return at::stack({x * z, y * z, z}, 1);
}

// How fast depth changes from one pixel to the next along the surface, ignoring depth edges: per axis the smaller
// of the two one-sided differences (an edge shows on one side only), then the larger axis. -> [H, W] float64
at::Tensor surface_slope(const at::Tensor& depth) {
  auto axis_slope = [](const at::Tensor& d, int64_t dim) {
    const int64_t n = d.size(dim);
    if (n < 2) return at::zeros_like(d);
    const at::Tensor diff = (d.narrow(dim, 1, n - 1) - d.narrow(dim, 0, n - 1)).abs();
    const at::Tensor edge = at::full_like(d.narrow(dim, 0, 1), std::numeric_limits<double>::infinity());
    const at::Tensor ahead = at::cat({diff, edge}, dim), behind = at::cat({edge, diff}, dim);
    return at::minimum(ahead, behind);
  };
  return at::maximum(axis_slope(depth, 0), axis_slope(depth, 1));
}

// ---- per-frame geometry ----

struct Poses {
  at::Tensor rotation;     // [T, 3, 3] float64
  at::Tensor translation;  // [T, 3]
  at::Tensor focal;        // [T] pixels
};

Poses frame_poses(const std::vector<CameraMove>& moves, int64_t frames, const Scene& scene) {
  const double centre_depth =
      depth_under(scene, at::tensor({scene.k.cx, scene.k.cy}, at::kDouble).reshape({1, 2})).item<double>();
  std::vector<double> r, t, f;
  for (int64_t i = 0; i < frames; ++i) {
    const double u = frames > 1 ? static_cast<double>(i) / static_cast<double>(frames - 1) : 0.0;
    const CameraPose pose = camera_pose(moves, u, centre_depth);
    r.insert(r.end(), pose.rotation.begin(), pose.rotation.end());
    t.insert(t.end(), pose.translation.begin(), pose.translation.end());
    f.push_back(pose.focal_scale * scene.k.focal);
  }
  return {at::tensor(r, at::kDouble).reshape({frames, 3, 3}), at::tensor(t, at::kDouble).reshape({frames, 3}),
          at::tensor(f, at::kDouble)};
}

struct Projection {
  at::Tensor xy;      // [..., 2] pixels
  at::Tensor z;       // [...] depth in the moved camera
  at::Tensor usable;  // [...] in front of the near plane and inside the image
};

// points_now: [..., 3] in the moved camera's coordinates; focal broadcastable to [...].
Projection project(const at::Tensor& points_now, const at::Tensor& focal, const Scene& scene, double near) {
  Projection p;
  p.z = points_now.select(-1, 2);
  const at::Tensor in_front = p.z > near;
  const at::Tensor z_safe = p.z.clamp_min(near);  // keeps points behind the camera finite
  const at::Tensor x = focal * points_now.select(-1, 0) / z_safe + scene.k.cx;
  const at::Tensor y = focal * points_now.select(-1, 1) / z_safe + scene.k.cy;
  p.xy = at::stack({x, y}, -1);
  p.usable = in_front & (x >= 0) & (x < static_cast<double>(scene.width)) & (y >= 0) &
             (y < static_cast<double>(scene.height));
  return p;
}

// The scene's depth pixels (every stride-th) as 3D points of the first frame. -> [P, 3] float32
at::Tensor scene_points(const Scene& scene, int64_t stride) {
  const at::Tensor rows = at::arange(0, scene.height, stride, at::kDouble);
  const at::Tensor cols = at::arange(0, scene.width, stride, at::kDouble);
  const auto grid = at::meshgrid({rows, cols}, "ij");
  const at::Tensor xy = at::stack({grid[1].reshape({-1}) + 0.5, grid[0].reshape({-1}) + 0.5}, 1);  // [P, 2]
  return lift(scene, xy, depth_under(scene, xy)).to(at::kFloat);
}

// The camera of one frame in plain numbers, for the per-point loops.
struct FrameCamera {
  std::array<double, 9> r;
  std::array<double, 3> t;
  double focal;
};

FrameCamera frame_camera(const Poses& poses, int64_t frame) {
  FrameCamera cam;
  const at::Tensor r = poses.rotation[frame].contiguous(), t = poses.translation[frame].contiguous();
  std::copy(r.data_ptr<double>(), r.data_ptr<double>() + 9, cam.r.begin());
  std::copy(t.data_ptr<double>(), t.data_ptr<double>() + 3, cam.t.begin());
  cam.focal = poses.focal[frame].item<double>();
  return cam;
}

// Nearest depth landing in each pixel of one frame (inf where no point lands). points: [P, 3] float32 contiguous.
// A plain loop: per point it is a handful of multiply-adds, far cheaper than a chain of tensor ops.
std::vector<float> render_zbuffer(const at::Tensor& points, const FrameCamera& cam, const Scene& scene, double near) {
  std::vector<float> zbuf(static_cast<size_t>(scene.height * scene.width), std::numeric_limits<float>::infinity());
  std::array<float, 9> r;
  std::copy(cam.r.begin(), cam.r.end(), r.begin());
  const float tx = static_cast<float>(cam.t[0]), ty = static_cast<float>(cam.t[1]), tz = static_cast<float>(cam.t[2]);
  const float f = static_cast<float>(cam.focal), cx = static_cast<float>(scene.k.cx);
  const float cy = static_cast<float>(scene.k.cy), z_min = static_cast<float>(near);
  const float w = static_cast<float>(scene.width), h = static_cast<float>(scene.height);
  const float* p = points.data_ptr<float>();
  for (int64_t i = 0; i < points.size(0); ++i, p += 3) {
    const float z = r[6] * p[0] + r[7] * p[1] + r[8] * p[2] + tz;
    if (!(z > z_min)) continue;
    const float x = f * (r[0] * p[0] + r[1] * p[1] + r[2] * p[2] + tx) / z + cx;
    const float y = f * (r[3] * p[0] + r[4] * p[1] + r[5] * p[2] + ty) / z + cy;
    if (!(x >= 0.0f && x < w && y >= 0.0f && y < h)) continue;
    float& cell = zbuf[static_cast<size_t>(static_cast<int64_t>(y) * scene.width + static_cast<int64_t>(x))];
    cell = std::min(cell, z);
  }
  return zbuf;
}

// The z-buffer at one pixel; a pixel no point reached takes the nearest depth within `reach` pixels, which closes
// the gaps a magnified surface leaves between its points.
float zbuffer_at(const std::vector<float>& zbuf, int64_t row, int64_t col, int64_t reach, const Scene& scene) {
  const float own = zbuf[static_cast<size_t>(row * scene.width + col)];
  if (std::isfinite(own)) return own;
  float nearest = own;
  for (int64_t i = std::max<int64_t>(0, row - reach); i <= std::min(scene.height - 1, row + reach); ++i)
    for (int64_t j = std::max<int64_t>(0, col - reach); j <= std::min(scene.width - 1, col + reach); ++j)
      nearest = std::min(nearest, zbuf[static_cast<size_t>(i * scene.width + j)]);
  return nearest;
}

struct Queries {
  at::Tensor z0;     // [N] float64 depth on the first frame
  at::Tensor slope;  // [N] float64 surface slope under the query (metres per pixel)
};

// Hides the queries of frames 1.. that land behind nearer scene points (see CameraOptions); frames run in parallel.
// visible: [T, N] bool
void hide_occluded(at::Tensor& visible, const Projection& q, const Queries& queries, const Poses& poses,
                   const Scene& scene, const CameraOptions& options) {
  const at::Tensor points = scene_points(scene, options.zbuffer_stride).contiguous();  // [P, 3]
  const at::Tensor xy = q.xy.contiguous(), z = q.z.contiguous();                       // [T, N, 2], [T, N]
  const auto xy_at = xy.accessor<double, 3>();
  const auto z_at = z.accessor<double, 2>();
  const auto z0 = queries.z0.accessor<double, 1>();
  const auto slope = queries.slope.accessor<double, 1>();
  auto vis = visible.accessor<bool, 2>();
  const int64_t n_points = visible.size(1), reach = options.zbuffer_stride;
  const double margin = options.slope_margin * static_cast<double>(options.zbuffer_stride);
  std::vector<FrameCamera> cams;
  for (int64_t t = 0; t < visible.size(0); ++t) cams.push_back(frame_camera(poses, t));
  at::parallel_for(1, visible.size(0), 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const FrameCamera& cam = cams[t];
      const std::vector<float> zbuf = render_zbuffer(points, cam, scene, options.near);
      for (int64_t n = 0; n < n_points; ++n) {
        if (!vis[t][n]) continue;
        const auto row = static_cast<int64_t>(xy_at[t][n][1]), col = static_cast<int64_t>(xy_at[t][n][0]);
        const double nearest = zbuffer_at(zbuf, row, col, reach, scene);
        // Fewer screen pixels per surface pixel (zooming out) puts more of the surface into one pixel.
        const double shrink = std::max(1.0, z_at[t][n] * scene.k.focal / (cam.focal * z0[n]));
        const double slack = margin * slope[n] * shrink;
        if (nearest < z_at[t][n] * (1.0 - options.occlusion_tolerance) - slack) vis[t][n] = false;
      }
    }
  });
}

}  // namespace

Intrinsics intrinsics_from_fov(int64_t width, int64_t height, double fov_deg) {
  require(width > 0 && height > 0, "image size must be positive");
  require(fov_deg > 0.0 && fov_deg < 180.0, "fov_deg must lie in (0, 180)");
  Intrinsics k;
  k.focal = 0.5 * static_cast<double>(width) / std::tan(0.5 * radians(fov_deg));
  k.cx = 0.5 * static_cast<double>(width);
  k.cy = 0.5 * static_cast<double>(height);
  return k;
}

at::Tensor default_ground_plane_depth(int64_t width, int64_t height, const GroundPlane& ground) {
  require(ground.camera_height > 0.0, "ground.camera_height must be positive");
  require(ground.far > 0.0, "ground.far must be positive");
  require(std::isfinite(ground.horizon), "ground.horizon must be finite");
  const Intrinsics k = intrinsics_from_fov(width, height, ground.fov_deg);
  const double horizon_row = ground.horizon * static_cast<double>(height);
  const double pitch = std::atan((k.cy - horizon_row) / k.focal);
  const at::Tensor below = at::arange(height, at::kDouble) + 0.5 - horizon_row;  // [H] rows below the horizon
  const at::Tensor ground_depth = ground.camera_height * k.focal / (std::cos(pitch) * below.clamp_min(1e-12));
  const at::Tensor column = at::where(below > 0, ground_depth.clamp_max(ground.far),
                                      at::full_like(below, ground.far));  // [H]
  return column.to(at::kFloat).unsqueeze(1).expand({height, width}).contiguous();
}

CameraMove parse_camera_move(const std::string& text) {
  const auto colon = text.find(':');
  require(colon != std::string::npos, "camera move '" + text + "' must read kind:amount[@target_depth]");
  auto number = [&](const std::string& s, const char* what) {
    size_t used = 0;
    double v = 0.0;
    try {
      v = std::stod(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used > 0 && used == s.size() && std::isfinite(v),
            "camera move '" + text + "': " + what + " '" + s + "' is not a number");
    return v;
  };
  CameraMove move;
  move.kind = canonical_kind(text.substr(0, colon));
  const std::string rest = text.substr(colon + 1);
  const auto at_sign = rest.find('@');
  move.amount = number(rest.substr(0, at_sign), "amount");
  if (at_sign != std::string::npos) {
    move.target_depth = number(rest.substr(at_sign + 1), "target_depth");
    require(move.target_depth > 0.0, "camera move '" + text + "': target_depth must be positive");
  }
  check_move(move.kind, move, move.target_depth > 0.0 ? move.target_depth : 1e300);
  return move;
}

std::vector<CameraMove> parse_camera_moves(const std::string& text) {
  std::vector<CameraMove> moves;
  size_t begin = 0;
  while (begin <= text.size()) {
    const size_t end = std::min(text.find(',', begin), text.size());
    moves.push_back(parse_camera_move(text.substr(begin, end - begin)));
    begin = end + 1;
  }
  return moves;
}

CameraPose camera_pose(const CameraMove& move, double u, double target_depth) {
  const std::string kind = canonical_kind(move.kind);
  const double depth = move.target_depth > 0.0 ? move.target_depth : target_depth;
  check_move(kind, move, depth);
  const double a = move.amount * u;
  if (kind == "pan") return pan(radians(a));
  if (kind == "tilt") return tilt(radians(a));
  if (kind == "dolly") return moved_to({0, 0, a});
  if (kind == "truck") return moved_to({a, 0, 0});
  if (kind == "pedestal") return moved_to({0, -a, 0});  // up is -y
  if (kind == "zoom") return zoom(move.amount, u);
  if (kind == "dolly_zoom") return dolly_zoom(a, depth);
  return orbit(radians(a), depth);
}

CameraPose camera_pose(const std::vector<CameraMove>& moves, double u, double target_depth) {
  CameraPose pose;
  for (const CameraMove& move : moves) pose = then(pose, camera_pose(move, u, target_depth));
  return pose;
}

at::Tensor grid_query_points(int64_t width, int64_t height, int64_t cols, int64_t rows) {
  require(width > 0 && height > 0, "image size must be positive");
  require(cols > 0 && rows > 0, "grid cols and rows must be positive");
  const at::Tensor x = (at::arange(cols, at::kDouble) + 0.5) * (static_cast<double>(width) / cols);
  const at::Tensor y = (at::arange(rows, at::kDouble) + 0.5) * (static_cast<double>(height) / rows);
  const auto grid = at::meshgrid({y, x}, "ij");
  return at::stack({grid[1].reshape({-1}), grid[0].reshape({-1})}, 1).to(at::kFloat);  // [rows * cols, 2]
}

TrackSet camera_tracks(const at::Tensor& depth, const at::Tensor& query_xy, const std::vector<CameraMove>& moves,
                       int64_t frames, double fps, const CameraOptions& options) {
  require(frames >= 1, "frames must be at least 1");
  require(std::isfinite(fps) && fps > 0.0, "fps must be positive");
  const Scene scene = checked_scene(depth, options);
  const at::Tensor q = checked_queries(query_xy, scene);  // [N, 2]
  const Poses poses = frame_poses(moves, frames, scene);

  Queries queries;
  queries.z0 = depth_under(scene, q);                                                     // [N]
  queries.slope = pixel_value(surface_slope(scene.depth), q);                             // [N]
  const at::Tensor first = lift(scene, q, queries.z0);                                    // [N, 3]
  const at::Tensor now = at::einsum("tij,nj->tni", {poses.rotation, first}) + poses.translation.unsqueeze(1);
  const Projection projected = project(now, poses.focal.unsqueeze(1), scene, options.near);  // [T, N, ...]

  at::Tensor visible = projected.usable.clone();  // [T, N]
  if (options.occlusion && frames > 1) hide_occluded(visible, projected, queries, poses, scene, options);

  TrackSet tracks;
  tracks.xy = projected.xy.to(at::kFloat);  // [T, N, 2]
  tracks.xy[0].copy_(q);                    // the first frame is the query itself, not its round trip
  tracks.visible = visible;
  tracks.visible[0].fill_(true);
  tracks.fps = fps;
  tracks.width = scene.width;
  tracks.height = scene.height;
  tracks.validate();
  return tracks;
}

}  // namespace ms
