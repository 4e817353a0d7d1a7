#define USE_C10D_GLOO 1  // the Gloo process group's declarations are behind this switch
#include "motionstream/train/data_parallel.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <stdexcept>

namespace ms {

void DistributedConfig::validate() const {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw std::invalid_argument("distributed: need 0 <= rank < world_size, got rank " + std::to_string(rank) +
                                " of " + std::to_string(world_size));
  if (master_port <= 0 || master_port > 65535)
    throw std::invalid_argument("distributed: master_port " + std::to_string(master_port) + " is not a port");
}

struct DataParallel::Group {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

DataParallel::DataParallel(const DistributedConfig& config) : config_(config) {
  config_.validate();
  if (config_.world_size == 1) return;
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(config_.master_port);
  store_options.isServer = config_.rank == 0;
  store_options.numWorkers = static_cast<std::size_t>(config_.world_size);
  group_ = std::make_unique<Group>();
  group_->store = c10::make_intrusive<c10d::TCPStore>(config_.master_addr, store_options);
  auto options = c10d::ProcessGroupGloo::Options::create();
  options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(config_.master_addr));
  group_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(group_->store, static_cast<int>(config_.rank),
                                                             static_cast<int>(config_.world_size), options);
}

DataParallel::~DataParallel() = default;

void DataParallel::average_gradients(torch::nn::Module& module) {
  if (!group_) return;
  std::vector<at::Tensor> grads;
  for (auto& p : module.parameters())
    if (p.grad().defined()) grads.push_back(p.grad());
  auto flat = at::cat([&] {
    std::vector<at::Tensor> views;
    for (auto& g : grads) views.push_back(g.flatten());
    return views;
  }());
  std::vector<at::Tensor> buffer{flat};
  group_->group->allreduce(buffer)->wait();
  flat.div_(static_cast<double>(config_.world_size));
  int64_t offset = 0;
  for (auto& g : grads) {
    g.copy_(flat.narrow(0, offset, g.numel()).view_as(g));
    offset += g.numel();
  }
}

}  // namespace ms
