#include "motionstream/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

// Tensor bytes are copied straight between the file and memory, and safetensors stores them little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace ms::io {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // same cap as the reference implementation

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},  {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2},  {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

const DTypeEntry& entry(DType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e;
  throw std::invalid_argument("invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

std::string quoted(const std::string& name) { return "'" + name + "'"; }

std::string format_list(const std::vector<int64_t>& values) {
  std::string s = "[";
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + std::to_string(values[i]);
  return s + "]";
}

std::string format_offsets(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();

// numel * dtype size, saturated so that an absurd shape cannot wrap around to a plausible byte count.
uint64_t byte_count(DType dtype, const std::vector<int64_t>& shape) {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    const auto ud = static_cast<uint64_t>(d);
    n = (ud != 0 && n > kSaturated / ud) ? kSaturated : n * ud;
  }
  return n;
}

std::string errno_text() { return std::strerror(errno); }

uint32_t float_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  return x;
}

float bits_float(uint32_t x) {
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

// Converts n elements of type T starting at an arbitrarily aligned pointer.
template <typename T, typename Convert>
std::vector<float> convert_all(const uint8_t* src, size_t n, Convert convert) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    out[i] = convert(v);
  }
  return out;
}

void write_all(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category());
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

const char* dtype_name(DType dtype) { return entry(dtype).name; }
size_t dtype_size(DType dtype) { return entry(dtype).size; }

std::optional<DType> parse_dtype(const std::string& name) {
  for (const auto& e : kDTypes)
    if (name == e.name) return e.dtype;
  return std::nullopt;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- reading ----

SafetensorsFile::Mapping::Mapping(Mapping&& other) noexcept
    : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SafetensorsFile::Mapping& SafetensorsFile::Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    if (addr_) ::munmap(const_cast<void*>(addr_), size_);
    addr_ = std::exchange(other.addr_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SafetensorsFile::Mapping::~Mapping() {
  if (addr_) ::munmap(const_cast<void*>(addr_), size_);
}

void SafetensorsFile::fail(const std::string& message) const { throw SafetensorsError(path_ + ": " + message); }

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    std::string why = errno_text();
    ::close(fd);
    fail("cannot stat: " + why);
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    fail("file is empty");
  }
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const std::string why = addr == MAP_FAILED ? errno_text() : "";
  ::close(fd);  // the mapping keeps the file alive
  if (addr == MAP_FAILED) fail("cannot mmap: " + why);
  mapping_ = Mapping(addr, size);

  if (size < 8) fail("file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | mapping_.bytes()[i];
  if (header_len > kMaxHeaderBytes)
    fail("header length " + std::to_string(header_len) + " is larger than the 100 MB limit");
  if (header_len > size - 8)
    fail("header length " + std::to_string(header_len) + " runs past the end of the file (" +
         std::to_string(size - 8) + " bytes follow the length; the file looks truncated)");

  data_start_ = mapping_.bytes() + 8 + header_len;
  parse_header(std::string(reinterpret_cast<const char*>(mapping_.bytes() + 8), header_len),
               size - 8 - header_len);
}

void SafetensorsFile::parse_header(const std::string& header, uint64_t data_size) {
  json root;
  try {
    root = json::parse(header);
  } catch (const json::exception& e) {
    fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!root.is_object()) fail("header is not a JSON object");

  // Fill locals and commit at the end so the object never holds a partly parsed header.
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail("__metadata__ is not a JSON object");
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string()) fail("__metadata__ value for key " + quoted(key) + " is not a string");
        metadata[key] = v.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& message) { fail("tensor " + quoted(name) + ": " + message); };
    if (!value.is_object()) bad("entry is not a JSON object");
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!value.contains(key)) bad(std::string("missing '") + key + "'");

    TensorInfo info;
    info.name = name;
    const json& dtype = value.at("dtype");
    if (!dtype.is_string()) bad("dtype is not a string");
    auto parsed = parse_dtype(dtype.get<std::string>());
    if (!parsed) bad("unknown dtype " + quoted(dtype.get<std::string>()));
    info.dtype = *parsed;

    const json& shape = value.at("shape");
    if (!shape.is_array()) bad("shape is not an array");
    for (const json& d : shape) {
      // nlohmann stores non-negative integers as unsigned, negative ones as signed.
      if (d.is_number_integer() && !d.is_number_unsigned()) bad("shape " + shape.dump() + " has a negative dimension");
      if (!d.is_number_unsigned()) bad("shape " + shape.dump() + " holds a non-integer");
      if (d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        bad("shape " + shape.dump() + " has a dimension too large");
      info.shape.push_back(d.get<int64_t>());
    }

    const json& offsets = value.at("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      bad("data_offsets " + offsets.dump() + " is not two non-negative integers");
    info.begin = offsets[0].get<uint64_t>();
    info.end = offsets[1].get<uint64_t>();
    const std::string where = "data_offsets " + format_offsets(info.begin, info.end);
    if (info.begin > info.end) bad(where + " begin after end");
    if (info.end > data_size)
      bad(where + " end past the " + std::to_string(data_size) + "-byte data buffer (the file looks truncated)");

    const uint64_t needed = byte_count(info.dtype, info.shape);
    if (needed != info.nbytes()) {
      const std::string needs = needed == kSaturated ? "more than 2^64" : std::to_string(needed);
      bad(where + " hold " + std::to_string(info.nbytes()) + " bytes but shape " + format_list(info.shape) + " of " +
          dtype_name(info.dtype) + " needs " + needs);
    }
    tensors.push_back(std::move(info));
  }

  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Zero-size tensors hold no bytes, so they cannot overlap anything.
  const TensorInfo* reach = nullptr;  // the non-empty tensor reaching furthest so far
  for (const TensorInfo& t : tensors) {
    if (t.nbytes() == 0) continue;
    if (reach && t.begin < reach->end)
      fail("tensors " + quoted(reach->name) + " " + format_offsets(reach->begin, reach->end) + " and " +
           quoted(t.name) + " " + format_offsets(t.begin, t.end) + " overlap");
    if (!reach || t.end > reach->end) reach = &t;
  }

  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < tensors.size(); ++i) index.emplace(tensors[i].name, i);
  tensors_ = std::move(tensors);
  index_ = std::move(index);
  metadata_ = std::move(metadata);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::at(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (!info) fail("no tensor " + quoted(name));
  return *info;
}

