// Reading and writing point tracks in the layouts users already have, and fitting them to a video's frame count,
// frame rate and image size. docs/FORMATS.md describes every layout and the resampling rules.
//
//   .json        the project's own format ("motionstream-tracks", version 1)
//   .npy         CoTracker / Wan-Move positions, (T, N, 2) or (1, T, N, 2) pixels, plus an optional visibility .npy
//   .pth / .pt   ATI: torch.save of the bytes of an .npz whose "array" is (N, 121, 1, 3) = 8 * (x, y, visible)
//
// Every error names the file: std::runtime_error for a file that is missing, corrupt or holds the wrong thing,
// std::invalid_argument for options that do not fit the file.
#pragma once

#include <cstdint>
#include <string>

#include "motionstream/tracks/track_set.h"

namespace ms {

// ATI's conventions: 121 frames sampled at 24 fps for a model that makes 81 frames at 16 fps, values times 8.
constexpr int64_t kAtiSourceFrames = 121;
constexpr double kAtiSourceFps = 24.0;
constexpr int64_t kAtiFrames = 81;
constexpr double kAtiFps = 16.0;
constexpr float kAtiQuantization = 8.0f;
// Wan-Move's .npy tracks: 81 frames at 16 fps.
constexpr double kNpyDefaultFps = 16.0;

// What to fit the tracks to; 0 keeps the source's value.
struct TrackTarget {
  int64_t frames = 0;             // 0 with fps > 0: as many frames as the source's duration holds at that fps
  double fps = 0.0;               // 0 with frames > 0: the fps that keeps the source's duration
  int64_t width = 0, height = 0;  // both or neither
};

struct TrackReadOptions {
  // .npy only: (T, N), (1, T, N), (T, N, 1) or (1, T, N, 1) bool (or uint8, non-zero = visible). Empty: all visible.
  std::string visibility_path;
  // The image the tracks were drawn on. Required for .npy and .pth, which do not record it; for .json, when given,
  // it must match the file.
  int64_t source_width = 0, source_height = 0;
  // Frame rate of the tracks. 0: .json its "fps", .npy 16 (Wan-Move), .pth 24 (ATI). For .json, when given, it
  // must match the file.
  double source_fps = 0.0;
  TrackTarget target;
  // ATI tracks (121 frames at 24 fps) fitted to 81 frames at 16 fps take ATI's own frame pick (ati_pick_frames)
  // instead of linear interpolation, so that the model sees what ATI's pipeline would give it.
  bool ati_frame_pick = true;
};

enum class TrackFormat { Json, Npy, Ati };
// From the extension, case-insensitive; throws std::invalid_argument naming the path for any other.
TrackFormat track_format_of(const std::string& path);

// Reads any supported format, then fits it to options.target (time first, then image size). Validated.
TrackSet read_tracks(const std::string& path, const TrackReadOptions& options = {});

TrackSet read_tracks_json(const std::string& path);
// width/height: the image the tracks were drawn on (required). fps <= 0: 16.
TrackSet read_tracks_npy(const std::string& path, const std::string& visibility_path, int64_t width, int64_t height,
                         double fps = kNpyDefaultFps);
// The raw 121 (or however many the file holds) frames, divided by 8; fps <= 0: 24.
TrackSet read_tracks_ati(const std::string& path, int64_t width, int64_t height, double fps = kAtiSourceFps);

// Writes the native JSON format; floats are written so that reading gives back the same bits.
void write_tracks_json(const std::string& path, const TrackSet& tracks);
// Writes the Wan-Move layout: positions (1, T, N, 2) float32 and, unless visibility_path is empty, (1, T, N) bool.
void write_tracks_npy(const std::string& tracks_path, const std::string& visibility_path, const TrackSet& tracks);

// Resamples in time by linear interpolation. Output frame i sits at time i / fps, i.e. at source frame
// s = i * source_fps / fps (fps <= 0: the fps that keeps the duration, s = i * (T - 1) / (frames - 1)); times past
// the last source frame hold it. Position: (1 - w) * p[floor(s)] + w * p[floor(s) + 1], w = s - floor(s).
// Visibility: on a source frame (w == 0), that frame's; between two, visible only if visible on both.
TrackSet resample_tracks(const TrackSet& tracks, int64_t frames, double fps);
// x' = x * width / tracks.width, y' = y * height / tracks.height (pixel coordinates with (0, 0) the top-left corner
// of the image, so pixel centres map to pixel centres). Visibility unchanged.
TrackSet scale_tracks(const TrackSet& tracks, int64_t width, int64_t height);
// ATI's 121 -> 81 frame mapping: output frame i takes source frame floor(3 i / 2) (nearest earlier, no
// interpolation), fps 16. Requires 121 frames.
TrackSet ati_pick_frames(const TrackSet& tracks);
// resample_tracks then scale_tracks as the target asks; a target of zeros returns the tracks unchanged.
TrackSet fit_tracks(const TrackSet& tracks, const TrackTarget& target);

}  // namespace ms
