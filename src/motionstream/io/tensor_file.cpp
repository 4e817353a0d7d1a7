#include "motionstream/io/tensor_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "motionstream/io/state_dict.h"
#include "motionstream/io/torch_archive.h"

namespace ms::io {

namespace {

bool starts_like_zip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The shard files an index names, in the order they first appear, as paths beside the index.
std::vector<std::string> shards_of_index(const std::string& index_path) {
  std::ifstream in(index_path);
  if (!in) throw SafetensorsError(index_path + ": cannot open");
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw SafetensorsError(index_path + ": not valid JSON: " + e.what());
  }
  if (!index.contains("weight_map") || !index["weight_map"].is_object())
    throw SafetensorsError(index_path + ": no \"weight_map\" object (not a safetensors index)");
  const std::filesystem::path folder = std::filesystem::path(index_path).parent_path();
  std::vector<std::string> shards;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) throw SafetensorsError(index_path + ": the shard of '" + tensor + "' is not a file name");
    const std::string path = (folder / shard.get<std::string>()).string();
    if (std::find(shards.begin(), shards.end(), path) == shards.end()) shards.push_back(path);
  }
  return shards;
}

// torch.<type>Storage -> the dtype its elements have.
DType dtype_of_storage(const std::string& element_type, const std::string& path, const std::string& tensor) {
  static const std::unordered_map<std::string, DType> types = {
      {"Float", DType::F32}, {"Half", DType::F16}, {"BFloat16", DType::BF16}, {"Double", DType::F64},
      {"Long", DType::I64},  {"Int", DType::I32},  {"Short", DType::I16},     {"Char", DType::I8},
      {"Byte", DType::U8},   {"Bool", DType::BOOL}};
  const auto it = types.find(element_type);
  if (it == types.end())
    throw SafetensorsError(path + ": tensor '" + tensor + "' has elements of type torch." + element_type +
                           "Storage, which cannot be read");
  return it->second;
}

at::ScalarType scalar_type(DType d) {
  switch (d) {
    case DType::F64: return at::kDouble;
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
    case DType::I16: return at::kShort;
    case DType::I8: return at::kChar;
    case DType::U8: return at::kByte;
    case DType::BOOL: return at::kBool;
  }
  return at::kFloat;
}

}  // namespace

