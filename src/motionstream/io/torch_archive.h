// Reading what torch.save writes, without Python: archives that hold plain Python objects (the track files of ATI
// are torch.save(<bytes of an .npz>)), and the description of the tensors of a saved state dict (tensor_file.h
// reads their values).
//
// torch.save writes a zip archive: "<archive>/data.pkl" (the pickled object), "<archive>/version", optionally
// "<archive>/byteorder", ".data/serialization_id" and "<archive>/data/N" (tensor storages, referenced from the pickle
// by persistent ids). Entries are stored uncompressed, their data padded to 64-byte boundaries through the local
// header's extra field. Pickles use protocol 2 by default, so a bytes object arrives as
// _codecs.encode(<str of code points 0-255>, 'latin1').
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace ms::io {

// what() names the file (or "file:entry") and the entry, field or opcode involved.
struct TorchArchiveError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// File helpers shared by the readers and writers of track files.
// The whole file; throws std::runtime_error naming the path when it cannot be opened or read.
std::vector<uint8_t> read_file_bytes(const std::string& path);
// Writes a temp file in the same folder, then renames it over `path`, so that readers never see half a file.
// Throws std::runtime_error naming the path.
void write_file_atomically(const std::string& path, const std::string& bytes);

// A zip archive held in memory (zip64 records understood). Only stored (uncompressed) entries can be read: that is
// what torch.save and numpy.savez write; a deflated entry is refused by name.
class ZipArchive {
 public:
  ZipArchive(std::vector<uint8_t> bytes, std::string name_for_errors);
  // Over bytes held elsewhere (a memory-mapped file), which must outlive the archive.
  ZipArchive(const uint8_t* data, size_t size, std::string name_for_errors);
  ZipArchive(const ZipArchive&) = delete;  // data_ may point into owned_
  ZipArchive& operator=(const ZipArchive&) = delete;
  ZipArchive(ZipArchive&&) = default;      // a moved vector keeps its buffer
  ZipArchive& operator=(ZipArchive&&) = default;

  const std::vector<std::string>& names() const { return names_; }  // in central-directory order
  bool contains(const std::string& entry) const { return index_.count(entry) != 0; }
  std::vector<uint8_t> read(const std::string& entry) const;  // CRC-32 checked
  // Where an entry's data lies inside the archive's bytes, without copying; *size receives its length.
  const uint8_t* locate(const std::string& entry, bool check_crc, uint64_t* size) const;

 private:
  struct Entry {
    std::string name;
    uint16_t flags = 0, method = 0;
    uint32_t crc32 = 0;
    uint64_t compressed_size = 0, size = 0, local_header_offset = 0;
  };

  void index_entries();
  uint64_t find_central_directory(uint64_t* entry_count) const;
  size_t parse_central_entry(size_t at);
  [[noreturn]] void fail(const std::string& message) const;

  std::vector<uint8_t> owned_;  // empty when the bytes are held elsewhere
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  std::vector<Entry> entries_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, size_t> index_;
};

// A zip archive of stored (uncompressed) entries, in the given order, each entry's data aligned to 64 bytes through
// its local header's extra field, as torch.save lays them out. No zip64: throws TorchArchiveError past 4 GiB.
std::string make_stored_zip(const std::vector<std::pair<std::string, std::string>>& entries);

// A value built by the pickle machine below. Lists, dicts and tuples share their items, so that a memoised list
// that is appended to later is seen changed everywhere, as in Python.
struct PickleValue;
using PickleRef = std::shared_ptr<PickleValue>;

// A tensor in a torch.save archive as its pickle describes it (see unpickle's allow_tensors): the storage that holds
// its elements ("<archive>/data/<storage_key>"), their type, and the view onto them, counted in elements.
struct TorchTensorRef {
  std::string storage_key;
  std::string element_type;  // from the storage class torch.<type>Storage: "Float", "Half", "BFloat16", "Long", ...
  int64_t storage_numel = 0;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;  // empty for a storage
};

struct PickleValue {
  enum class Kind { None, Bool, Int, Float, String, Bytes, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0.0;
  std::string text;              // String: UTF-8; Bytes: the raw bytes; Global: "module.name"
  std::vector<PickleRef> items;  // Tuple, List; Dict: key0, value0, key1, value1, ...
  std::shared_ptr<TorchTensorRef> tensor;  // Storage, Tensor

  const char* kind_name() const;  // Python's name of the type: "NoneType", "bytes", "tuple", ...
};

// Runs a pickle (protocols 0-5 framing; the opcodes of plain containers, strings, bytes, ints, floats and the
// memo). The only callables REDUCE may apply are _codecs.encode(str, 'latin1') and bytes(), which is how protocol 2
// spells a bytes object. Anything else (persistent ids, objects, other globals) throws TorchArchiveError naming
// name_for_errors, the opcode and its byte offset.
// With allow_tensors, also what a saved state dict holds: persistent storage ids ('storage', torch.<type>Storage,
// key, location, numel) become Storage values, torch._utils._rebuild_tensor_v2 / _rebuild_parameter become Tensor
// values (no data is read: see TorchTensorRef), collections.OrderedDict() a Dict, libtorch's restore_type_tag(obj,
// type) obj, and BUILD (which attaches the state dict's _metadata) is accepted and its state dropped.
PickleRef unpickle(const std::vector<uint8_t>& bytes, const std::string& name_for_errors, bool allow_tensors = false);

// The name of the archive's pickle, "<archive>/data.pkl"; its storages are "<archive>/data/<key>". Throws
// TorchArchiveError naming `path` when there is none or more than one.
std::string torch_archive_pickle_entry(const ZipArchive& zip, const std::string& path);

// The object a torch.save archive holds (its "<archive>/data.pkl").
PickleRef load_torch_archive(const std::string& path);
// The same, for an archive whose object must be a bytes object.
std::vector<uint8_t> load_torch_saved_bytes(const std::string& path);

}  // namespace ms::io
