#include "motionstream/io/npy.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>

#include "motionstream/io/torch_archive.h"

// Array bytes are copied straight between files and memory, and .npy data is kept little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy I/O assumes a little-endian host");

namespace ms::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
constexpr size_t kAlignment = 64;  // NumPy pads the header so that the data starts on this boundary

struct DtypeEntry {
  const char* name;
  size_t size;
  at::ScalarType scalar;
};

const DtypeEntry kDtypes[] = {
    {"<f4", 4, at::kFloat}, {"<f8", 8, at::kDouble}, {"<f2", 2, at::kHalf},
    {"|b1", 1, at::kBool},  {"|u1", 1, at::kByte},   {"|i1", 1, at::kChar},
    {"<i2", 2, at::kShort}, {"<i4", 4, at::kInt},    {"<i8", 8, at::kLong},
};

const DtypeEntry* find_dtype(const std::string& name) {
  for (const auto& e : kDtypes)
    if (name == e.name) return &e;
  return nullptr;
}

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// numel, or nullopt-like -1 when a dimension is negative or the product overflows.
int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

// ---- the header: a Python dict literal with str keys and str / bool / tuple-of-int values ----

struct HeaderValue {
  enum class Kind { String, Bool, Tuple, Other } kind = Kind::Other;
  std::string text;
  bool flag = false;
  std::vector<int64_t> ints;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& name) : s_(text), name_(name) {}

  std::map<std::string, HeaderValue> parse_dict() {
    std::map<std::string, HeaderValue> dict;
    expect('{');
    while (!consume('}')) {
      const std::string key = parse_string();
      expect(':');
      dict[key] = parse_value(key);
      if (!consume(',')) {
        expect('}');
        break;
      }
    }
    return dict;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    throw NpyError(name_ + ": header: " + message + " in " + s_);
  }
  void skip_space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool consume(char c) {
    skip_space();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  void expect(char c) {
    if (!consume(c)) fail(std::string("expected '") + c + "' at character " + std::to_string(i_));
  }
  bool consume_word(const char* word) {
    skip_space();
    const size_t n = std::strlen(word);
    if (s_.compare(i_, n, word) != 0) return false;
    i_ += n;
    return true;
  }
  std::string parse_string() {
    skip_space();
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"'))
      fail("expected a quoted string at character " + std::to_string(i_));
    const char quote = s_[i_++];
    const size_t end = s_.find(quote, i_);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return out;
  }
  int64_t parse_int() {
    skip_space();
    const size_t start = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    if (i_ == start || i_ - start > 18) fail("expected a dimension at character " + std::to_string(start));
    const int64_t value = std::stoll(s_.substr(start, i_ - start));
    if (i_ < s_.size() && (s_[i_] == 'L' || s_[i_] == 'l')) ++i_;  // Python 2 wrote long literals as 3L
    return value;
  }
  HeaderValue parse_value(const std::string& key) {
    HeaderValue v;
    skip_space();
    if (i_ < s_.size() && (s_[i_] == '\'' || s_[i_] == '"')) {
      v.kind = HeaderValue::Kind::String;
      v.text = parse_string();
    } else if (consume_word("True")) {
      v.kind = HeaderValue::Kind::Bool;
      v.flag = true;
    } else if (consume_word("False")) {
      v.kind = HeaderValue::Kind::Bool;
    } else if (consume('(')) {
      v.kind = HeaderValue::Kind::Tuple;
      while (!consume(')')) {
        v.ints.push_back(parse_int());
        if (!consume(',')) {
          expect(')');
          break;
        }
      }
    } else if (key == "descr" && consume('[')) {
      fail("structured (record) dtypes are not supported");
    } else {
      fail("unsupported value for " + in_quotes(key));
    }
    return v;
  }

  const std::string& s_;
  const std::string& name_;
  size_t i_ = 0;
};

