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
#include <functional>
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

uint64_t le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Calls fn(name, tensor) for every tensor of a state dict, depth-first through nested dicts (names joined by '.'),
// in the pickle's order. Keys that are not strings and values that are neither tensors nor dicts are skipped.
void for_each_tensor(const PickleValue& dict, const std::string& prefix,
                     const std::function<void(const std::string&, const TorchTensorRef&)>& fn) {
  for (size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const PickleValue& key = *dict.items[i];
    const PickleValue& value = *dict.items[i + 1];
    if (key.kind != PickleValue::Kind::String) continue;
    if (value.kind == PickleValue::Kind::Tensor) fn(prefix + key.text, *value.tensor);
    else if (value.kind == PickleValue::Kind::Dict) for_each_tensor(value, prefix + key.text + ".", fn);
  }
}

// A file cut short loses the zip directory (it sits at the end). torch.save writes the pickle first and the tensor
// data after it, so walking the local headers from the front still tells which tensor the file stops in.
[[noreturn]] void explain_truncation(const std::string& path, const uint8_t* bytes, size_t size,
                                     const std::string& why) {
  struct Entry {
    uint64_t begin, size;
  };
  std::unordered_map<std::string, Entry> complete;
  std::string pickle_entry;
  for (size_t at = 0; at + 30 <= size && le(bytes + at, 4) == 0x04034b50;) {
    const uint64_t flags = le(bytes + at + 6, 2), method = le(bytes + at + 8, 2), name_size = le(bytes + at + 26, 2),
                   extra_size = le(bytes + at + 28, 2);
    uint64_t entry_size = le(bytes + at + 18, 4);
    const uint64_t begin = at + 30 + name_size + extra_size;
    if (begin > size || (flags & 8) || method != 0) break;  // cut inside the header, or sizes not in it
    const std::string name(reinterpret_cast<const char*>(bytes + at + 30), name_size);
    if (entry_size == 0xFFFFFFFFu)  // zip64: the sizes sit in the extra field (uncompressed, then compressed)
      for (size_t x = at + 30 + name_size; x + 4 <= begin; x += 4 + le(bytes + x + 2, 2))
        if (le(bytes + x, 2) == 1 && x + 20 <= begin) entry_size = le(bytes + x + 12, 8);
    if (begin + entry_size > size) break;
    complete[name] = {begin, entry_size};
    if (name.size() > 9 && name.compare(name.size() - 9, 9, "/data.pkl") == 0) pickle_entry = name;
    at = begin + entry_size;
  }
  const std::string head = path + ": the file looks truncated (" + std::to_string(size) + " bytes; " + why + ")";
  if (pickle_entry.empty()) throw SafetensorsError(head + ": it stops before the list of tensors");
  const Entry& p = complete[pickle_entry];
  const PickleRef root = unpickle(std::vector<uint8_t>(bytes + p.begin, bytes + p.begin + p.size),
                                  path + ":" + pickle_entry, /*allow_tensors=*/true);
  const std::string archive = pickle_entry.substr(0, pickle_entry.find('/'));
  int64_t intact = 0, total = 0;
  std::string first_cut;
  if (root->kind == PickleValue::Kind::Dict)
    for_each_tensor(*root, "", [&](const std::string& name, const TorchTensorRef& ref) {
      ++total;
      if (complete.count(archive + "/data/" + ref.storage_key)) ++intact;
      else if (first_cut.empty()) first_cut = name;
    });
  if (first_cut.empty()) throw SafetensorsError(head);
  throw SafetensorsError(head + ": tensor '" + first_cut + "' is cut off or missing (" + std::to_string(intact) +
                         " of " + std::to_string(total) + " tensors complete)");
}

}  // namespace

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

// A state dict saved by torch.save: the pickle tells names, types and views; the values stay in the mapped file.
class TensorFile::TorchZip {
 public:
  explicit TorchZip(const std::string& path) : path_(path), mapping_(path) {
    try {
      zip_ = std::make_unique<ZipArchive>(mapping_.data, mapping_.size, path);
    } catch (const TorchArchiveError& e) {
      explain_truncation(path, mapping_.data, mapping_.size, e.what());
    }
    const std::string pickle = torch_archive_pickle_entry(*zip_, path);
    archive_ = pickle.substr(0, pickle.find('/'));
    const std::string byteorder = archive_ + "/byteorder";
    if (zip_->contains(byteorder)) {
      const auto order = zip_->read(byteorder);
      if (std::string(order.begin(), order.end()) != "little")
        throw SafetensorsError(path + ": big-endian tensor data is not supported");
    }
    const PickleRef root = unpickle(zip_->read(pickle), path + ":" + pickle, /*allow_tensors=*/true);
    if (root->kind != PickleValue::Kind::Dict)
      throw SafetensorsError(path + ": the saved object is a " + root->kind_name() + ", not a state dict");
    for_each_tensor(*root, "", [&](const std::string& name, const TorchTensorRef& ref) {
      if (refs_.count(name)) throw SafetensorsError(path + ": tensor '" + name + "' appears twice");
      TensorInfo info;
      info.name = name;
      info.dtype = dtype_of_storage(ref.element_type, path, name);
      info.shape = ref.size;
      refs_.emplace(name, ref);
      tensors_.push_back(std::move(info));
    });
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
    for (size_t i = 0; i < tensors().size(); ++i) index_.emplace(tensors()[i].name, i);
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
  for (size_t i = 0; i < tensors().size(); ++i) index_.emplace(tensors()[i].name, i);
}

TensorFile::~TensorFile() = default;

const std::vector<TensorInfo>& TensorFile::tensors() const {
  return torch_zip_ ? torch_zip_->tensors() : shard_tensors_;
}

const TensorInfo* TensorFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors()[it->second];
}

at::Tensor TensorFile::read(const TensorInfo& info) const {
  const auto it = index_.find(info.name);
  if (it == index_.end()) throw SafetensorsError(path_ + ": no tensor '" + info.name + "'");
  if (torch_zip_) return torch_zip_->read(info);
  return read_tensor(*shards_[shard_of_[it->second]], shard_tensors_[it->second]);
}

}  // namespace ms::io
