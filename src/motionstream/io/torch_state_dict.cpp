#include "motionstream/io/torch_state_dict.h"

#include <cstdint>
#include <set>
#include <stdexcept>

#include "motionstream/io/torch_archive.h"

namespace ms::io {

namespace {

std::string single_quoted(const std::string& s) { return "'" + s + "'"; }

// The storage class torch.save names for a dtype's elements.
const char* storage_class(DType dtype) {
  switch (dtype) {
    case DType::F32: return "torch.FloatStorage";
    case DType::F16: return "torch.HalfStorage";
    case DType::BF16: return "torch.BFloat16Storage";
    case DType::F64: return "torch.DoubleStorage";
    case DType::I64: return "torch.LongStorage";
    case DType::I32: return "torch.IntStorage";
    case DType::I16: return "torch.ShortStorage";
    case DType::I8: return "torch.CharStorage";
    case DType::U8: return "torch.ByteStorage";
    case DType::BOOL: return "torch.BoolStorage";
  }
  throw std::logic_error("no torch storage class for a dtype");
}

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
