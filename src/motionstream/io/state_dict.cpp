#include "motionstream/io/state_dict.h"

#include <cstring>
#include <set>
#include <sstream>

#include "motionstream/io/tensor_file.h"

namespace ms::io {

namespace {

bool is_float(DType d) { return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16; }

std::string shape_str(at::IntArrayRef shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

std::map<std::string, at::Tensor> module_tensors(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : module.named_parameters()) out[p.key()] = p.value();
  for (const auto& b : module.named_buffers()) out[b.key()] = b.value();
  return out;
}

}  // namespace

at::Tensor read_tensor(const SafetensorsFile& file, const TensorInfo& info) {
  auto t = at::empty(info.shape, at::TensorOptions().dtype(scalar_type(info.dtype)));
  if (info.nbytes() > 0) std::memcpy(t.data_ptr(), file.data(info), info.nbytes());  // the mapping may be unaligned
  return t;
}

LoadReport load_state_dict(torch::nn::Module& module, const std::string& path, const LoadOptions& options) {
  TensorFile file(path);
  auto targets = module_tensors(module);
  LoadReport report;
  std::vector<std::pair<const TensorInfo*, at::Tensor>> plan;

  for (const auto& info : file.tensors()) {
    if (info.name.rfind(options.prefix, 0) != 0) {
      report.unexpected.push_back(info.name);
      continue;
    }
    const std::string name = info.name.substr(options.prefix.size());
    auto it = targets.find(name);
    if (it == targets.end()) {
      report.unexpected.push_back(info.name);
      continue;
    }
    const at::Tensor& target = it->second;
    if (target.sizes() != at::IntArrayRef(info.shape))
      throw SafetensorsError(path + ": tensor '" + info.name + "' has shape " + shape_str(info.shape) +
                             " but the model expects " + shape_str(target.sizes()));
    if (is_float(info.dtype) != at::isFloatingType(target.scalar_type()))
      throw SafetensorsError(path + ": tensor '" + info.name + "' is " + dtype_name(info.dtype) +
                             ", which cannot fill a tensor of type " + std::string(c10::toString(target.scalar_type())));
    plan.emplace_back(&info, target);
    report.loaded.push_back(name);
  }
  std::set<std::string> loaded(report.loaded.begin(), report.loaded.end());
  for (const auto& [name, tensor] : targets)
    if (!loaded.count(name)) report.missing.push_back(name);

  if (!report.missing.empty() && !options.allow_missing)
    throw SafetensorsError(path + ": tensor '" + options.prefix + report.missing.front() + "' is missing (" +
                           std::to_string(report.missing.size()) + " model tensors absent from the file)");
  if (!report.unexpected.empty() && !options.allow_unexpected)
    throw SafetensorsError(path + ": tensor '" + report.unexpected.front() + "' is not part of the model (" +
                           std::to_string(report.unexpected.size()) + " unexpected tensors)");

  // TensorFile checked every tensor's extent when it opened the file, so no read below fails: the module is left
  // untouched (a refusal above) or fully loaded.
  at::NoGradGuard no_grad;
  for (auto& [info, target] : plan) target.copy_(file.read(*info));
  return report;
}

void save_state_dict(const torch::nn::Module& module, const std::string& path, DType dtype,
                     const std::map<std::string, std::string>& metadata) {
  if (!is_float(dtype) || dtype == DType::F64)
    throw SafetensorsError(path + ": weights are saved as F32, F16 or BF16, not " + std::string(dtype_name(dtype)));
  std::vector<at::Tensor> keep;  // owns the converted copies until the file is written
  std::vector<TensorToWrite> entries;
  for (const auto& [name, tensor] : module_tensors(module)) {
    const bool floating = at::isFloatingType(tensor.scalar_type());
    keep.push_back(tensor.detach().to(at::kCPU, floating ? scalar_type(dtype) : tensor.scalar_type()).contiguous());
    DType stored = dtype;
    if (!floating) {
      if (tensor.scalar_type() != at::kLong)
        throw SafetensorsError(path + ": tensor '" + name + "' has an unsupported type for saving");
      stored = DType::I64;
    }
    entries.push_back({name, stored, keep.back().sizes().vec(), keep.back().data_ptr()});
  }
  write_safetensors(path, entries, metadata);
}

}  // namespace ms::io
