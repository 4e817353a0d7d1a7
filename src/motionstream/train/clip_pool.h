// ClipPool: the world's clips for a training run, reproducible from the step alone.
//
// Before step s the pool holds clip indices [s * fresh, s * fresh + pool), clip n in slot n % pool; step s renders
// `fresh` new clips over the oldest and draws `batch` slots at random (seeded by the step). A resumed run therefore
// rebuilds exactly the pool it had. pool = fresh = batch uses every clip once; a larger pool reuses clips where
// rendering, not the model, is the bottleneck. Clip seeds stay far below the validation seeds (9e12 on).
#pragma once

#include <memory>
#include <vector>

#include "motionstream/train/world.h"

namespace ms {

struct ClipPoolConfig {
  world::WorldSpec spec;
  int64_t pool = 4, fresh = 4, batch = 4;
  uint64_t seed = 0;
  at::Device render_device = at::kCPU;
  void validate() const;
};

class ClipPool {
 public:
  ClipPool(ClipPoolConfig config, const world::PhotoBank* photos, int64_t step);
  // Renders the step's fresh clips into the pool and returns the step's batch.
  std::vector<const world::Clip*> next(int64_t step);
  // The videos of a batch, stacked: [B, F, 3, H, W] on `device`.
  static at::Tensor videos(const std::vector<const world::Clip*>& clips, const at::Device& device);

 private:
  uint64_t seed_of(int64_t n) const;
  ClipPoolConfig config_;
  const world::PhotoBank* photos_;
  std::vector<world::Clip> slots_;
};

}  // namespace ms
