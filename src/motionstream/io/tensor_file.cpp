#include "motionstream/io/tensor_file.h"

#include <cstring>
#include <fstream>

namespace ms::io {

namespace {
// A zip archive starts with a local file header, "PK\3\4"; a safetensors file with its header length.
bool starts_like_zip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "PK\x03\x04", 4) == 0;
}
}  // namespace

TensorFile::TensorFile(const std::string& path) : path_(path) {
  if (starts_like_zip(path)) torch_ = std::make_unique<TorchStateDictFile>(path);
  else safetensors_ = std::make_unique<SafetensorsFile>(path);
}

const std::vector<TensorInfo>& TensorFile::tensors() const {
  return torch_ ? torch_->tensors() : safetensors_->tensors();
}

const TensorInfo* TensorFile::find(const std::string& name) const {
  return torch_ ? torch_->find(name) : safetensors_->find(name);
}

void TensorFile::copy_to(const TensorInfo& info, void* dst) const {
  if (torch_) return torch_->copy_to(info, dst);
  if (info.nbytes() > 0) std::memcpy(dst, safetensors_->data(info), info.nbytes());  // the mapping may be unaligned
}

}  // namespace ms::io
