// Between safetensors files and torch modules: tensors by name, checked before anything is copied.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

#include "motionstream/io/safetensors.h"

namespace ms::io {

// A copy of one stored tensor as an at::Tensor of the same dtype and shape (CPU).
at::Tensor read_tensor(const SafetensorsFile& file, const TensorInfo& info);

struct LoadOptions {
  std::string prefix;            // stripped from stored names first, e.g. "model." in Self-Forcing checkpoints
  bool allow_missing = false;    // module tensors the file lacks keep their values (e.g. new track channels)
  bool allow_unexpected = false; // stored tensors the module lacks are ignored
};

struct LoadReport {
  std::vector<std::string> loaded, missing, unexpected;
};

// Loads parameters and buffers by name from a safetensors file or a torch.save'd state dict (.pth; see
// tensor_file.h). All-or-nothing: every name, shape and dtype is checked before any value is copied, so a refused
// file leaves the module untouched. Errors name the file and the first offending tensor. Stored F16/BF16 values are
// converted to the module's dtype.
LoadReport load_state_dict(torch::nn::Module& module, const std::string& path, const LoadOptions& options = {});

// Writes every parameter and buffer, converted to `dtype` (F32, F16 or BF16), atomically.
void save_state_dict(const torch::nn::Module& module, const std::string& path, DType dtype = DType::F32,
                     const std::map<std::string, std::string>& metadata = {});

}  // namespace ms::io
