// TensorFile: the tensors of a checkpoint file by name, whatever its format: names, dtypes and shapes up front,
// values read one tensor at a time. Formats, told apart by their first bytes:
//   - safetensors (memory-mapped);
//   - sharded safetensors through their index, "<name>.safetensors.index.json" ({"weight_map": {tensor: shard}}),
//     as Hugging Face and diffusers write large models (e.g. diffusers' Wan text_encoder/);
//   - a torch.save zip archive (.pth/.pt) holding a state dict (a dict of name -> tensor), memory-mapped too, so
//     that an 11 GB file costs no 11 GB read up front. Storage entries are not CRC-checked (that would read the
//     whole file once more); their extents are. Nested dicts (training checkpoints: {"model": {...}}) are
//     flattened into dotted names; values that are not tensors (step counters, ...) are left out.
// Every tensor's extent is checked when the file opens, so read() of a listed tensor does not fail afterwards:
// load_state_dict relies on that to leave a module untouched when a file is refused.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "motionstream/io/safetensors.h"

namespace ms::io {

// The tensor type that holds a stored dtype.
at::ScalarType scalar_type(DType d);

class TensorFile {
 public:
  // Throws SafetensorsError (or TorchArchiveError for a damaged zip archive) naming the file.
  explicit TensorFile(const std::string& path);
  ~TensorFile();

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const;  // safetensors: in file order; torch archives: in dict order
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  at::Tensor read(const TensorInfo& info) const;   // a CPU copy, same dtype and shape as stored

 private:
  class TorchZip;
  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;  // one for a plain safetensors file
  std::vector<TensorInfo> shard_tensors_;                 // every shard's tensors, shard by shard
  std::vector<size_t> shard_of_;                          // beside shard_tensors_: which shard holds it
  std::unique_ptr<TorchZip> torch_zip_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in tensors()
};

}  // namespace ms::io
