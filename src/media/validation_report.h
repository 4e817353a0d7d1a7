// The figures every model card reports, on the world's fixed validation clips (world::validation_seeds): how well
// a method's video follows the tracks it was given (EPE, pixels at the clip's resolution, visible points, frame 0
// skipped) and how close it is to the clip that really happened (PSNR, SSIM).
//
// Methods:
//   still    the first frame, repeated (a video that ignores the tracks)
//   warp     the first frame warped densely along the tracks (ms::warp_along_tracks: moves tracked pixels exactly,
//            cannot open up what was hidden or follow the prompt)
//   truth    the clip that really happened (the tracker's own error: the floor any method's EPE can reach)
//   codec    the real clip encoded and decoded by a model folder's autoencoder: what the real video scores in that
//            latent space, the practical floor for a model generating in it
//   hint     a warp-hint model folder's I2V condition decoded (the first frame warped along the tracks, encoded one
//            image per latent frame): what the model is handed about the motion
//   teacher  a bidirectional model folder, whole clip sampled with Euler steps and guidance (joint by default)
//   student  a causal model folder, streamed chunk by chunk through the KV cache (sink, window, few steps)
// Every method gets the same tracks per clip: `tracks` points drawn (seeded by the clip) among those visible on the
// first frame, and the clip's caption as the prompt.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "motionstream/diffusion/guidance.h"
#include "motionstream/stream/kv_cache.h"

namespace ms::media {

struct ValidationOptions {
  std::string method = "still";  // still | truth | warp | codec | hint | teacher | student
  std::string model_dir;         // codec / hint / teacher / student
  int64_t clips = 8;
  int64_t width = 128, height = 128, frames = 17;  // frames: 1 + 4k
  int64_t tracks = 32;
  int64_t steps = 0;             // 0: 20 for the teacher, 3 for the student
  Guidance guidance;             // teacher: joint, w_t 3, w_m 1.5
  StreamLayout layout;           // student: chunk 3, sink 1, window 1
  uint64_t seed = 0;             // sampling noise
  // Teacher with the warp hint: < 1000 starts the ODE at this timestep from the hint noised to it (the hint's
  // latents, frame 0 the image's own) instead of from pure noise at 1000; the steps above it are skipped.
  double hint_start = 1000;
  std::string videos_dir;        // when set: one MP4 per clip, ground truth | method side by side
};

// {"method", ..., "clips": [{seed, epe, epe_reliable, reliable_points, psnr, ssim, ...}],
//  "mean": {"epe", "epe_reliable", "psnr", "ssim"}}
// epe_reliable: the EPE over the tracks the tracker follows on the real clip (media::reliably_tracked, 2 px): the
// real clip scores near zero there, so it measures the method, not the tracker.
nlohmann::json validation_report(const ValidationOptions& options);

}  // namespace ms::media
