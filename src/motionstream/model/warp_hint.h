// The warp hint: the first frame warped along the tracks (ms::warp_along_tracks), encoded frame by frame, written
// into the I2V condition of the later latent frames.
//
// Why in pixel space: the small autoencoder's latents are phase-sensitive, so a latent cell copied along a track
// (ms::copy_latents_along_tracks) predicts the target cell barely better than zeros once the content moves by part
// of a cell (bench/denoise_error measures both). Warping pixels and encoding keeps the phase. Each latent frame l
// gets the single-image latent of warped pixel frame 4l, so the hint needs no encoder state and streams chunk by
// chunk exactly as it trains; a still video's later latents match its first latent closely, which makes the
// single-image latent a fair stand-in for a 4-frame one.
#pragma once

#include <ATen/ATen.h>

#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/tracks/track_set.h"

namespace ms {

// Latents [1, C, count, h, w] of latent frames first .. first + count - 1 of the first image [3, H, W] (values in
// [0, 1]) warped along `tracks`; latent frame 0 is the image's own latent.
at::Tensor warp_hint_latents(LatentCodec& codec, const at::Tensor& image, const TrackSet& tracks,
                             int64_t first_latent_frame, int64_t count);

// Writes the hint into condition [1, 4 + C, count, h, w] (its latent part) for every latent frame after the first;
// the mask stays as it is (0 on hinted frames: a hint, not a given frame). Nothing is written without tracks.
void write_warp_hint(at::Tensor& condition, LatentCodec& codec, const at::Tensor& image, const TrackSet& tracks,
                     int64_t first_latent_frame);

}  // namespace ms
