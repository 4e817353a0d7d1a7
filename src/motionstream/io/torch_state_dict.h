// State dicts in the torch.save zip format (.pth / .pt), read and written without Python: what Wan publishes its
// VAE as (Wan2.1_VAE.pth, an OrderedDict of F32 tensors).
//
// The archive's pickle maps names to torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...); each
// storage is the entry "<archive>/data/<key>", its element type given by the storage class (torch.FloatStorage,
// torch.HalfStorage, torch.BFloat16Storage, ...). Nested dicts (training checkpoints: {"model": {...}}) are
// flattened into dotted names; values that are not tensors (step counters, ...) are left out.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "motionstream/io/safetensors.h"
#include "motionstream/io/torch_archive.h"

namespace ms::io {

class TorchStateDictFile {
 public:
  // Reads the zip directory and the pickle (not the tensor data). Throws TorchArchiveError naming the file and,
  // where one is involved, the tensor.
  explicit TorchStateDictFile(const std::string& path);

  const std::string& path() const { return path_; }
  // In the pickle's order. begin is 0 and end the tensor's size in bytes: the data is read through copy_to().
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  // Writes the tensor's elements, row-major and contiguous (numel * dtype_size bytes), to dst. CRC-checked.
  void copy_to(const TensorInfo& info, void* dst) const;

 private:
  struct Source {
    std::string entry;            // "<archive>/data/<key>"
    int64_t offset = 0;           // in elements
    std::vector<int64_t> stride;  // in elements
  };
  void add(const std::string& name, const PickleValue& tensor, const std::string& archive);

  std::string path_;
  std::unique_ptr<ZipArchive> zip_;
  std::vector<TensorInfo> tensors_;
  std::vector<Source> sources_;  // beside tensors_
  std::unordered_map<std::string, size_t> index_;
};

// torch.save({name: contiguous tensor, ...}) in the zip format, written atomically; Python's torch.load and
// libtorch's torch::pickle_load read it. Throws TorchArchiveError on a duplicate or empty name.
void write_torch_state_dict(const std::string& path, const std::vector<TensorToWrite>& tensors);

}  // namespace ms::io
