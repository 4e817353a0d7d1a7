// Motion transfer: point tracks taken from a source video with a pyramidal Lucas-Kanade tracker, ready to drive a
// new first image of similar layout (SPEC.md section 9). The same tracker re-estimates tracks on generated videos
// for the EPE metric (evaluation.h).
//
// Tracking is frame to frame (t-1 -> t) from the query points on frame 0. After every step a forward-backward check
// tracks the new position back to frame t-1: a point stays visible only while
//   - OpenCV reports both the forward and the backward search as found,
//   - the round trip lands within `fb_threshold` pixels of where it started (1 px by default: a well-textured
//     point comes back within a few hundredths of a pixel; occlusion, leaving the frame or a textureless patch
//     breaks the round trip by much more), and
//   - the new position lies inside the image, [0, W) x [0, H).
// A point that fails once stays invisible for the rest of the video (no re-detection: a lost point that came back
// would need appearance matching this tracker does not do). Its position keeps moving with the median displacement
// of the points still visible on that step (the global motion), so it remains finite and roughly where the content
// went; with no visible point left it holds still.
#pragma once

#include <ATen/ATen.h>

#include "motionstream/tracks/track_set.h"

namespace ms::media {

struct LkOptions {
  int window = 21;             // side of the square search window, pixels (odd)
  int levels = 3;              // pyramid levels above full resolution: motions up to ~window * 2^levels / 2 px
  int iterations = 30;         // per level
  double epsilon = 0.01;       // stop a level's iterations when the update is smaller (pixels)
  double fb_threshold = 1.0;   // forward-backward round-trip error (pixels) above which a point is lost
  double min_eigen = 1e-4;     // OpenCV's minEigThreshold: flat patches (no texture) are reported as not found
  void validate() const;
};

// frames [T, 3, H, W] in [0, 1]; query_xy [N, 2] (x, y) pixels on frame 0 (TrackSet convention: (0, 0) is the
// top-left corner of the image). -> tracks [T, N] of the video's size at `fps`; a query outside the image is
// invisible from frame 0 on.
TrackSet track_points(const at::Tensor& frames, const at::Tensor& query_xy, double fps, const LkOptions& options = {});

// Queries on a cols x rows grid at the centres of even cells over frame 0 (grid_query_points, camera.h).
TrackSet track_grid(const at::Tensor& frames, int64_t cols, int64_t rows, double fps, const LkOptions& options = {});

// Re-anchoring on a new first image of similar layout: the tracks are applied to it as they are, in relative
// coordinates, i.e. x' = x * new_width / width, y' = y * new_height / height (scale_tracks). The new image is
// assumed to show the things that should move where the source video's first frame shows them; nothing is matched
// between the two images. Visibility is kept.
TrackSet reanchor_tracks(const TrackSet& tracks, int64_t new_width, int64_t new_height);

}  // namespace ms::media
