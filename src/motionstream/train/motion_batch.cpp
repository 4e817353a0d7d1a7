#include "motionstream/train/motion_batch.h"

#include <algorithm>
#include <stdexcept>

#include "motionstream/model/dit.h"
#include "motionstream/model/warp_hint.h"
#include "motionstream/tracks/track_raster.h"

namespace ms {

void MotionDataConfig::validate() const {
  if (min_tracks < 1 || max_tracks < min_tracks)
    throw std::invalid_argument("MotionDataConfig: need 1 <= min_tracks <= max_tracks, got " +
                                std::to_string(min_tracks) + ", " + std::to_string(max_tracks));
  for (double p : {text_dropout, track_dropout, frame_zero_prob})
    if (!(p >= 0 && p <= 1)) throw std::invalid_argument("MotionDataConfig: probabilities must be in [0, 1]");
}

namespace {
double uniform(at::Generator& gen) { return at::empty({1}, at::kDouble).uniform_(0, 1, gen).item<double>(); }

// A random subset of the tracks that are visible on frame 0 (their query points lie on the first image).
TrackSet sample_tracks(const TrackSet& all, const MotionDataConfig& data, at::Generator& gen) {
  auto candidates = all.visible[0].nonzero().flatten();  // [M]
  const int64_t M = candidates.size(0);
  TrackSet out = all;
  const int64_t want = std::min(M, data.min_tracks + at::randint(data.max_tracks - data.min_tracks + 1, {1}, gen).item<int64_t>());
  auto chosen = candidates.index_select(0, at::randperm(M, gen).narrow(0, 0, want));
  out.xy = all.xy.index_select(1, chosen);
  out.visible = all.visible.index_select(1, chosen);
  return out;
}
}  // namespace

MotionBatch slice_batch(const MotionBatch& b, int64_t begin, int64_t count) {
  MotionBatch out;
  out.x0 = b.x0.narrow(0, begin, count);
  out.condition = b.condition.narrow(0, begin, count);
  out.tracks = b.tracks.narrow(0, begin, count);
  out.captions.assign(b.captions.begin() + begin, b.captions.begin() + begin + count);
  out.track_sets.assign(b.track_sets.begin() + begin, b.track_sets.begin() + begin + count);
  return out;
}

std::vector<at::Tensor> LatentCache::latents(const std::vector<const world::Clip*>& clips, const at::Device& device) {
  std::vector<at::Tensor> out;
  for (const auto* clip : clips) {
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const auto& e) { return e.first == clip->seed; });
    if (it == entries_.end()) {
      entries_.emplace_back(clip->seed, codec_.encode(clip->video.to(device).unsqueeze(0))[0]);
      if (entries_.size() > capacity_) entries_.erase(entries_.begin());
      it = entries_.end() - 1;
    }
    out.push_back(it->second);
  }
  return out;
}

MotionBatch make_motion_batch(const std::vector<const world::Clip*>& clips, const std::vector<at::Tensor>& latents,
                              const DitConfig& dit, const MotionDataConfig& data, at::Generator& gen,
                              LatentCodec* codec) {
  data.validate();
  if (dit.track_warp_hint && !codec)
    throw std::invalid_argument("make_motion_batch: the DiT takes the warp hint (track_warp_hint) but no codec was given");
  MotionBatch b;
  b.x0 = at::stack(latents);  // [B, C, T, h, w]
  const at::Device device = b.x0.device();
  const int64_t T = b.x0.size(2), h = b.x0.size(3), w = b.x0.size(4);
  b.condition = image_condition(b.x0.select(2, 0), 0, T);
  std::vector<at::Tensor> packed;
  for (const auto* clip : clips) {
    b.captions.push_back(uniform(gen) < data.text_dropout ? "" : clip->caption);
    if (uniform(gen) < data.track_dropout || clip->tracks.points() == 0) {
      b.track_sets.emplace_back();
      packed.push_back(at::zeros({1, dit.packed_track_channels(), T, h, w}));
      continue;
    }
    TrackSet subset = sample_tracks(clip->tracks, data, gen);
    auto ids = draw_track_ids(subset.points(), gen);
    auto p = packed_track_input(subset, ids, 0, T, h, w, dit.track_id_dim);  // [1, 4 * id, T, h, w]
    if (T > 1 && uniform(gen) < data.frame_zero_prob) {
      const int64_t f = 1 + at::randint(T - 1, {1}, gen).item<int64_t>();  // a latent frame after the first
      const int64_t k = at::randint(4, {1}, gen).item<int64_t>();           // one of its 4 pixel frames
      p.narrow(1, k * dit.track_id_dim, dit.track_id_dim).select(2, f).zero_();
    }
    packed.push_back(p);
    b.track_sets.push_back(subset);
  }
  b.tracks = at::cat(packed, 0).to(device);
  if (dit.track_latent_copy) copy_latents_along_tracks(b.condition, b.x0.select(2, 0), b.track_sets, 0);
  if (dit.track_warp_hint)
    for (size_t i = 0; i < clips.size(); ++i) {
      at::Tensor row = b.condition.narrow(0, static_cast<int64_t>(i), 1);  // a view: written in place
      write_warp_hint(row, *codec, clips[i]->video[0], b.track_sets[i], 0);
    }
  return b;
}

}  // namespace ms
