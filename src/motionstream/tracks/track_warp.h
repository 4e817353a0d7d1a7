// The warp baseline: the first frame moved along the tracks, with no generative model.
//
// Each output frame is a backward warp of the first image through a dense displacement field spread from the
// tracks: near a visible track the image moves with it; far from every track it holds still. It moves tracked
// pixels exactly, but cannot open up what was hidden, close what gets covered, or follow the prompt: the bar any
// learned model should clear on motion, and the reference point for what it adds beyond motion.
#pragma once

#include <ATen/ATen.h>

#include "motionstream/tracks/track_set.h"

namespace ms {

struct WarpOptions {
  // Width of each track's influence, as a fraction of the shorter image side (Gaussian sigma).
  double reach = 0.06;
  // Pull toward "holds still", in units of one track's weight at its own position: far from the tracks this wins.
  double stillness = 0.05;
};

// image: [3, H, W]; tracks in pixels of a tracks.width x tracks.height image (scaled to H x W).
// -> [count, 3, H, W]: frames first .. first + count - 1, each warped by the displacement of every track that is
// visible both on frame 0 and on that frame (frames past the tracks' last one hold it).
at::Tensor warp_along_tracks(const at::Tensor& image, const TrackSet& tracks, int64_t first, int64_t count,
                             const WarpOptions& options = {});

}  // namespace ms
