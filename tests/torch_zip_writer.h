// Writes a state dict the way Python's torch.save does (pickle protocol 2 with persistent storage ids and
// _rebuild_tensor_v2, an OrderedDict with its _metadata set through BUILD, tensors saved as views: storage offsets,
// transposed strides), so that tests can check the .pth reader without Python. Test-only: the library's own writer,
// io::write_torch_state_dict, writes contiguous tensors in a plain dict; both use io::make_stored_zip.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "motionstream/io/torch_archive.h"

namespace ms::test {

struct SavedTensor {
  std::string name;
  at::Tensor value;
  int64_t storage_offset = 0;  // elements of padding before the tensor's own, in its storage
  bool transposed = false;     // 2-D only: stored column-major, i.e. as a transposed view of its storage
};

namespace torch_zip_detail {

inline void put(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

class Pickle {
 public:
  Pickle() { out_ += "\x80\x02"; }
  void global(const std::string& module, const std::string& name) { out_ += "c" + module + "\n" + name + "\n"; }
  void text(const std::string& s) {
    out_ += 'X';
    put(out_, s.size(), 4);
    out_ += s;
  }
  void integer(int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
      out_ += 'J';
      put(out_, static_cast<uint32_t>(v), 4);
    } else {
      out_ += "\x8a\x08";  // LONG1, 8 bytes
      put(out_, static_cast<uint64_t>(v), 8);
    }
  }
  void op(const char* ops) { out_ += ops; }
  void op(char c) { out_ += c; }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

}  // namespace torch_zip_detail

inline std::string storage_class(at::ScalarType type) {
  switch (type) {
    case at::kBFloat16: return "BFloat16Storage";
    case at::kHalf: return "HalfStorage";
    case at::kDouble: return "DoubleStorage";
    default: return "FloatStorage";
  }
}

// An OrderedDict of the tensors, with the _metadata attribute torch attaches (set through BUILD).
inline void write_torch_state_dict(const std::string& path, const std::vector<SavedTensor>& tensors,
                                   const std::string& archive = "archive") {
  using namespace torch_zip_detail;
  std::vector<std::pair<std::string, std::string>> entries;  // name, data
  Pickle p;
  p.global("collections", "OrderedDict");
  p.op(")R(");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SavedTensor& t = tensors[i];
    const at::Tensor stored = (t.transposed ? t.value.t() : t.value).contiguous();
    std::string data(static_cast<size_t>(t.storage_offset) * stored.element_size(), '\0');
    data.append(static_cast<const char*>(stored.data_ptr()), stored.numel() * stored.element_size());
    entries.push_back({archive + "/data/" + std::to_string(i), data});

    p.text(t.name);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op("((");
    p.text("storage");
    p.global("torch", storage_class(t.value.scalar_type()));
    p.text(std::to_string(i));
    p.text("cpu");
    p.integer(t.storage_offset + stored.numel());
    p.op("tQ");
    p.integer(t.storage_offset);
    p.op('(');
    for (int64_t d : t.value.sizes()) p.integer(d);
    p.op("t(");
    std::vector<int64_t> stride = t.value.contiguous().strides().vec();
    if (t.transposed) stride = {1, t.value.size(0)};
    for (int64_t s : stride) p.integer(s);
    p.op("t\x89");
    p.global("collections", "OrderedDict");
    p.op(")Rt");
    p.op('R');
  }
  p.op('u');
  p.op('}');
  p.text("_metadata");
  p.op('}');
  p.op("sb.");
  entries.insert(entries.begin(), {archive + "/data.pkl", p.bytes()});
  entries.push_back({archive + "/version", "3\n"});

  io::write_file_atomically(path, io::make_stored_zip(entries));
}

}  // namespace ms::test