// '<f4' / '>f4' / '=f4' / '|u1' -> the little-endian spelling of kDtypes; *swap says whether bytes need reversing.
std::string normalise_dtype(const std::string& descr, bool* swap, const std::string& name) {
  if (descr.size() < 2) throw NpyError(name + ": descr " + in_quotes(descr) + " is not a NumPy dtype");
  char order = descr[0];
  std::string code = descr.substr(1);
  if (order != '<' && order != '>' && order != '=' && order != '|') order = '=', code = descr;
  const std::string little = "<" + code, single = "|" + code;
  const DtypeEntry* e = find_dtype(little) ? find_dtype(little) : find_dtype(single);
  if (!e) {
    std::string supported;
    for (const auto& d : kDtypes) supported += std::string(supported.empty() ? "" : ", ") + d.name;
    throw NpyError(name + ": dtype " + in_quotes(descr) + " is not supported (supported: " + supported + ")");
  }
  *swap = order == '>' && e->size > 1;
  return e->name;
}

void swap_items(std::vector<uint8_t>& data, size_t item_size) {
  for (size_t i = 0; i + item_size <= data.size(); i += item_size) std::reverse(&data[i], &data[i] + item_size);
}

uint32_t read_header_length(const uint8_t* bytes, size_t size, size_t* prefix, const std::string& name) {
  if (size < kMagicSize + 2 || std::memcmp(bytes, kMagic, kMagicSize) != 0)
    throw NpyError(name + ": not an .npy file (missing the \\x93NUMPY magic)");
  const int major = bytes[6], minor = bytes[7];
  if ((major < 1 || major > 3) || minor != 0)
    throw NpyError(name + ": .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                   " is not supported (1.0, 2.0, 3.0)");
  *prefix = major == 1 ? kMagicSize + 4 : kMagicSize + 6;
  if (size < *prefix) throw NpyError(name + ": truncated before the header length");
  return major == 1 ? static_cast<uint32_t>(bytes[8] | (bytes[9] << 8))
                    : static_cast<uint32_t>(bytes[8] | (bytes[9] << 8) | (bytes[10] << 16)) |
                          (static_cast<uint32_t>(bytes[11]) << 24);
}

const HeaderValue& require(const std::map<std::string, HeaderValue>& dict, const std::string& key,
                           HeaderValue::Kind kind, const std::string& name) {
  const auto it = dict.find(key);
  if (it == dict.end()) throw NpyError(name + ": header has no " + in_quotes(key));
  if (it->second.kind != kind) throw NpyError(name + ": header field " + in_quotes(key) + " has the wrong type");
  return it->second;
}

}  // namespace

int64_t NpyArray::numel() const { return checked_numel(shape); }

size_t NpyArray::item_size() const {
  const DtypeEntry* e = find_dtype(dtype);
  if (!e) throw NpyError("npy: unsupported dtype " + in_quotes(dtype));
  return e->size;
}

const std::vector<std::string>& npy_supported_dtypes() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& e : kDtypes) out.push_back(e.name);
    return out;
  }();
  return names;
}

NpyArray read_npy_bytes(const uint8_t* bytes, size_t size, const std::string& name) {
  size_t prefix = 0;
  const uint32_t header_length = read_header_length(bytes, size, &prefix, name);
  if (header_length > size - prefix)
    throw NpyError(name + ": truncated inside the " + std::to_string(header_length) + "-byte header");
  const std::string header(reinterpret_cast<const char*>(bytes + prefix), header_length);
  const auto dict = HeaderParser(header, name).parse_dict();

  NpyArray array;
  bool swap = false;
  array.dtype = normalise_dtype(require(dict, "descr", HeaderValue::Kind::String, name).text, &swap, name);
  array.shape = require(dict, "shape", HeaderValue::Kind::Tuple, name).ints;
  if (require(dict, "fortran_order", HeaderValue::Kind::Bool, name).flag && array.shape.size() > 1)
    throw NpyError(name + ": Fortran-order (column-major) arrays are not supported; save with C order " +
                   "(numpy.ascontiguousarray)");

  const int64_t numel = array.numel();
  const size_t item = array.item_size();
  if (numel < 0 || static_cast<uint64_t>(numel) > std::numeric_limits<uint64_t>::max() / item)
    throw NpyError(name + ": shape " + shape_text(array.shape) + " is too large");
  const uint64_t want = static_cast<uint64_t>(numel) * item, have = size - prefix - header_length;
  if (want != have)
    throw NpyError(name + ": shape " + shape_text(array.shape) + " of " + array.dtype + " needs " +
                   std::to_string(want) + " data bytes, the file holds " + std::to_string(have) +
                   (have < want ? " (truncated)" : ""));
  const uint8_t* data = bytes + prefix + header_length;
  array.data.assign(data, data + want);
  if (swap) swap_items(array.data, item);
  if (array.dtype == "|b1")  // any non-zero byte is True; tensors want exactly 0 or 1
    for (auto& b : array.data) b = b != 0;
  return array;
}

