// Quality figures of a generated video (SPEC.md section 7): how well it follows its input tracks (EPE) and, when a
// reference video exists, PSNR and SSIM against it.
//
// EPE: the tracks' frame-0 positions are re-tracked through the generated video with the Lucas-Kanade tracker of
// motion_transfer.h (same options); EPE is the mean L2 distance in pixels of the generated video between the
// re-tracked and the input positions, over every (frame, point) where the input marks the point visible, frame 0
// skipped (both start at the same place). Input tracks drawn on an image of another size are scaled to the video's
// size first; only the first min(video frames, track frames) frames count. Points whose frame-0 position is outside
// the image cannot be queried and are left out. A re-tracked point that the tracker lost still counts, at the
// position the tracker carries it to (the global motion), as the paper's tracker would report it.
//
// PSNR: 10 log10(1 / MSE), MSE over all pixels, channels and frames of videos in [0, 1] (a single MSE for the whole
// video, not a mean of per-frame PSNRs); identical videos give +inf.
// SSIM: on luma (BT.601, Y = 0.299 R + 0.587 G + 0.114 B) with an 11 x 11 Gaussian window (sigma 1.5),
// C1 = 0.01^2, C2 = 0.03^2 (data range 1), averaged over the "valid" window positions (5 px dropped on each border
// when the frame is at least 11 px on each side), then over frames. Identical videos give 1.
// A reference of another size is resized (area / bilinear) to the generated video's size; only the first
// min(frames) frames are compared.
#pragma once

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <limits>

#include "media/motion_transfer.h"
#include "motionstream/tracks/track_set.h"

namespace ms::media {

struct MotionFollowing {
  double epe = std::numeric_limits<double>::quiet_NaN();  // NaN when nothing could be compared
  int64_t frames = 0;   // frames compared (frame 0 included in the count, skipped in the mean)
  int64_t points = 0;   // query points used
  int64_t samples = 0;  // (frame, point) pairs averaged
};
// video [T, 3, H, W] in [0, 1]. counted: [N] bool, the tracks that enter the mean (all when undefined); every
// track is re-tracked either way, since the tracker carries lost points with the motion of all of them.
MotionFollowing motion_epe(const at::Tensor& video, const TrackSet& tracks, const LkOptions& options = {},
                           const at::Tensor& counted = {});

// Where the tracker itself can be trusted: true for each track whose re-tracked position in the real video
// (`reference`, [T, 3, H, W]) stays within `tolerance` pixels of the track on every frame it is visible. On the
// world's clips re-tracking the real video gives an EPE of several pixels (flat shapes, occluders, rotation), so
// the EPE over these points alone (motion_epe's `counted`) is the one that separates methods; false for points that
// cannot be queried.
// -> [N] bool
at::Tensor reliably_tracked(const at::Tensor& reference, const TrackSet& tracks, double tolerance = 2.0,
                            const LkOptions& options = {});

// a, b: [T, 3, H, W] or [3, H, W] of the same shape, in [0, 1]
double psnr(const at::Tensor& a, const at::Tensor& b);
double ssim(const at::Tensor& a, const at::Tensor& b);

struct EvalReport {
  MotionFollowing motion;
  bool has_reference = false;
  // With a reference: the same EPE over the tracks the tracker follows on it (reliably_tracked, 2 px), from the same
  // re-tracking of the video; the reference itself scores near zero there, so this measures the video, not the tracker.
  MotionFollowing motion_reliable;
  int64_t reliable_points = 0;
  double psnr = std::numeric_limits<double>::quiet_NaN();
  double ssim = std::numeric_limits<double>::quiet_NaN();
  int64_t frames = 0;  // frames of the generated video
};
// Tracks without points give a NaN EPE; an undefined reference gives no PSNR / SSIM and no reliable-point EPE.
EvalReport evaluate_video(const at::Tensor& video, const TrackSet& tracks, const at::Tensor& reference,
                          const LkOptions& options = {});
// {"epe", "psnr", "ssim", "frames", "points", "epe_samples", "epe_frames"} (+ "epe_reliable", "reliable_points" with a
// reference); a figure that does not exist (no reference) or is infinite (identical videos) is null, with
// "psnr_identical": true in the second case.
nlohmann::json to_json(const EvalReport& report);

}  // namespace ms::media