const uint8_t* SafetensorsFile::data(const TensorInfo& info) const { return data_start_ + info.begin; }

std::vector<float> SafetensorsFile::to_float(const TensorInfo& info) const {
  const uint8_t* src = data(info);
  const auto n = static_cast<size_t>(info.numel());
  switch (info.dtype) {
    case DType::F32: return convert_all<float>(src, n, [](float v) { return v; });
    case DType::F64: return convert_all<double>(src, n, [](double v) { return static_cast<float>(v); });
    case DType::F16: return convert_all<uint16_t>(src, n, half_to_float);
    case DType::BF16: return convert_all<uint16_t>(src, n, bf16_to_float);
    default:
      fail("tensor " + quoted(info.name) + ": cannot convert dtype " + dtype_name(info.dtype) + " to float");
  }
}

// ---- writing ----

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  auto fail = [&](const std::string& message) { throw SafetensorsError(path + ": " + message); };

  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name.empty()) fail("empty tensor name");
    if (t.name == "__metadata__") fail("tensor name '__metadata__' is reserved");
    if (!seen.insert(t.name).second) fail("duplicate tensor name " + quoted(t.name));
    for (int64_t d : t.shape)
      if (d < 0) fail("tensor " + quoted(t.name) + ": shape " + format_list(t.shape) + " has a negative dimension");
    const uint64_t nbytes = byte_count(t.dtype, t.shape);
    if (nbytes > 0 && !t.data) fail("tensor " + quoted(t.name) + ": data is null");
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    sizes.push_back(nbytes);
    offset += nbytes;
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // e.g. a name that is not valid UTF-8
    fail(std::string("cannot encode header: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + text.size() is then a multiple of 8
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

  // A unique sibling name: rename() is only atomic within one filesystem.
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) fail("cannot create temp file " + tmp + ": " + errno_text());
  try {
    write_all(fd, length, sizeof length);
    write_all(fd, text.data(), text.size());
    for (size_t i = 0; i < tensors.size(); ++i) write_all(fd, tensors[i].data, sizes[i]);
    // Flush before the rename so a crash never leaves a complete-looking name over partial contents.
    if (::fsync(fd) != 0) throw std::system_error(errno, std::generic_category());
  } catch (const std::system_error& e) {
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(std::string("write failed: ") + e.what());
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = errno_text();
    ::unlink(tmp.c_str());
    fail("cannot finish writing: " + why);
  }
}

// ---- half / bfloat16 ----

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000 | (mant << 13));  // inf, or NaN with its payload
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

uint16_t float_to_half(float f) {
  const uint32_t x = float_bits(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t a = x & 0x7fffffff;
  // NaN: keep the top payload bits and force the quiet bit so a low-bit-only payload does not become inf.
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >> 13) & 0x3ff);
  // 65520 is halfway between 65504 (max half, odd mantissa) and 2^16, so ties and above round to inf.
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a >= 0x38800000) {  // normal half range, >= 2^-14
    uint32_t v = a - ((127 - 15) << 23);
    v += 0xfff + ((v >> 13) & 1);  // round to nearest even on the 13 dropped bits; a carry bumps the exponent
    return sign | static_cast<uint16_t>(v >> 13);
  }
  // At or below 2^-25 (half the smallest subnormal) rounds to zero: the tie goes to the even value 0.
  if (a <= 0x33000000) return sign;
  // Subnormal: the half mantissa is the float value * 2^24 = m >> shift, rounded to nearest even.
  const uint32_t m = (a & 0x7fffff) | 0x800000;
  const uint32_t shift = 126 - (a >> 23);  // 14..24 in this range
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
  if (rem > halfway || (rem == halfway && (q & 1))) ++q;  // q may reach 0x400, the smallest normal: still correct
  return sign | static_cast<uint16_t>(q);
}

float bf16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

uint16_t float_to_bf16(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x0040);  // quiet NaN stays NaN
  return static_cast<uint16_t>((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

}  // namespace ms::io
