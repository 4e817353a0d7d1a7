#include "motionstream/io/converted_state_dict.h"

#include <map>
#include <set>
#include <sstream>

#include "motionstream/io/checkpoint_layout.h"
#include "motionstream/io/tensor_file.h"

namespace ms::io {

namespace {

std::string shape_str(at::IntArrayRef shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

size_t converted_count(const NameTable& table, const std::vector<TensorInfo>& tensors) {
  size_t n = 0;
  for (const auto& t : tensors) {
    const auto ours = table.to_ours(t.name);
    n += ours && !ours->empty();  // tensors the model loads: skipped ones say little about the layout
  }
  return n;
}

bool is_float(DType d) { return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16; }

}  // namespace

const NameTable& pick_name_table(const TensorFile& file, const std::vector<const NameTable*>& layouts) {
  const auto& stored = file.tensors();
  const NameTable* table = nullptr;
  size_t best = 0;
  for (const NameTable* t : layouts)
    if (const size_t n = converted_count(*t, stored); n > best) best = n, table = t;
  if (table) return *table;
  std::string tried;
  for (const NameTable* t : layouts) tried += (tried.empty() ? "" : ", ") + t->layout();
  throw SafetensorsError(file.path() + ": not a checkpoint of any known layout (" + tried + "): no tensor name matches" +
                         (stored.empty() ? std::string(" (the file holds no tensors)")
                                         : ", e.g. '" + stored.front().name + "'; the file looks like '" +
                                               recognise_layout(stored).kind + "'"));
}

std::map<std::string, at::Tensor> module_tensors(torch::nn::Module& module) {
  std::map<std::string, at::Tensor> targets;
  for (const auto& p : module.named_parameters()) targets[p.key()] = p.value();
  for (const auto& b : module.named_buffers()) targets[b.key()] = b.value();
  return targets;
}

ConvertedLoadReport load_converted_tensors(const TensorFile& file, const std::map<std::string, at::Tensor>& targets,
                                           const NameTable& table) {
  const std::string& path = file.path();
  ConvertedLoadReport report;
  report.layout = table.layout();
  std::vector<std::pair<const TensorInfo*, at::Tensor>> plan;
  std::set<std::string> filled;
  for (const auto& info : file.tensors()) {
    const auto ours = table.to_ours(info.name);
    if (ours && ours->empty()) {  // stored by that layout, unused by the model
      report.ignored.push_back(info.name);
      continue;
    }
    const auto it = ours ? targets.find(*ours) : targets.end();
    if (it == targets.end())
      throw SafetensorsError(path + ": tensor '" + info.name + "' is not part of the model (layout " + table.layout() +
                             (ours ? ", converted to '" + *ours + "'" : std::string(", no name rule matches")) + ")");
    const at::Tensor& target = it->second;
    if (target.sizes() != at::IntArrayRef(info.shape))
      throw SafetensorsError(path + ": tensor '" + info.name + "' has shape " + shape_str(info.shape) +
                             " but the model expects " + shape_str(target.sizes()) + " for '" + *ours + "'");
    if (!is_float(info.dtype) && at::isFloatingType(target.scalar_type()))
      throw SafetensorsError(path + ": tensor '" + info.name + "' is " + dtype_name(info.dtype) +
                             ", which cannot fill a floating-point tensor");
    if (!filled.insert(*ours).second) continue;  // a second copy of a tied tensor
    plan.emplace_back(&info, target);
    report.names.loaded.push_back(*ours);
  }
  for (const auto& [name, tensor] : targets)
    if (!filled.count(name)) report.names.missing.push_back(name);
  if (!report.names.missing.empty())
    throw SafetensorsError(path + ": tensor '" + table.to_stored(report.names.missing.front()).value_or(report.names.missing.front()) +
                           "' is missing (the model's '" + report.names.missing.front() + "'; layout " +
                           table.layout() + ", " + std::to_string(report.names.missing.size()) +
                           " model tensors absent from the file)");

  at::NoGradGuard no_grad;
  for (auto& [info, target] : plan) target.copy_(file.read(*info));
  return report;
}

ConvertedLoadReport load_converted_state_dict(torch::nn::Module& module, const std::string& path,
                                              const std::vector<const NameTable*>& layouts) {
  TensorFile file(path);
  return load_converted_tensors(file, module_tensors(module), pick_name_table(file, layouts));
}

}  // namespace ms::io
