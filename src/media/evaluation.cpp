#include "media/evaluation.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "media/video_io.h"
#include "motionstream/tracks/track_io.h"

namespace ms::media {

namespace {

at::Tensor as_video(const at::Tensor& x, const char* what) {
  if (!x.defined() || !(x.dim() == 4 || x.dim() == 3) || x.size(x.dim() - 3) != 3)
    throw std::invalid_argument(std::string(what) + ": expected [T, 3, H, W] or [3, H, W]");
  return (x.dim() == 3 ? x.unsqueeze(0) : x).detach().to(at::kCPU, at::kDouble);
}

void check_same(const at::Tensor& a, const at::Tensor& b, const char* what) {
  if (a.sizes() != b.sizes()) throw std::invalid_argument(std::string(what) + ": the two videos differ in shape");
}

// [3, H, W] double -> luma CV_64F
cv::Mat luma(const at::Tensor& rgb) {
  const auto y = (rgb[0] * 0.299 + rgb[1] * 0.587 + rgb[2] * 0.114).contiguous();
  return cv::Mat(static_cast<int>(y.size(0)), static_cast<int>(y.size(1)), CV_64F, y.data_ptr()).clone();
}

double ssim_frame(const cv::Mat& x, const cv::Mat& y) {
  constexpr double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03;
  const cv::Size k(11, 11);
  auto blur = [&](const cv::Mat& m) {
    cv::Mat out;
    cv::GaussianBlur(m, out, k, 1.5, 1.5, cv::BORDER_REFLECT);
    return out;
  };
  const cv::Mat mx = blur(x), my = blur(y);
  const cv::Mat sxx = blur(x.mul(x)) - mx.mul(mx);
  const cv::Mat syy = blur(y.mul(y)) - my.mul(my);
  const cv::Mat sxy = blur(x.mul(y)) - mx.mul(my);
  cv::Mat num = (2 * mx.mul(my) + C1).mul(2 * sxy + C2);
  cv::Mat den = (mx.mul(mx) + my.mul(my) + C1).mul(sxx + syy + C2);
  cv::Mat map;
  cv::divide(num, den, map);
  if (map.rows >= 11 && map.cols >= 11) map = map(cv::Rect(5, 5, map.cols - 10, map.rows - 10));
  return cv::mean(map)[0];
}

}  // namespace

double psnr(const at::Tensor& a, const at::Tensor& b) {
  const auto x = as_video(a, "psnr"), y = as_video(b, "psnr");
  check_same(x, y, "psnr");
  const double mse = (x - y).pow(2).mean().item<double>();
  if (mse <= 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(1.0 / mse);
}

double ssim(const at::Tensor& a, const at::Tensor& b) {
  const auto x = as_video(a, "ssim"), y = as_video(b, "ssim");
  check_same(x, y, "ssim");
  double total = 0.0;
  for (int64_t t = 0; t < x.size(0); ++t) total += ssim_frame(luma(x[t]), luma(y[t]));
  return total / static_cast<double>(x.size(0));
}

namespace {

// The tracks' frame-0 positions re-tracked through the video, against the tracks (the EPE's common part).
struct Retracked {
  at::Tensor index;  // [M] the tracks that could be queried (frame-0 position inside the image)
  at::Tensor dist;   // [F-1, M] pixels between re-tracked and input positions, frames 1 .. F-1
  at::Tensor mask;   // [F-1, M] 1 where the input marks the point visible
  int64_t frames = 0;
};

Retracked retrack(const at::Tensor& video, const TrackSet& tracks, const LkOptions& options, const char* caller) {
  if (!video.defined() || video.dim() != 4 || video.size(1) != 3)
    throw std::invalid_argument(std::string(caller) + ": the video must be [T, 3, H, W]");
  tracks.validate();
  Retracked r;
  const int64_t H = video.size(2), W = video.size(3);
  const TrackSet input = (tracks.width == W && tracks.height == H) ? tracks : scale_tracks(tracks, W, H);
  r.frames = std::min(video.size(0), input.frames());
  if (r.frames < 1 || input.points() == 0) return r;

  const auto first = input.xy[0].to(at::kCPU, at::kFloat);  // [N, 2]
  const auto x0 = first.select(1, 0), y0 = first.select(1, 1);
  const auto queryable = (x0 >= 0) & (x0 < static_cast<double>(W)) & (y0 >= 0) & (y0 < static_cast<double>(H));
  r.index = queryable.nonzero().squeeze(1);  // [M]
  if (r.index.size(0) == 0 || r.frames < 2) return r;

  const int64_t F = r.frames;
  const TrackSet estimated = track_points(video.narrow(0, 0, F), first.index_select(0, r.index), input.fps, options);
  const auto truth = input.xy.narrow(0, 1, F - 1).index_select(1, r.index).to(at::kDouble);  // [F-1, M, 2]
  const auto guess = estimated.xy.narrow(0, 1, F - 1).to(at::kDouble);                      // [F-1, M, 2]
  r.mask = input.visible.narrow(0, 1, F - 1).index_select(1, r.index).to(at::kDouble);     // [F-1, M]
  r.dist = (truth - guess).pow(2).sum(2).sqrt();
  return r;
}

// The EPE of a re-tracking over the tracks in `counted` ([N] bool; all when undefined).
MotionFollowing summarize(const Retracked& r, const at::Tensor& counted) {
  MotionFollowing out;
  out.frames = r.frames;
  out.points = r.index.defined() ? r.index.size(0) : 0;
  if (!r.dist.defined()) return out;
  const at::Tensor mask = counted.defined() ? r.mask * counted.index_select(0, r.index).to(at::kDouble) : r.mask;
  const double count = mask.sum().item<double>();
  out.samples = static_cast<int64_t>(count);
  if (count > 0) out.epe = (r.dist * mask).sum().item<double>() / count;
  return out;
}

}  // namespace

MotionFollowing motion_epe(const at::Tensor& video, const TrackSet& tracks, const LkOptions& options,
                           const at::Tensor& counted) {
  if (counted.defined() && (counted.dim() != 1 || counted.size(0) != tracks.points() || counted.scalar_type() != at::kBool))
    throw std::invalid_argument("motion_epe: counted must be [" + std::to_string(tracks.points()) + "] bool");
  return summarize(retrack(video, tracks, options, "motion_epe"), counted);
}

at::Tensor reliably_tracked(const at::Tensor& reference, const TrackSet& tracks, double tolerance,
                            const LkOptions& options) {
  if (!(tolerance > 0)) throw std::invalid_argument("reliably_tracked: tolerance must be > 0 pixels");
  const Retracked r = retrack(reference, tracks, options, "reliably_tracked");
  at::Tensor out = at::zeros({tracks.points()}, at::kBool);
  if (!r.dist.defined()) return out;
  // Worst error over the frames where the point is visible (hidden frames do not count).
  const at::Tensor worst = (r.dist * r.mask).amax(0);  // [M]
  out.index_put_({r.index}, worst <= tolerance);
  return out;
}

EvalReport evaluate_video(const at::Tensor& video, const TrackSet& tracks, const at::Tensor& reference,
                          const LkOptions& options) {
  EvalReport report;
  report.frames = video.size(0);
  const Retracked retracked = retrack(video, tracks, options, "evaluate_video");  // once, for both EPE figures
  report.motion = summarize(retracked, {});
  if (reference.defined()) {
    const at::Tensor reliable = reliably_tracked(reference, tracks, 2.0, options);  // [N]
    report.reliable_points = reliable.sum().item<int64_t>();
    report.motion_reliable = summarize(retracked, reliable);
    const int64_t F = std::min(video.size(0), reference.size(0));
    const auto ref = resize_frames(reference.narrow(0, 0, F), video.size(3), video.size(2));
    const auto gen = video.narrow(0, 0, F);
    report.has_reference = true;
    report.psnr = psnr(gen, ref);
    report.ssim = ssim(gen, ref);
  }
  return report;
}

nlohmann::json to_json(const EvalReport& report) {
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json j;
  j["epe"] = number(report.motion.epe);
  j["psnr"] = number(report.psnr);
  j["ssim"] = number(report.ssim);
  if (report.has_reference && std::isinf(report.psnr)) j["psnr_identical"] = true;
  j["frames"] = report.frames;
  j["points"] = report.motion.points;
  j["epe_frames"] = report.motion.frames;
  j["epe_samples"] = report.motion.samples;
  if (report.has_reference) {
    j["epe_reliable"] = number(report.motion_reliable.epe);
    j["reliable_points"] = report.reliable_points;
  }
  return j;
}

}  // namespace ms::media
