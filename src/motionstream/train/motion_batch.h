// From world clips to what the motion-conditioned DiT trains on: normalised latents, the I2V condition, a random
// subset of tracks packed into the track input (with random IDs, track dropout and the random-frame zeroing that
// teaches "released drag" vs "occluded"), and captions (with text dropout). Shared by every training stage.
#pragma once

#include <string>
#include <vector>

#include "motionstream/model/dit_config.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/train/world.h"

namespace ms {

struct MotionDataConfig {
  int64_t min_tracks = 1, max_tracks = 64;  // tracks drawn per clip among those visible on frame 0
  double text_dropout = 0.1;                // caption replaced by "" (the unconditional text)
  double track_dropout = 0.1;               // no tracks at all (the unconditional motion)
  double frame_zero_prob = 0.2;             // one random pixel frame's track map zeroed
  void validate() const;
};

struct MotionBatch {
  at::Tensor x0;                      // [B, C, T, h, w] normalised clean latents
  at::Tensor condition;               // [B, 4 + C, T, h, w] first-frame mask + latent
  at::Tensor tracks;                  // [B, 4 * id_dim, T, h, w]; all zero for a dropped sample
  std::vector<std::string> captions;  // "" for a dropped sample
  std::vector<TrackSet> track_sets;   // the tracks each sample was given (empty TrackSet when dropped)
};

// Rows [begin, begin + count) of a batch: a data-parallel rank's share.
MotionBatch slice_batch(const MotionBatch& batch, int64_t begin, int64_t count);

// latents: each clip's normalised latents [C, T, h, w] (LatentCodec::encode), so that a caller reusing clips
// encodes each once. codec: the encoder of the warp hint, needed when the DiT takes one (DitConfig::track_warp_hint).
MotionBatch make_motion_batch(const std::vector<const world::Clip*>& clips, const std::vector<at::Tensor>& latents,
                              const DitConfig& dit, const MotionDataConfig& data, at::Generator& gen,
                              LatentCodec* codec = nullptr);

// Encodes each clip once while it stays in use: latents by clip seed, the oldest forgotten past `capacity`.
class LatentCache {
 public:
  LatentCache(LatentCodec& codec, size_t capacity) : codec_(codec), capacity_(capacity) {}
  std::vector<at::Tensor> latents(const std::vector<const world::Clip*>& clips, const at::Device& device);

 private:
  LatentCodec& codec_;
  size_t capacity_;
  std::vector<std::pair<uint64_t, at::Tensor>> entries_;  // oldest first
};

}  // namespace ms