NpyArray read_npy_bytes(const std::vector<uint8_t>& bytes, const std::string& name) {
  return read_npy_bytes(bytes.data(), bytes.size(), name);
}

NpyArray read_npy(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return read_npy_bytes(bytes, path);
}

std::vector<uint8_t> npy_bytes(const NpyArray& array) {
  const DtypeEntry* e = find_dtype(array.dtype);
  if (!e) throw NpyError("npy: cannot write dtype " + in_quotes(array.dtype));
  const int64_t numel = array.numel();
  if (numel < 0 || array.data.size() != static_cast<uint64_t>(numel) * e->size)
    throw NpyError("npy: shape " + shape_text(array.shape) + " of " + array.dtype + " does not match " +
                   std::to_string(array.data.size()) + " data bytes");

  std::string header =
      "{'descr': '" + array.dtype + "', 'fortran_order': False, 'shape': " + shape_text(array.shape) + ", }";
  const bool wide = header.size() + 1 + kMagicSize + 4 > 0xFFFF;
  const size_t prefix = kMagicSize + (wide ? 6 : 4);
  const size_t padded = (prefix + header.size() + 1 + kAlignment - 1) / kAlignment * kAlignment;
  header.append(padded - prefix - header.size() - 1, ' ');
  header.push_back('\n');

  std::vector<uint8_t> out(kMagic, kMagic + kMagicSize);
  out.push_back(wide ? 2 : 1);
  out.push_back(0);
  const size_t length_bytes = wide ? 4 : 2;
  for (size_t i = 0; i < length_bytes; ++i) out.push_back(static_cast<uint8_t>(header.size() >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), array.data.begin(), array.data.end());
  return out;
}

void write_npy(const std::string& path, const NpyArray& array) {
  std::vector<uint8_t> bytes;
  try {
    bytes = npy_bytes(array);
  } catch (const NpyError& e) {
    throw NpyError(path + ": " + e.what());
  }
  write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

void write_npy(const std::string& path, const at::Tensor& tensor) { write_npy(path, tensor_to_npy(tensor)); }

at::Tensor npy_to_tensor(const NpyArray& array) {
  const DtypeEntry* e = find_dtype(array.dtype);
  if (!e) throw NpyError("npy: no tensor type for dtype " + in_quotes(array.dtype));
  at::Tensor t = at::empty(array.shape, at::TensorOptions().dtype(e->scalar));
  if (array.data.size() != static_cast<size_t>(t.numel()) * e->size)
    throw NpyError("npy: shape " + shape_text(array.shape) + " does not match " + std::to_string(array.data.size()) +
                   " data bytes");
  if (!array.data.empty()) std::memcpy(t.data_ptr(), array.data.data(), array.data.size());
  return t;
}

NpyArray tensor_to_npy(const at::Tensor& tensor) {
  const at::Tensor t = tensor.contiguous().cpu();
  const DtypeEntry* entry = nullptr;
  for (const auto& e : kDtypes)
    if (e.scalar == t.scalar_type()) entry = &e;
  if (!entry) throw NpyError(std::string("npy: tensors of type ") + at::toString(t.scalar_type()) + " cannot be saved");
  NpyArray array;
  array.dtype = entry->name;
  array.shape.assign(t.sizes().begin(), t.sizes().end());
  const auto* data = static_cast<const uint8_t*>(t.data_ptr());
  array.data.assign(data, data + t.numel() * entry->size);
  return array;
}

std::map<std::string, NpyArray> read_npz_bytes(const std::vector<uint8_t>& bytes, const std::string& name) {
  ZipArchive zip(bytes, name);
  std::map<std::string, NpyArray> arrays;
  for (const auto& entry : zip.names()) {
    if (entry.size() <= 4 || entry.compare(entry.size() - 4, 4, ".npy") != 0) continue;
    arrays[entry.substr(0, entry.size() - 4)] = read_npy_bytes(zip.read(entry), name + ":" + entry);
  }
  return arrays;
}

}  // namespace ms::io
