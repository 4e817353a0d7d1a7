#include "motionstream/io/torch_state_dict.h"

#include <cstring>
#include <functional>
#include <optional>
#include <set>

namespace ms::io {

namespace {

std::string single_quoted(const std::string& s) { return "'" + s + "'"; }

// torch's storage classes <-> element types.
const std::pair<const char*, DType> kStorageTypes[] = {
    {"torch.FloatStorage", DType::F32}, {"torch.HalfStorage", DType::F16},  {"torch.BFloat16Storage", DType::BF16},
    {"torch.DoubleStorage", DType::F64}, {"torch.LongStorage", DType::I64}, {"torch.IntStorage", DType::I32},
    {"torch.ShortStorage", DType::I16}, {"torch.CharStorage", DType::I8},   {"torch.ByteStorage", DType::U8},
    {"torch.BoolStorage", DType::BOOL}};

std::optional<DType> storage_dtype(const std::string& storage_class) {
  for (const auto& [name, dtype] : kStorageTypes)
    if (storage_class == name) return dtype;
  return std::nullopt;
}

const char* storage_class(DType dtype) {
  for (const auto& [name, d] : kStorageTypes)
    if (d == dtype) return name;
  throw std::logic_error("no torch storage class for a dtype");
}

// Calls fn(name, tensor) for every tensor of a state dict, depth-first through nested dicts (names joined by '.'),
// in the pickle's order. Keys that are not strings and values that are neither tensors nor dicts are skipped.
void for_each_tensor(const PickleValue& dict, const std::string& prefix,
                     const std::function<void(const std::string&, const PickleValue&)>& fn) {
  for (size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const PickleValue& key = *dict.items[i];
    const PickleValue& value = *dict.items[i + 1];
    if (key.kind != PickleValue::Kind::String) continue;
    if (value.kind == PickleValue::Kind::Tensor) fn(prefix + key.text, value);
    else if (value.kind == PickleValue::Kind::Dict) for_each_tensor(value, prefix + key.text + ".", fn);
  }
}

uint64_t le(const std::vector<uint8_t>& b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | b[at + i];
  return v;
}

// A file cut short loses the zip directory (it sits at the end). torch.save writes the pickle first and the tensor
// data after it, so walking the local headers from the front still tells which tensor the file stops in.
[[noreturn]] void explain_truncation(const std::string& path, const std::vector<uint8_t>& bytes, const std::string& why) {
  struct Entry {
    uint64_t begin, size;
  };
  std::unordered_map<std::string, Entry> complete;
  std::string pickle_entry;
  for (size_t at = 0; at + 30 <= bytes.size() && le(bytes, at, 4) == 0x04034b50;) {
    const uint64_t flags = le(bytes, at + 6, 2), method = le(bytes, at + 8, 2), name_size = le(bytes, at + 26, 2),
                   extra_size = le(bytes, at + 28, 2);
    uint64_t size = le(bytes, at + 18, 4);
    const uint64_t begin = at + 30 + name_size + extra_size;
    if (begin > bytes.size() || (flags & 8) || method != 0) break;  // cut inside the header, or sizes not in it
    const std::string name(bytes.begin() + at + 30, bytes.begin() + at + 30 + name_size);
    if (size == 0xFFFFFFFFu)  // zip64: the sizes sit in the extra field (uncompressed, then compressed)
      for (size_t x = at + 30 + name_size; x + 4 <= begin; x += 4 + le(bytes, x + 2, 2))
        if (le(bytes, x, 2) == 1 && x + 20 <= begin) size = le(bytes, x + 12, 8);
    if (begin + size > bytes.size()) break;
    complete[name] = {begin, size};
    if (name.size() > 9 && name.compare(name.size() - 9, 9, "/data.pkl") == 0) pickle_entry = name;
    at = begin + size;
  }
  const std::string head = path + ": the file looks truncated (" + std::to_string(bytes.size()) + " bytes; " + why + ")";
  if (pickle_entry.empty()) throw TorchArchiveError(head + ": it stops before the list of tensors");
  const Entry& p = complete[pickle_entry];
  const PickleRef root = unpickle(std::vector<uint8_t>(bytes.begin() + p.begin, bytes.begin() + p.begin + p.size),
                                  path + ":" + pickle_entry, /*allow_tensors=*/true);
  const std::string archive = pickle_entry.substr(0, pickle_entry.find('/'));
  int64_t intact = 0, total = 0;
  std::string first_cut;
  if (root->kind == PickleValue::Kind::Dict)
    for_each_tensor(*root, "", [&](const std::string& name, const PickleValue& tensor) {
      ++total;
      if (complete.count(archive + "/data/" + tensor.items[0]->text)) ++intact;
      else if (first_cut.empty()) first_cut = name;
    });
  if (first_cut.empty()) throw TorchArchiveError(head);
  throw TorchArchiveError(head + ": tensor " + single_quoted(first_cut) + " is cut off or missing (" +
                          std::to_string(intact) + " of " + std::to_string(total) + " tensors complete)");
}

}  // namespace

TorchStateDictFile::TorchStateDictFile(const std::string& path) : path_(path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  if (bytes.size() >= 2 && bytes[0] == 0x80 && bytes[1] <= 5)
    throw TorchArchiveError(path + ": legacy (pre-zip) torch.save format is not supported; re-save it with torch >= 1.6");
  try {
    zip_ = std::make_unique<ZipArchive>(std::move(bytes), path);
  } catch (const TorchArchiveError& e) {
    explain_truncation(path, read_file_bytes(path), e.what());  // read again: the failed archive took the bytes
  }
  const std::string pickle_entry = torch_archive_pickle_entry(*zip_, path);
  const std::string archive = pickle_entry.substr(0, pickle_entry.find('/'));
  const std::string byteorder = archive + "/byteorder";
  if (zip_->contains(byteorder)) {
    const auto order = zip_->read(byteorder);
    if (std::string(order.begin(), order.end()) != "little")
      throw TorchArchiveError(path + ": big-endian tensor data is not supported");
  }

  const PickleRef root = unpickle(zip_->read(pickle_entry), path + ":" + pickle_entry, /*allow_tensors=*/true);
  if (root->kind != PickleValue::Kind::Dict)
    throw TorchArchiveError(path + ": holds a " + root->kind_name() + ", not a state dict (a dict of tensors)");
  for_each_tensor(*root, "", [&](const std::string& name, const PickleValue& tensor) { add(name, tensor, archive); });
}

void TorchStateDictFile::add(const std::string& name, const PickleValue& tensor, const std::string& archive) {
  auto bad = [&](const std::string& why) {
    throw TorchArchiveError(path_ + ": tensor " + single_quoted(name) + ": " + why);
  };
  if (index_.count(name)) bad("appears twice");
  const PickleValue& storage = *tensor.items[0];
  const std::string& cls = storage.items[0]->text;
  const auto dtype = storage_dtype(cls);
  if (!dtype) bad("storage type " + cls + " is not supported");

  TensorInfo info;
  info.name = name;
  info.dtype = *dtype;
  Source source;
  source.entry = archive + "/data/" + storage.text;
  source.offset = tensor.integer;
  for (const auto& d : tensor.items[1]->items) info.shape.push_back(d->integer);
  for (const auto& s : tensor.items[2]->items) source.stride.push_back(s->integer);

  // The furthest element the tensor reaches must lie inside its storage, and the storage inside the archive.
  int64_t last = source.offset;
  for (size_t i = 0; i < info.shape.size(); ++i) {
    if (info.shape[i] < 0 || source.stride[i] < 0) bad("negative size or stride");
    if (info.shape[i] == 0) last = -1;
    if (last >= 0) last += (info.shape[i] - 1) * source.stride[i];
  }
  if (source.offset < 0 || last >= storage.integer)
    bad("reaches element " + std::to_string(last) + " of a storage of " + std::to_string(storage.integer));
  if (!zip_->contains(source.entry)) bad("its data entry " + single_quoted(source.entry) + " is missing");
  const uint64_t stored = zip_->entry_size(source.entry);
  const uint64_t expected = static_cast<uint64_t>(storage.integer) * dtype_size(info.dtype);
  if (stored != expected)
    bad("its data entry " + single_quoted(source.entry) + " holds " + std::to_string(stored) +
        " bytes, the storage needs " + std::to_string(expected) + " (truncated or corrupt)");
  info.begin = 0;
  info.end = static_cast<uint64_t>(info.numel()) * dtype_size(info.dtype);

  index_.emplace(name, tensors_.size());
  tensors_.push_back(std::move(info));
  sources_.push_back(std::move(source));
}

const TensorInfo* TorchStateDictFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void TorchStateDictFile::copy_to(const TensorInfo& info, void* dst) const {
  auto it = index_.find(info.name);
  if (it == index_.end()) throw TorchArchiveError(path_ + ": no tensor " + single_quoted(info.name));
  const Source& src = sources_[it->second];
  std::vector<uint8_t> storage;
  try {
    storage = zip_->read(src.entry);
  } catch (const TorchArchiveError& e) {
    throw TorchArchiveError(path_ + ": tensor " + single_quoted(info.name) + ": " + e.what());
  }
  const size_t elem = dtype_size(info.dtype);
  const int64_t n = info.numel();
  auto* out = static_cast<uint8_t*>(dst);

  bool contiguous = true;
  for (int64_t i = static_cast<int64_t>(info.shape.size()) - 1, expected = 1; i >= 0; --i) {
    if (info.shape[i] != 1 && src.stride[i] != expected) contiguous = false;
    expected *= info.shape[i];
  }
  if (contiguous) {
    if (n > 0) std::memcpy(out, storage.data() + src.offset * elem, n * elem);
    return;
  }
  // Any other layout: walk the index like an odometer, last dimension fastest.
  std::vector<int64_t> index(info.shape.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t at = src.offset;
    for (size_t d = 0; d < index.size(); ++d) at += index[d] * src.stride[d];
    std::memcpy(out + k * elem, storage.data() + at * elem, elem);
    for (size_t d = index.size(); d-- > 0;) {
      if (++index[d] < info.shape[d]) break;
      index[d] = 0;
    }
  }
}

// ---------------------------------------------------------------- writing

namespace {

// Just enough of pickle protocol 2 for a state dict.
class PickleWriter {
 public:
  PickleWriter() { out_ += "\x80\x02"; }
  void global(const std::string& module, const std::string& name) { out_ += "c" + module + "\n" + name + "\n"; }
  void text(const std::string& s) {  // BINUNICODE
    out_ += 'X';
    put_u32(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      out_ += 'K';
      out_ += static_cast<char>(v);
    } else if (v >= 0 && v < 65536) {
      out_ += 'M';
      out_ += static_cast<char>(v & 0xFF);
      out_ += static_cast<char>(v >> 8);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out_ += 'J';
      put_u32(static_cast<uint32_t>(v));
    } else {
      out_ += "\x8a\x08";  // LONG1, 8 bytes
      for (int i = 0; i < 8; ++i) out_ += static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF);
    }
  }
  void int_tuple(const std::vector<int64_t>& values) {
    mark();
    for (int64_t v : values) integer(v);
    op('t');
  }
  void empty_ordered_dict() {
    global("collections", "OrderedDict");
    op(')');
    op('R');
  }
  void mark() { op('('); }
  void op(char c) { out_ += c; }
  std::string finish() { return out_ + "."; }