// A state dict saved by torch.save: the pickle tells names, types and views; the values stay in the mapped file.
class TensorFile::TorchZip {
 public:
  explicit TorchZip(const std::string& path) : path_(path), mapping_(path) {
    zip_ = std::make_unique<ZipArchive>(mapping_.data, mapping_.size, path);
    const std::string pickle = torch_archive_pickle_entry(*zip_, path);
    archive_ = pickle.substr(0, pickle.find('/'));
    const PickleRef root = unpickle(zip_->read(pickle), path + ":" + pickle, /*allow_tensors=*/true);
    if (root->kind != PickleValue::Kind::Dict)
      throw SafetensorsError(path + ": the saved object is a " + root->kind_name() + ", not a state dict");
    for (size_t i = 0; i + 1 < root->items.size(); i += 2) {
      const PickleRef& key = root->items[i];
      const PickleRef& value = root->items[i + 1];
      if (key->kind != PickleValue::Kind::String || value->kind != PickleValue::Kind::Tensor)
        throw SafetensorsError(path + ": entry " + std::to_string(i / 2) + " of the saved dict is not name -> tensor (" +
                               key->kind_name() + " -> " + value->kind_name() + ")");
      TensorInfo info;
      info.name = key->text;
      info.dtype = dtype_of_storage(value->tensor->element_type, path, info.name);
      info.shape = value->tensor->size;
      refs_.emplace(info.name, *value->tensor);
      tensors_.push_back(std::move(info));
    }
    for (const auto& info : tensors_) {
      int64_t span = 0;
      view_start(info, &span);
    }
  }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }

  at::Tensor read(const TensorInfo& info) const {
    const TorchTensorRef& ref = refs_.at(info.name);
    const at::ScalarType type = scalar_type(info.dtype);
    int64_t span = 0;
    const uint8_t* first = view_start(info, &span);
    if (span == 0) return at::empty(ref.size, at::TensorOptions().dtype(type));
    // Copied out of the mapping (whose entries need not be aligned for the element type).
    at::Tensor flat = at::empty({span}, at::TensorOptions().dtype(type));
    std::memcpy(flat.data_ptr(), first, static_cast<size_t>(span) * dtype_size(info.dtype));
    const at::Tensor view = flat.as_strided(ref.size, ref.stride);
    return view.is_contiguous() ? view : view.clone(at::MemoryFormat::Contiguous);  // one copy for the usual case
  }

 private:
  // Where a tensor's first element lies in the mapping; *span: how many elements its view covers (0 when empty).
  // Throws when its storage is absent or too short for the view, so that the constructor can check every tensor
  // before anything is read, and loading stays all-or-nothing.
  const uint8_t* view_start(const TensorInfo& info, int64_t* span) const {
    const TorchTensorRef& ref = refs_.at(info.name);
    const std::string entry = archive_ + "/data/" + ref.storage_key;
    const std::string what = path_ + ": tensor '" + info.name + "'";
    if (!zip_->contains(entry)) throw SafetensorsError(what + ": its storage '" + entry + "' is not in the archive");
    uint64_t bytes = 0;
    const uint8_t* storage = zip_->locate(entry, /*check_crc=*/false, &bytes);
    int64_t last = ref.offset;  // the furthest element the view reaches
    *span = 0;
    for (size_t d = 0; d < ref.size.size(); ++d) {
      if (ref.size[d] == 0) return storage;
      last += (ref.size[d] - 1) * ref.stride[d];
    }
    const auto element = static_cast<int64_t>(dtype_size(info.dtype));
    if (ref.offset < 0 || static_cast<uint64_t>((last + 1) * element) > bytes)
      throw SafetensorsError(what + ": its view reaches element " + std::to_string(last) + " of storage '" + entry +
                             "', which holds " + std::to_string(bytes) + " bytes (truncated?)");
    *span = last - ref.offset + 1;
    return storage + ref.offset * element;
  }

  // The whole file, mapped read-only for as long as the archive is open.
  struct Mapping {
    explicit Mapping(const std::string& path) {
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw SafetensorsError(path + ": cannot open: " + std::strerror(errno));
      struct stat st {};
      if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
        ::close(fd);
        throw SafetensorsError(path + ": cannot stat, or empty");
      }
      void* addr = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      ::close(fd);
      if (addr == MAP_FAILED) throw SafetensorsError(path + ": cannot mmap: " + std::strerror(errno));
      data = static_cast<const uint8_t*>(addr);
      size = static_cast<size_t>(st.st_size);
    }
    ~Mapping() { ::munmap(const_cast<uint8_t*>(data), size); }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    const uint8_t* data = nullptr;
    size_t size = 0;
  };

  std::string path_;
  Mapping mapping_;
  std::string archive_;
  std::unique_ptr<ZipArchive> zip_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, TorchTensorRef> refs_;
};

TensorFile::TensorFile(const std::string& path) : path_(path) {
  if (starts_like_zip(path)) {
    try {
      torch_zip_ = std::make_unique<TorchZip>(path);
    } catch (const TorchArchiveError& e) {
      throw SafetensorsError(e.what());  // already names the file; one error type for every checkpoint format
    }
    return;
  }
  std::vector<std::string> shard_paths{path};
  if (ends_with(path, ".index.json")) shard_paths = shards_of_index(path);
  for (const auto& shard : shard_paths) {
    shards_.push_back(std::make_unique<SafetensorsFile>(shard));
    for (const auto& t : shards_.back()->tensors()) {
      shard_tensors_.push_back(t);
      shard_of_.push_back(shards_.size() - 1);
    }
  }
}

TensorFile::~TensorFile() = default;

const std::vector<TensorInfo>& TensorFile::tensors() const {
  return torch_zip_ ? torch_zip_->tensors() : shard_tensors_;
}

at::Tensor TensorFile::read(const TensorInfo& info) const {
  if (torch_zip_) return torch_zip_->read(info);
  for (size_t i = 0; i < shard_tensors_.size(); ++i)
    if (shard_tensors_[i].name == info.name) return read_tensor(*shards_[shard_of_[i]], shard_tensors_[i]);
  throw SafetensorsError(path_ + ": no tensor '" + info.name + "'");
}

}  // namespace ms::io
