// The tensors of a checkpoint file, whatever its format, recognised by content (not by file name): safetensors, or a
// state dict saved by torch.save (a zip archive; .pth / .pt).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "motionstream/io/safetensors.h"
#include "motionstream/io/torch_state_dict.h"

namespace ms::io {

class TensorFile {
 public:
  // Throws SafetensorsError or TorchArchiveError naming the file (and the tensor, where one is at fault).
  explicit TensorFile(const std::string& path);

  const std::string& path() const { return path_; }
  const char* format() const { return torch_ ? "torch.save" : "safetensors"; }
  const std::vector<TensorInfo>& tensors() const;
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  // The tensor's elements, row-major and contiguous (numel * dtype_size bytes), into dst.
  void copy_to(const TensorInfo& info, void* dst) const;
  // True for safetensors (validated up front, then read from memory); a torch.save entry is CRC-checked as it is
  // read, so reading can fail there.
  bool reads_cannot_fail() const { return !torch_; }

 private:
  std::string path_;
  std::unique_ptr<SafetensorsFile> safetensors_;
  std::unique_ptr<TorchStateDictFile> torch_;
};

}  // namespace ms::io
