// Data-parallel training across processes with torch's c10d: a TCPStore for the rendezvous and a Gloo process
// group on CPUs (the same calls take NCCL on GPUs). Every rank builds the same global batch from the same seeds and
// trains on its slice; gradients are averaged, so W ranks with batch B/W each follow the 1-process run with batch B.
// Rank 0 alone writes logs, checkpoints and exports.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <string>

namespace ms {

struct DistributedConfig {
  int64_t rank = 0, world_size = 1;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  void validate() const;
};

class DataParallel {
 public:
  explicit DataParallel(const DistributedConfig& config);  // world_size 1: every call is a no-op
  ~DataParallel();
  int64_t rank() const { return config_.rank; }
  int64_t world_size() const { return config_.world_size; }
  bool is_writer() const { return config_.rank == 0; }
  // This rank's rows of a global batch of `global_batch`: [begin, begin + count).
  int64_t slice_begin(int64_t global_batch) const { return rank() * (global_batch / world_size()); }
  int64_t slice_size(int64_t global_batch) const { return global_batch / world_size(); }
  void average_gradients(torch::nn::Module& module);

 private:
  struct Group;
  DistributedConfig config_;
  std::unique_ptr<Group> group_;
};

}  // namespace ms
