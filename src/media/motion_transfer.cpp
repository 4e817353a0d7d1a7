#include "media/motion_transfer.h"

#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "motionstream/tracks/camera.h"
#include "motionstream/tracks/track_io.h"

namespace ms::media {

namespace {

// [3, H, W] float in [0, 1] -> 8-bit grey (BT.601 luma), what the LK tracker works on
cv::Mat grey8(const at::Tensor& frame) {
  const auto rgb = frame.detach().to(at::kCPU, at::kFloat);
  const auto y = (rgb[0] * 0.299 + rgb[1] * 0.587 + rgb[2] * 0.114).clamp(0.0, 1.0).mul(255.0).round().to(at::kByte)
                     .contiguous();
  return cv::Mat(static_cast<int>(y.size(0)), static_cast<int>(y.size(1)), CV_8UC1, y.data_ptr()).clone();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  return v[mid];
}

}  // namespace

void LkOptions::validate() const {
  if (window < 3 || window % 2 == 0) throw std::invalid_argument("LkOptions.window must be odd and >= 3");
  if (levels < 0 || levels > 8) throw std::invalid_argument("LkOptions.levels must be in [0, 8]");
  if (iterations < 1) throw std::invalid_argument("LkOptions.iterations must be >= 1");
  if (!(epsilon > 0)) throw std::invalid_argument("LkOptions.epsilon must be positive");
  if (!(fb_threshold > 0)) throw std::invalid_argument("LkOptions.fb_threshold must be positive");
}

TrackSet track_points(const at::Tensor& frames, const at::Tensor& query_xy, double fps, const LkOptions& options) {
  options.validate();
  if (!frames.defined() || frames.dim() != 4 || frames.size(1) != 3 || frames.size(0) < 1)
    throw std::invalid_argument("track_points: frames must be [T, 3, H, W] with T >= 1");
  if (!query_xy.defined() || query_xy.dim() != 2 || query_xy.size(1) != 2)
    throw std::invalid_argument("track_points: query points must be [N, 2]");
  if (!(fps > 0)) throw std::invalid_argument("track_points: fps must be positive");
  const int64_t T = frames.size(0), N = query_xy.size(0), H = frames.size(2), W = frames.size(3);
  auto inside = [&](float x, float y) { return x >= 0 && x < W && y >= 0 && y < H; };

  auto xy = at::zeros({T, N, 2}, at::kFloat);
  auto vis = at::zeros({T, N}, at::kBool);
  auto pxy = xy.accessor<float, 3>();
  auto pv = vis.accessor<bool, 2>();
  const auto q = query_xy.to(at::kCPU, at::kFloat).contiguous();
  const auto pq = q.accessor<float, 2>();
  for (int64_t n = 0; n < N; ++n) {
    if (!std::isfinite(pq[n][0]) || !std::isfinite(pq[n][1]))
      throw std::invalid_argument("track_points: query point " + std::to_string(n) + " is not finite");
    pxy[0][n][0] = pq[n][0];
    pxy[0][n][1] = pq[n][1];
    pv[0][n] = inside(pq[n][0], pq[n][1]);
  }

  const cv::Size window(options.window, options.window);
  const cv::TermCriteria criteria(cv::TermCriteria::COUNT | cv::TermCriteria::EPS, options.iterations, options.epsilon);
  cv::Mat prev = grey8(frames[0]);
  for (int64_t t = 1; t < T; ++t) {
    const cv::Mat next = grey8(frames[t]);
    // OpenCV puts pixel centres at integer coordinates; TrackSet pixel centres are at +0.5.
    std::vector<cv::Point2f> from, forward, backward;
    std::vector<int64_t> ids;
    for (int64_t n = 0; n < N; ++n)
      if (pv[t - 1][n]) {
        from.emplace_back(pxy[t - 1][n][0] - 0.5f, pxy[t - 1][n][1] - 0.5f);
        ids.push_back(n);
      }
    std::vector<double> dx, dy;
    if (!from.empty()) {
      std::vector<uchar> status_f, status_b;
      std::vector<float> err_f, err_b;
      cv::calcOpticalFlowPyrLK(prev, next, from, forward, status_f, err_f, window, options.levels, criteria, 0,
                               options.min_eigen);
      backward = from;  // the backward search starts where the forward one started (its initial guess is unused)
      cv::calcOpticalFlowPyrLK(next, prev, forward, backward, status_b, err_b, window, options.levels, criteria, 0,
                               options.min_eigen);
      for (size_t i = 0; i < ids.size(); ++i) {
        const int64_t n = ids[i];
        const float x = forward[i].x + 0.5f, y = forward[i].y + 0.5f;
        const double fb = std::hypot(backward[i].x - from[i].x, backward[i].y - from[i].y);
        const bool alive = status_f[i] && status_b[i] && std::isfinite(x) && std::isfinite(y) && fb <= options.fb_threshold &&
                   inside(x, y);
        if (alive) {
          pxy[t][n][0] = x;
          pxy[t][n][1] = y;
          pv[t][n] = true;
          dx.push_back(forward[i].x - from[i].x);
          dy.push_back(forward[i].y - from[i].y);
        }
      }
    }
    // Lost points (this step or earlier) follow the global motion of the points still tracked.
    const double mx = median(dx), my = median(dy);
    for (int64_t n = 0; n < N; ++n) {
      if (pv[t][n]) continue;
      pxy[t][n][0] = static_cast<float>(pxy[t - 1][n][0] + mx);
      pxy[t][n][1] = static_cast<float>(pxy[t - 1][n][1] + my);
    }
    prev = next;
  }

  TrackSet out;
  out.xy = xy;
  out.visible = vis;
  out.fps = fps;
  out.width = W;
  out.height = H;
  return out;
}

TrackSet track_grid(const at::Tensor& frames, int64_t cols, int64_t rows, double fps, const LkOptions& options) {
  if (cols < 1 || rows < 1) throw std::invalid_argument("track_grid: the grid needs at least 1 x 1 points");
  if (!frames.defined() || frames.dim() != 4) throw std::invalid_argument("track_grid: frames must be [T, 3, H, W]");
  return track_points(frames, grid_query_points(frames.size(3), frames.size(2), cols, rows), fps, options);
}

TrackSet reanchor_tracks(const TrackSet& tracks, int64_t new_width, int64_t new_height) {
  if (new_width <= 0 || new_height <= 0) throw std::invalid_argument("reanchor_tracks: the new size must be positive");
  return scale_tracks(tracks, new_width, new_height);
}

}  // namespace ms::media
