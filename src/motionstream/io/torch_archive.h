// Reading what torch.save writes, without Python, for archives that hold plain Python objects (no tensors): the
// track files of ATI are torch.save(<bytes of an .npz>).
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

  const std::vector<std::string>& names() const { return names_; }  // in central-directory order
  bool contains(const std::string& entry) const { return index_.count(entry) != 0; }
  uint64_t entry_size(const std::string& entry) const;  // uncompressed bytes; throws for an absent entry
  std::vector<uint8_t> read(const std::string& entry) const;  // CRC-32 checked

 private:
  struct Entry {
    std::string name;
    uint16_t flags = 0, method = 0;
    uint32_t crc32 = 0;
    uint64_t compressed_size = 0, size = 0, local_header_offset = 0;
  };

  uint64_t find_central_directory(uint64_t* entry_count) const;
  size_t parse_central_entry(size_t at);
  [[noreturn]] void fail(const std::string& message) const;

  std::vector<uint8_t> bytes_;
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

struct PickleValue {
  // Storage and Tensor only appear when unpickling with tensors allowed (a torch.save'd state dict):
  //   Storage: text = the storage's key (its entry "<archive>/data/<key>"), integer = element count,
  //            items = {the storage type, a Global such as torch.FloatStorage};
  //   Tensor:  integer = storage offset (elements), items = {Storage, size Tuple, stride Tuple}.
  enum class Kind { None, Bool, Int, Float, String, Bytes, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0.0;
  std::string text;              // String: UTF-8; Bytes: the raw bytes; Global: "module.name"
  std::vector<PickleRef> items;  // Tuple, List; Dict: key0, value0, key1, value1, ...

  const char* kind_name() const;  // Python's name of the type: "NoneType", "bytes", "tuple", ...
};

// Runs a pickle (protocols 0-5 framing; the opcodes of plain containers, strings, bytes, small ints, floats and the
// memo). The only callables REDUCE may apply are _codecs.encode(str, 'latin1') and bytes(), which is how protocol 2
// spells a bytes object. Anything else (persistent ids, objects, other globals) throws TorchArchiveError naming
// name_for_errors, the opcode and its byte offset.
// With `allow_tensors`, what torch.save writes for a state dict is understood too: persistent ids of storages,
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter, collections.OrderedDict() and BUILD on a dict (its
// attributes, such as _metadata, are dropped).
PickleRef unpickle(const std::vector<uint8_t>& bytes, const std::string& name_for_errors, bool allow_tensors = false);

// The object a torch.save archive holds (its "<archive>/data.pkl").
PickleRef load_torch_archive(const std::string& path);
// The name of the archive's pickle entry ("<archive>/data.pkl"); throws TorchArchiveError naming `path` when the
// zip is not a torch.save archive.
std::string torch_archive_pickle_entry(const ZipArchive& zip, const std::string& path);
// The same, for an archive whose object must be a bytes object.
std::vector<uint8_t> load_torch_saved_bytes(const std::string& path);

}  // namespace ms::io
