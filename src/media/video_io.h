// Images and videos in and out of the tensors the library works with, plus track overlays.
//
// Frames are RGB float32 in [0, 1]: one frame [3, H, W], a video [T, 3, H, W]. Pixel coordinates follow the
// TrackSet convention: x right, y down, (0, 0) the top-left corner of the image, pixel (i, j) covers
// [j, j + 1) x [i, i + 1). Every error names the file it is about (std::runtime_error).
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "motionstream/tracks/track_set.h"

namespace ms::media {

// ---- images ----

// PNG, JPEG, or anything else OpenCV's imread reads; 8- or 16-bit, grey, RGB or RGBA (alpha dropped).
// -> [3, H, W] float32 in [0, 1]
at::Tensor read_image(const std::string& path);
// The bytes of an image file (PNG, JPEG, ...) -> [3, H, W]; `what` names the source in errors.
at::Tensor decode_image(const std::string& bytes, const std::string& what);
// [3, H, W] in [0, 1] -> PNG / JPEG by the extension.
void write_image(const std::string& path, const at::Tensor& frame);

// ---- fitting an image to the model's size ----

// How a source image becomes a model-sized one:
//   stretch  resize to exactly width x height (the aspect ratio may change)
//   pad      scale to fit inside, centred, the rest black (letterbox)
//   crop     scale to cover, centred, the overflow cut away
enum class FitMode { kStretch, kPad, kCrop };
FitMode parse_fit_mode(const std::string& name);  // "stretch" | "pad" | "crop"

// The affine map between source pixels and model pixels of a fit: model = source * scale + offset, per axis.
// Coordinates are continuous (pixel corners), so the source's corners map onto the corners of the scaled image.
struct FrameMapping {
  int64_t source_width = 0, source_height = 0;
  int64_t model_width = 0, model_height = 0;
  double scale_x = 1.0, scale_y = 1.0;
  double offset_x = 0.0, offset_y = 0.0;

  double to_model_x(double x) const { return x * scale_x + offset_x; }
  double to_model_y(double y) const { return y * scale_y + offset_y; }
  double to_source_x(double x) const { return (x - offset_x) / scale_x; }
  double to_source_y(double y) const { return (y - offset_y) / scale_y; }

  // Tracks in source pixels -> tracks in model pixels (width/height the model's). A point that the fit puts
  // outside the model image (cropped away) becomes invisible; positions stay the mapped ones.
  TrackSet tracks_to_model(const TrackSet& tracks) const;
  // The inverse: model pixels -> source pixels (visibility unchanged).
  TrackSet tracks_to_source(const TrackSet& tracks) const;
};

FrameMapping fit_mapping(int64_t source_width, int64_t source_height, int64_t model_width, int64_t model_height,
                         FitMode mode);

struct FittedImage {
  at::Tensor image;  // [3, model_height, model_width]
  FrameMapping mapping;
};
// Area-averaged when shrinking, bilinear when growing.
FittedImage fit_image(const at::Tensor& image, int64_t model_width, int64_t model_height, FitMode mode);

// Plain resize of [3, H, W] or [T, 3, H, W] frames to width x height (area when shrinking, bilinear otherwise).
at::Tensor resize_frames(const at::Tensor& frames, int64_t width, int64_t height);

// ---- video ----

struct Video {
  at::Tensor frames;  // [T, 3, H, W] float32 in [0, 1]
  double fps = 0.0;   // as the container reports it; 16 when it reports nothing usable
};
// Reads up to max_frames frames (0: all). Throws naming the file when it cannot be opened or holds no frame.
Video read_video(const std::string& path, int64_t max_frames = 0);

// MP4 writer, one frame at a time. Tries H.264 ('avc1', through OpenCV's FFmpeg backend) and falls back to MPEG-4
// Part 2 ('mp4v') with a note on stderr. The container's index is written by close(): a program that stops on
// Ctrl-C must let its loop end and close() (or destroy) the writer, and the file then plays. Odd sizes are padded
// to even ones by repeating the last row / column (4:2:0 chroma needs even sizes); the padding is on the
// right / bottom, so pixel coordinates are unchanged.
class VideoWriter {
 public:
  VideoWriter(const std::string& path, int64_t width, int64_t height, double fps);
  ~VideoWriter();
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  // [3, H, W] or [n, 3, H, W] in [0, 1], of the size given to the constructor.
  void write(const at::Tensor& frames);
  void close();  // idempotent

  int64_t frames_written() const { return frames_written_; }
  const std::string& codec() const { return codec_; }  // "avc1" or "mp4v"
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_, codec_;
  int64_t width_, height_;
  int64_t frames_written_ = 0;
};

// frames [T, 3, H, W] -> dir/frame_000000.png ... (numbered from first_index); creates dir.
void write_png_frames(const std::string& dir, const at::Tensor& frames, int64_t first_index = 0);
// [3, H, W] in [0, 1] -> H*W*3 bytes RGB24, row-major (what `ffmpeg -f rawvideo -pix_fmt rgb24` reads).
std::string frame_to_rgb24(const at::Tensor& frame);

// ---- track overlays ----

struct TrackDrawStyle {
  int64_t trail = 12;       // frames of trail behind each point (0: none; < 0: the whole past)
  int radius = 3;           // point radius in pixels of the frame drawn on
  int thickness = 1;        // trail line width
  bool all_frames = false;  // draw each track's whole path (a still summary), not only up to frame t
};
// frame [3, H, W] -> a copy with the tracks of frame t drawn over it (tracks scaled from their image size to the
// frame's). Live points: filled green discs; invisible points: hollow circles; trails: green polylines, drawn only
// between consecutive visible positions. Frames past the tracks' last one hold it.
at::Tensor draw_tracks(const at::Tensor& frame, const TrackSet& tracks, int64_t t, const TrackDrawStyle& style = {});

}  // namespace ms::media
