#include "media/video_io.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace fs = std::filesystem;

namespace ms::media {

namespace {

void check_frame(const at::Tensor& frame, const char* what) {
  if (!frame.defined() || frame.dim() != 3 || frame.size(0) != 3)
    throw std::invalid_argument(std::string(what) + ": a frame must be [3, H, W]");
}

// [3, H, W] float in [0, 1] -> 8-bit BGR (what OpenCV writes and draws on)
cv::Mat to_bgr8(const at::Tensor& frame) {
  check_frame(frame, "to_bgr8");
  const auto hwc = frame.detach().to(at::kCPU, at::kFloat).clamp(0.0, 1.0).mul(255.0).round().to(at::kByte)
                       .permute({1, 2, 0}).contiguous();  // [H, W, 3] RGB
  const cv::Mat rgb(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3, hwc.data_ptr());
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

// 8- or 16-bit, 1/3/4-channel BGR(A) -> [3, H, W] float in [0, 1]
at::Tensor from_bgr(const cv::Mat& mat) {
  cv::Mat rgb;
  switch (mat.channels()) {
    case 1: cv::cvtColor(mat, rgb, cv::COLOR_GRAY2RGB); break;
    case 3: cv::cvtColor(mat, rgb, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(mat, rgb, cv::COLOR_BGRA2RGB); break;
    default: throw std::runtime_error("unsupported channel count " + std::to_string(mat.channels()));
  }
  double scale = 1.0 / 255.0;
  if (mat.depth() == CV_16U) scale = 1.0 / 65535.0;
  else if (mat.depth() == CV_32F) scale = 1.0;
  else if (mat.depth() != CV_8U) throw std::runtime_error("unsupported pixel depth");
  cv::Mat f;
  rgb.convertTo(f, CV_32FC3, scale);
  auto hwc = at::from_blob(f.data, {f.rows, f.cols, 3}, at::kFloat).clone();
  return hwc.permute({2, 0, 1}).contiguous();
}

// [3, H, W] float -> CV_32FC3 (channel order kept), and back
cv::Mat to_float_mat(const at::Tensor& frame) {
  const auto hwc = frame.detach().to(at::kCPU, at::kFloat).permute({1, 2, 0}).contiguous();
  return cv::Mat(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_32FC3, hwc.data_ptr()).clone();
}

at::Tensor from_float_mat(const cv::Mat& mat) {
  const cv::Mat m = mat.isContinuous() ? mat : mat.clone();
  return at::from_blob(m.data, {m.rows, m.cols, 3}, at::kFloat).clone().permute({2, 0, 1}).contiguous();
}

cv::Mat resize_mat(const cv::Mat& src, int width, int height) {
  cv::Mat dst;
  const bool shrink = width < src.cols || height < src.rows;
  cv::resize(src, dst, cv::Size(width, height), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  return dst;
}

void require_file(const std::string& path, const char* what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw std::runtime_error(path + ": cannot read the " + what + " (no such file)");
  if (fs::is_directory(path, ec)) throw std::runtime_error(path + ": cannot read the " + what + " (a directory)");
}

}  // namespace

// ---- images ----

at::Tensor read_image(const std::string& path) {
  require_file(path, "image");
  cv::Mat mat;
  try {
    mat = cv::imread(path, cv::IMREAD_COLOR | cv::IMREAD_ANYDEPTH);
  } catch (const cv::Exception& e) {
    throw std::runtime_error(path + ": cannot decode the image (" + e.what() + ")");
  }
  if (mat.empty()) throw std::runtime_error(path + ": not a readable image (corrupt or unsupported format)");
  try {
    return from_bgr(mat);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

at::Tensor decode_image(const std::string& bytes, const std::string& what) {
  cv::Mat mat;
  try {
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
    mat = cv::imdecode(buffer, cv::IMREAD_COLOR | cv::IMREAD_ANYDEPTH);
  } catch (const cv::Exception& e) {
    throw std::runtime_error(what + ": cannot decode the image (" + e.what() + ")");
  }
  if (mat.empty()) throw std::runtime_error(what + ": not a readable image (corrupt or unsupported format)");
  try {
    return from_bgr(mat);
  } catch (const std::exception& e) {
    throw std::runtime_error(what + ": " + e.what());
  }
}

void write_image(const std::string& path, const at::Tensor& frame) {
  bool ok = false;
  try {
    ok = cv::imwrite(path, to_bgr8(frame));
  } catch (const cv::Exception& e) {
    throw std::runtime_error(path + ": cannot write the image (" + e.what() + ")");
  }
  if (!ok) throw std::runtime_error(path + ": cannot write the image");
}

// ---- fitting ----

FitMode parse_fit_mode(const std::string& name) {
  if (name == "stretch") return FitMode::kStretch;
  if (name == "pad") return FitMode::kPad;
  if (name == "crop") return FitMode::kCrop;
  throw std::invalid_argument("fit mode '" + name + "' is not one of stretch, pad, crop");
}

FrameMapping fit_mapping(int64_t source_width, int64_t source_height, int64_t model_width, int64_t model_height,
                         FitMode mode) {
  if (source_width <= 0 || source_height <= 0 || model_width <= 0 || model_height <= 0)
    throw std::invalid_argument("fit_mapping: sizes must be positive");
  FrameMapping m;
  m.source_width = source_width;
  m.source_height = source_height;
  m.model_width = model_width;
  m.model_height = model_height;
  const double sx = static_cast<double>(model_width) / source_width;
  const double sy = static_cast<double>(model_height) / source_height;
  if (mode == FitMode::kStretch) {
    m.scale_x = sx;
    m.scale_y = sy;
    return m;
  }
  // The scaled image is rounded to whole pixels (that is the image fit_image makes), so the per-axis scales may
  // differ by a fraction of a pixel over the whole width; the offsets are whole pixels.
  const double s = mode == FitMode::kPad ? std::min(sx, sy) : std::max(sx, sy);
  const int64_t w = std::max<int64_t>(1, std::llround(source_width * s));
  const int64_t h = std::max<int64_t>(1, std::llround(source_height * s));
  m.scale_x = static_cast<double>(w) / source_width;
  m.scale_y = static_cast<double>(h) / source_height;
  // pad: w <= model_width, offsets >= 0; crop: w >= model_width, offsets <= 0 (floor division keeps the centre)
  m.offset_x = static_cast<double>((model_width - w) >= 0 ? (model_width - w) / 2 : -((w - model_width) / 2));
  m.offset_y = static_cast<double>((model_height - h) >= 0 ? (model_height - h) / 2 : -((h - model_height) / 2));
  return m;
}

TrackSet FrameMapping::tracks_to_model(const TrackSet& tracks) const {
  TrackSet out = tracks;
  // Tracks drawn on an image of another size than the mapping's source are first scaled to it.
  const double ax = tracks.width > 0 ? static_cast<double>(source_width) / tracks.width : 1.0;
  const double ay = tracks.height > 0 ? static_cast<double>(source_height) / tracks.height : 1.0;
  auto x = tracks.xy.select(2, 0).to(at::kDouble) * (ax * scale_x) + offset_x;
  auto y = tracks.xy.select(2, 1).to(at::kDouble) * (ay * scale_y) + offset_y;
  out.xy = at::stack({x, y}, 2).to(at::kFloat);
  const auto inside = (x >= 0) & (x < static_cast<double>(model_width)) & (y >= 0) &
                      (y < static_cast<double>(model_height));
  out.visible = tracks.visible & inside;
  out.width = model_width;
  out.height = model_height;
  return out;
}

TrackSet FrameMapping::tracks_to_source(const TrackSet& tracks) const {
  TrackSet out = tracks;
  const double ax = tracks.width > 0 ? static_cast<double>(model_width) / tracks.width : 1.0;
  const double ay = tracks.height > 0 ? static_cast<double>(model_height) / tracks.height : 1.0;
  auto x = (tracks.xy.select(2, 0).to(at::kDouble) * ax - offset_x) / scale_x;
  auto y = (tracks.xy.select(2, 1).to(at::kDouble) * ay - offset_y) / scale_y;
  out.xy = at::stack({x, y}, 2).to(at::kFloat);
  out.width = source_width;
  out.height = source_height;
  return out;
}

FittedImage fit_image(const at::Tensor& image, int64_t model_width, int64_t model_height, FitMode mode) {
  check_frame(image, "fit_image");
  FittedImage out;
  out.mapping = fit_mapping(image.size(2), image.size(1), model_width, model_height, mode);
  const auto& m = out.mapping;
  const int w = static_cast<int>(std::llround(m.source_width * m.scale_x));
  const int h = static_cast<int>(std::llround(m.source_height * m.scale_y));
  const cv::Mat scaled = resize_mat(to_float_mat(image), w, h);
  cv::Mat canvas(static_cast<int>(model_height), static_cast<int>(model_width), CV_32FC3, cv::Scalar::all(0));
  // The overlap of the scaled image, placed at the offset, with the canvas.
  const int ox = static_cast<int>(m.offset_x), oy = static_cast<int>(m.offset_y);
  const int x0 = std::max(0, ox), y0 = std::max(0, oy);
  const int x1 = std::min(static_cast<int>(model_width), ox + w), y1 = std::min(static_cast<int>(model_height), oy + h);
  scaled(cv::Rect(x0 - ox, y0 - oy, x1 - x0, y1 - y0)).copyTo(canvas(cv::Rect(x0, y0, x1 - x0, y1 - y0)));
  out.image = from_float_mat(canvas);
  return out;
}

at::Tensor resize_frames(const at::Tensor& frames, int64_t width, int64_t height) {
  if (frames.dim() == 3) {
    if (frames.size(1) == height && frames.size(2) == width) return frames;
    return from_float_mat(resize_mat(to_float_mat(frames), static_cast<int>(width), static_cast<int>(height)));
  }
  if (frames.dim() != 4 || frames.size(1) != 3) throw std::invalid_argument("resize_frames: expected [T, 3, H, W]");
  if (frames.size(2) == height && frames.size(3) == width) return frames;
  std::vector<at::Tensor> out;
  for (int64_t t = 0; t < frames.size(0); ++t) out.push_back(resize_frames(frames[t], width, height));
  return at::stack(out);
}

// ---- video ----

Video read_video(const std::string& path, int64_t max_frames) {
  require_file(path, "video");
  cv::VideoCapture capture;
  try {
    capture.open(path, cv::CAP_FFMPEG);
  } catch (const cv::Exception& e) {
    throw std::runtime_error(path + ": cannot open the video (" + e.what() + ")");
  }
  if (!capture.isOpened()) throw std::runtime_error(path + ": cannot open the video (corrupt or unsupported format)");
  Video video;
  video.fps = capture.get(cv::CAP_PROP_FPS);
  if (!std::isfinite(video.fps) || video.fps <= 0.0 || video.fps > 1000.0) video.fps = 16.0;
  std::vector<at::Tensor> frames;
  cv::Mat mat;
  while ((max_frames <= 0 || static_cast<int64_t>(frames.size()) < max_frames) && capture.read(mat) && !mat.empty()) {
    if (!frames.empty() && (mat.cols != frames.front().size(2) || mat.rows != frames.front().size(1)))
      throw std::runtime_error(path + ": frame " + std::to_string(frames.size()) + " changes the frame size");
    frames.push_back(from_bgr(mat));
  }
  if (frames.empty()) throw std::runtime_error(path + ": the video holds no decodable frame");
  video.frames = at::stack(frames);
  return video;
}

struct VideoWriter::Impl {
  cv::VideoWriter writer;
};

VideoWriter::VideoWriter(const std::string& path, int64_t width, int64_t height, double fps)
    : impl_(std::make_unique<Impl>()), path_(path), width_(width), height_(height) {
  if (width <= 0 || height <= 0) throw std::invalid_argument(path + ": video size must be positive");
  if (!(fps > 0.0) || !std::isfinite(fps)) throw std::invalid_argument(path + ": fps must be positive");
  const cv::Size size(static_cast<int>(width + width % 2), static_cast<int>(height + height % 2));
  try {
    impl_->writer.open(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('a', 'v', 'c', '1'), fps, size);
    codec_ = "avc1";
    if (!impl_->writer.isOpened()) {
      std::fprintf(stderr, "note: %s: H.264 (avc1) is not available to OpenCV's writer here; writing MPEG-4 (mp4v)\n",
                   path.c_str());
      impl_->writer.open(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('m', 'p', '4', 'v'), fps, size);
      codec_ = "mp4v";
    }
  } catch (const cv::Exception& e) {
    throw std::runtime_error(path + ": cannot open the video for writing (" + e.what() + ")");
  }
  if (!impl_->writer.isOpened())
    throw std::runtime_error(path + ": cannot open the video for writing (is the folder there and writable?)");
}

VideoWriter::~VideoWriter() {
  try {
    close();
  } catch (...) {
  }
}

void VideoWriter::write(const at::Tensor& frames) {
  if (!impl_->writer.isOpened()) throw std::runtime_error(path_ + ": the writer is closed");
  if (frames.dim() == 4) {
    for (int64_t i = 0; i < frames.size(0); ++i) write(frames[i]);
    return;
  }
  check_frame(frames, "VideoWriter::write");
  if (frames.size(1) != height_ || frames.size(2) != width_)
    throw std::invalid_argument(path_ + ": frame of " + std::to_string(frames.size(2)) + "x" +
                                std::to_string(frames.size(1)) + " in a " + std::to_string(width_) + "x" +
                                std::to_string(height_) + " video");
  cv::Mat bgr = to_bgr8(frames);
  if (width_ % 2 || height_ % 2)
    cv::copyMakeBorder(bgr, bgr, 0, static_cast<int>(height_ % 2), 0, static_cast<int>(width_ % 2), cv::BORDER_REPLICATE);
  impl_->writer.write(bgr);
  ++frames_written_;
}

void VideoWriter::close() {
  if (impl_ && impl_->writer.isOpened()) impl_->writer.release();
}

void write_png_frames(const std::string& dir, const at::Tensor& frames, int64_t first_index) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir + ": cannot create the folder (" + ec.message() + ")");
  const auto batch = frames.dim() == 3 ? frames.unsqueeze(0) : frames;
  for (int64_t i = 0; i < batch.size(0); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "frame_%06lld.png", static_cast<long long>(first_index + i));
    write_image((fs::path(dir) / name).string(), batch[i]);
  }
}

std::string frame_to_rgb24(const at::Tensor& frame) {
  check_frame(frame, "frame_to_rgb24");
  const auto hwc = frame.detach().to(at::kCPU, at::kFloat).clamp(0.0, 1.0).mul(255.0).round().to(at::kByte)
                       .permute({1, 2, 0}).contiguous();
  return std::string(static_cast<const char*>(hwc.data_ptr()), static_cast<size_t>(hwc.numel()));
}

// ---- overlays ----

at::Tensor draw_tracks(const at::Tensor& frame, const TrackSet& tracks, int64_t t, const TrackDrawStyle& style) {
  check_frame(frame, "draw_tracks");
  cv::Mat bgr = to_bgr8(frame);
  if (tracks.points() == 0 || tracks.frames() == 0) return frame.clone();
  const int64_t T = tracks.frames(), N = tracks.points();
  const int64_t now = std::clamp<int64_t>(t, 0, T - 1);
  const double sx = tracks.width > 0 ? static_cast<double>(bgr.cols) / tracks.width : 1.0;
  const double sy = tracks.height > 0 ? static_cast<double>(bgr.rows) / tracks.height : 1.0;
  const auto xy = tracks.xy.to(at::kCPU, at::kFloat).contiguous();
  const auto vis = tracks.visible.to(at::kCPU, at::kBool).contiguous();
  const auto pxy = xy.accessor<float, 3>();
  const auto pv = vis.accessor<bool, 2>();
  // 4 fractional bits: sub-pixel positions; pixel centres sit at integer OpenCV coordinates, hence the -0.5.
  constexpr int kShift = 4;
  auto point = [&](int64_t f, int64_t n) {
    return cv::Point(static_cast<int>(std::lround((pxy[f][n][0] * sx - 0.5) * (1 << kShift))),
                     static_cast<int>(std::lround((pxy[f][n][1] * sy - 0.5) * (1 << kShift))));
  };
  const cv::Scalar green(60, 230, 60), dark(0, 90, 0);
  const int64_t last = style.all_frames ? T - 1 : now;
  const int64_t first = style.all_frames || style.trail < 0 ? 0 : std::max<int64_t>(0, now - style.trail);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t f = first; f < last; ++f)
      if (pv[f][n] && pv[f + 1][n])
        cv::line(bgr, point(f, n), point(f + 1, n), green, style.thickness, cv::LINE_AA, kShift);
  const int r = style.radius << kShift;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t f = style.all_frames ? 0 : now;
    if (pv[f][n]) {
      cv::circle(bgr, point(f, n), r, dark, cv::FILLED, cv::LINE_AA, kShift);
      cv::circle(bgr, point(f, n), std::max(1, style.radius - 1) << kShift, green, cv::FILLED, cv::LINE_AA, kShift);
    } else {
      cv::circle(bgr, point(f, n), r, green, 1, cv::LINE_AA, kShift);
    }
  }
  return from_bgr(bgr);
}

}  // namespace ms::media
