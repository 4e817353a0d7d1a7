#include "motionstream/train/clip_pool.h"

#include <ATen/CPUGeneratorImpl.h>

#include <stdexcept>
#include <string>

namespace ms {

void ClipPoolConfig::validate() const {
  spec.validate();
  if (batch < 1 || fresh < 1 || pool < batch || pool < fresh)
    throw std::invalid_argument("clip pool: need 1 <= batch <= pool and 1 <= fresh <= pool, got batch " +
                                std::to_string(batch) + ", pool " + std::to_string(pool) + ", fresh " +
                                std::to_string(fresh));
}

ClipPool::ClipPool(ClipPoolConfig config, const world::PhotoBank* photos, int64_t step)
    : config_(std::move(config)), photos_(photos) {
  config_.validate();
  slots_.resize(static_cast<size_t>(config_.pool));
  for (int64_t n = step * config_.fresh; n < step * config_.fresh + config_.pool; ++n)
    slots_[static_cast<size_t>(n % config_.pool)] = world::render_clip(config_.spec, seed_of(n), photos_, config_.render_device);
}

uint64_t ClipPool::seed_of(int64_t n) const { return config_.seed * 1000003ULL + static_cast<uint64_t>(n); }

std::vector<const world::Clip*> ClipPool::next(int64_t step) {
  for (int64_t i = 0; i < config_.fresh; ++i) {
    const int64_t n = step * config_.fresh + config_.pool + i;  // replaces clip n - pool, in the same slot
    slots_[static_cast<size_t>(n % config_.pool)] = world::render_clip(config_.spec, seed_of(n), photos_, config_.render_device);
  }
  auto gen = at::detail::createCPUGenerator(config_.seed * 7919 + static_cast<uint64_t>(step));
  auto pick = at::randperm(config_.pool, gen);
  std::vector<const world::Clip*> batch;
  for (int64_t i = 0; i < config_.batch; ++i) batch.push_back(&slots_[static_cast<size_t>(pick[i].item<int64_t>())]);
  return batch;
}

at::Tensor ClipPool::videos(const std::vector<const world::Clip*>& clips, const at::Device& device) {
  std::vector<at::Tensor> v;
  for (const auto* c : clips) v.push_back(c->video.to(device));
  return at::stack(v);
}

}  // namespace ms
