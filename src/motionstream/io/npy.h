// Reader and writer for NumPy's .npy format (versions 1.0, 2.0 and 3.0) and a reader for .npz archives.
//
// An .npy file is: the magic "\x93NUMPY", a major and minor version byte, a little-endian header length (uint16
// for 1.0, uint32 for 2.0/3.0), then a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (1, 81, 5, 2), }
// padded with spaces and a newline, then the raw array bytes. Only C-order arrays of plain numeric dtypes are
// supported; data is kept little-endian (big-endian files are byte-swapped on reading).
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace ms::io {

// what() names the file (or the name given for an in-memory buffer) and, where one is involved, the field.
struct NpyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct NpyArray {
  // NumPy's spelling, normalised to little-endian: "<f4", "<f8", "<f2", "|b1", "|u1", "|i1", "<i2", "<i4", "<i8".
  std::string dtype;
  std::vector<int64_t> shape;  // [] for a scalar
  std::vector<uint8_t> data;   // numel * item_size bytes, C order, little-endian

  int64_t numel() const;
  size_t item_size() const;  // bytes per element, from dtype
};

// The dtypes this module reads and writes, in NumPy's little-endian spelling.
const std::vector<std::string>& npy_supported_dtypes();

NpyArray read_npy(const std::string& path);
NpyArray read_npy_bytes(const uint8_t* bytes, size_t size, const std::string& name_for_errors);
NpyArray read_npy_bytes(const std::vector<uint8_t>& bytes, const std::string& name_for_errors);

// Format 1.0 unless the header needs more than 65535 bytes (then 2.0); data starts 64-byte aligned as NumPy does.
std::vector<uint8_t> npy_bytes(const NpyArray& array);
void write_npy(const std::string& path, const NpyArray& array);
void write_npy(const std::string& path, const at::Tensor& tensor);

// Conversions to and from tensors of the matching scalar type (float16/32/64, bool, uint8, int8/16/32/64).
at::Tensor npy_to_tensor(const NpyArray& array);
NpyArray tensor_to_npy(const at::Tensor& tensor);

// An .npz archive (a zip of "<key>.npy" entries, stored, as numpy.savez writes them) -> key -> array.
std::map<std::string, NpyArray> read_npz_bytes(const std::vector<uint8_t>& bytes, const std::string& name_for_errors);

}  // namespace ms::io
