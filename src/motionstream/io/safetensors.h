// Torch-free reader and writer for the safetensors format:
//   [u64 little-endian N][N bytes of JSON header][data buffer]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data
// buffer) plus an optional "__metadata__" object of string -> string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace ms::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType dtype);  // the safetensors spelling: "F32", "BF16", ...
size_t dtype_size(DType dtype);
std::optional<DType> parse_dtype(const std::string& name);  // nullopt for unknown names

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets inside the data buffer

  int64_t numel() const;  // product of shape (1 for a scalar [])
  uint64_t nbytes() const { return end - begin; }
};

// what() names the file and, where one is involved, the tensor.
struct SafetensorsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A read-only, memory-mapped safetensors file. The constructor validates the whole header, so every accessor can
// trust the offsets it hands out.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by begin offset
  const TensorInfo* find(const std::string& name) const;               // nullptr if absent
  const TensorInfo& at(const std::string& name) const;                 // throws SafetensorsError if absent
  const uint8_t* data(const TensorInfo& info) const;                   // pointer into the mapping (any alignment)
  std::vector<float> to_float(const TensorInfo& info) const;           // F32/F16/BF16/F64 only
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  // Owns the mmap so that a constructor that throws half-way still unmaps, and so that moves are the defaults.
  class Mapping {
   public:
    Mapping() = default;
    Mapping(const void* addr, size_t size) : addr_(addr), size_(size) {}
    Mapping(Mapping&& other) noexcept;
    Mapping& operator=(Mapping&& other) noexcept;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping();
    const uint8_t* bytes() const { return static_cast<const uint8_t*>(addr_); }
    size_t size() const { return size_; }

   private:
    const void* addr_ = nullptr;
    size_t size_ = 0;
  };

  void parse_header(const std::string& header, uint64_t data_size);
  [[noreturn]] void fail(const std::string& message) const;

  std::string path_;
  Mapping mapping_;
  const uint8_t* data_start_ = nullptr;  // start of the data buffer inside the mapping
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel * dtype_size bytes
};

// Writes atomically (a temp file in the same folder, then rename), tensors laid out in the given order, the header
// padded with spaces so that the data buffer starts 8-byte aligned. Throws SafetensorsError on a duplicate, empty or
// reserved ("__metadata__") name.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// IEEE binary16 and bfloat16 conversions: round to nearest even, inf/NaN/subnormals preserved, NaN stays NaN.
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);

}  // namespace ms::io
