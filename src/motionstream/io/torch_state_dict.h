// Writing a state dict in the torch.save zip format (.pth / .pt), without Python. Reading one is TensorFile's
// (tensor_file.h), through torch_archive.
#pragma once

#include <string>
#include <vector>

#include "motionstream/io/safetensors.h"

namespace ms::io {

// torch.save({name: contiguous tensor, ...}) in the zip format, written atomically; Python's torch.load and
// libtorch's torch::pickle_load read it. The dict is a plain dict, not an OrderedDict: libtorch's own reader turns
// OrderedDict() into None. Throws TorchArchiveError on a duplicate or empty name.
void write_torch_state_dict(const std::string& path, const std::vector<TensorToWrite>& tensors);

}  // namespace ms::io