 private:
  void put_u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_ += static_cast<char>((v >> (8 * i)) & 0xFF);
  }
  std::string out_;
};

}  // namespace

void write_torch_state_dict(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  std::set<std::string> names;
  std::vector<std::pair<std::string, std::string>> entries{{"archive/data.pkl", ""}, {"archive/byteorder", "little"}};
  PickleWriter p;
  p.op('}');  // a plain dict (ordered in Python): libtorch's own reader turns OrderedDict() into None
  p.mark();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorToWrite& t = tensors[i];
    if (t.name.empty()) throw TorchArchiveError(path + ": empty tensor name");
    if (!names.insert(t.name).second) throw TorchArchiveError(path + ": duplicate tensor name " + single_quoted(t.name));
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    std::vector<int64_t> stride(t.shape.size(), 1);
    for (size_t d = t.shape.size(); d-- > 1;) stride[d - 1] = stride[d] * t.shape[d];
    const std::string key = std::to_string(i);
    entries.push_back({"archive/data/" + key,
                       std::string(static_cast<const char*>(t.data), static_cast<size_t>(numel) * dtype_size(t.dtype))});

    p.text(t.name);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.mark();  // arguments
    p.mark();  // persistent id ('storage', class, key, location, count)
    p.text("storage");
    const std::string cls = storage_class(t.dtype);
    p.global("torch", cls.substr(6));
    p.text(key);
    p.text("cpu");
    p.integer(numel);
    p.op('t');
    p.op('Q');
    p.integer(0);  // storage offset
    p.int_tuple(t.shape);
    p.int_tuple(stride);
    p.op('\x89');  // requires_grad False
    p.empty_ordered_dict();  // backward hooks
    p.op('t');
    p.op('R');
  }
  p.op('u');
  entries[0].second = p.finish();
  entries.push_back({"archive/version", "3\n"});
  write_file_atomically(path, make_stored_zip(entries));
}

}  // namespace ms::io
