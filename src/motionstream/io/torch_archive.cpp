#include "motionstream/io/torch_archive.h"

#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

namespace ms::io {
namespace {

// ---- little helpers ----

std::string hex(uint64_t value, int digits) {
  static const char* kDigits = "0123456789abcdef";
  std::string s(digits, '0');
  for (int i = digits - 1; i >= 0; --i, value >>= 4) s[i] = kDigits[value & 15];
  return s;
}

std::string in_quotes(const std::string& name) { return "'" + name + "'"; }

template <typename T>
T load_le(const uint8_t* p) {  // unaligned little-endian load
  T value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) value |= static_cast<T>(p[i]) << (8 * i);
  return value;
}

uint32_t crc32(const uint8_t* data, size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// ---- zip layout ----

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kEndSize = 22;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kZip64EndSize = 56;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint32_t kZip64Marker = 0xFFFFFFFFu;

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error(path + ": cannot open (" + std::strerror(errno) + ")");
  const std::streamoff size = in.tellg();
  if (size < 0) throw std::runtime_error(path + ": cannot tell its size");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));  // one read: checkpoints run to hundreds of MB
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw std::runtime_error(path + ": read error");
  return bytes;
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path temp = target.parent_path() / ("." + target.filename().string() + ".tmp" + std::to_string(::getpid()));
  bool written = false;
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(path + ": cannot open for writing (" + std::strerror(errno) + ")");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    written = static_cast<bool>(out.flush());
  }
  std::error_code ec;
  if (written) fs::rename(temp, target, ec);
  if (!written || ec) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw std::runtime_error(path + ": write failed" + (ec ? ": " + ec.message() : std::string()));
  }
}

// ================================ ZipArchive ================================

ZipArchive::ZipArchive(std::vector<uint8_t> bytes, std::string name_for_errors)
    : owned_(std::move(bytes)), data_(owned_.data()), size_(owned_.size()), name_(std::move(name_for_errors)) {
  index_entries();
}

ZipArchive::ZipArchive(const uint8_t* data, size_t size, std::string name_for_errors)
    : data_(data), size_(size), name_(std::move(name_for_errors)) {
  index_entries();
}

void ZipArchive::index_entries() {
  uint64_t count = 0;
  size_t at = find_central_directory(&count);
  for (uint64_t i = 0; i < count; ++i) at = parse_central_entry(at);
}

void ZipArchive::fail(const std::string& message) const { throw TorchArchiveError(name_ + ": " + message); }

// Returns the offset of the central directory. The end record sits in the last 64 KiB (its comment is at most
// 65535 bytes); a zip64 locator just before it, when present, points at the record with the 64-bit fields.
uint64_t ZipArchive::find_central_directory(uint64_t* entry_count) const {
  const size_t size = size_;
  if (size < kEndSize) fail("not a zip archive (" + std::to_string(size) + " bytes, no end-of-directory record)");
  const size_t lowest = size - kEndSize > 0xFFFF ? size - kEndSize - 0xFFFF : 0;
  size_t end = size - kEndSize + 1;
  do {
    --end;
  } while (end > lowest && load_le<uint32_t>(data_ + end) != kEndSig);
  if (load_le<uint32_t>(data_ + end) != kEndSig) fail("not a zip archive (no end-of-directory record)");

  *entry_count = load_le<uint16_t>(data_ + end + 10);
  uint64_t directory_size = load_le<uint32_t>(data_ + end + 12);
  uint64_t directory_offset = load_le<uint32_t>(data_ + end + 16);
  if (end >= kZip64LocatorSize && load_le<uint32_t>(data_ + end - kZip64LocatorSize) == kZip64LocatorSig) {
    const uint64_t record = load_le<uint64_t>(data_ + end - kZip64LocatorSize + 8);
    if (size < kZip64EndSize || record > size - kZip64EndSize || load_le<uint32_t>(data_ + record) != kZip64EndSig)
      fail("corrupt zip64 end-of-directory record");
    *entry_count = load_le<uint64_t>(data_ + record + 32);
    directory_size = load_le<uint64_t>(data_ + record + 40);
    directory_offset = load_le<uint64_t>(data_ + record + 48);
  }
  if (directory_offset > size || directory_size > size - directory_offset)
    fail("central directory [" + std::to_string(directory_offset) + ", +" + std::to_string(directory_size) +
         ") lies outside the " + std::to_string(size) + "-byte file (truncated?)");
  return directory_offset;
}

// Parses the central-directory record at `at`, returns the offset of the next one.
size_t ZipArchive::parse_central_entry(size_t at) {
  if (size_ < kCentralHeaderSize || at > size_ - kCentralHeaderSize ||
      load_le<uint32_t>(data_ + at) != kCentralHeaderSig)
    fail("corrupt central directory at byte " + std::to_string(at));
  const uint8_t* h = data_ + at;
  const size_t name_size = load_le<uint16_t>(h + 28), extra_size = load_le<uint16_t>(h + 30),
               comment_size = load_le<uint16_t>(h + 32);
  const size_t next = at + kCentralHeaderSize + name_size + extra_size + comment_size;
  if (next > size_) fail("central directory entry at byte " + std::to_string(at) + " is truncated");

  Entry e;
  e.flags = load_le<uint16_t>(h + 8);
  e.method = load_le<uint16_t>(h + 10);
  e.crc32 = load_le<uint32_t>(h + 16);
  e.compressed_size = load_le<uint32_t>(h + 20);
  e.size = load_le<uint32_t>(h + 24);
  e.local_header_offset = load_le<uint32_t>(h + 42);
  e.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_size);

  // zip64: the 32-bit fields that overflowed read 0xFFFFFFFF, their 64-bit values follow in this order.
  const uint8_t* extra = h + kCentralHeaderSize + name_size;
  for (size_t pos = 0; pos + 4 <= extra_size;) {
    const uint16_t id = load_le<uint16_t>(extra + pos), field_size = load_le<uint16_t>(extra + pos + 2);
    if (pos + 4 + field_size > extra_size) fail("entry " + in_quotes(e.name) + ": corrupt extra field");
    if (id == kZip64ExtraId) {
      const uint8_t* p = extra + pos + 4;
      const uint8_t* p_end = p + field_size;
      for (uint64_t* field : {&e.size, &e.compressed_size, &e.local_header_offset}) {
        if (*field != kZip64Marker) continue;
        if (p + 8 > p_end) fail("entry " + in_quotes(e.name) + ": zip64 extra field too short");
        *field = load_le<uint64_t>(p);
        p += 8;
      }
    }
    pos += 4 + field_size;
  }
  index_.emplace(e.name, entries_.size());
  names_.push_back(e.name);
  entries_.push_back(std::move(e));
  return next;
}

const uint8_t* ZipArchive::locate(const std::string& entry, bool check_crc, uint64_t* size) const {
  const auto it = index_.find(entry);
  if (it == index_.end()) fail("no entry " + in_quotes(entry));
  const Entry& e = entries_[it->second];
  const std::string what = "entry " + in_quotes(e.name);
  if (e.flags & 1) fail(what + " is encrypted");
  if (e.method == 8)
    fail(what +
         " is deflate-compressed; only stored (uncompressed) entries are supported, as torch.save and "
         "numpy.savez write them");
  if (e.method != 0) fail(what + " uses compression method " + std::to_string(e.method) + "; only stored is supported");
  if (e.compressed_size != e.size) fail(what + ": stored sizes disagree");

  const uint64_t at = e.local_header_offset;
  if (size_ < kLocalHeaderSize || at > size_ - kLocalHeaderSize ||
      load_le<uint32_t>(data_ + at) != kLocalHeaderSig)
    fail(what + ": corrupt local header at byte " + std::to_string(at));
  const uint64_t begin =
      at + kLocalHeaderSize + load_le<uint16_t>(data_ + at + 26) + load_le<uint16_t>(data_ + at + 28);
  if (begin > size_ || e.size > size_ - begin)
    fail(what + ": data [" + std::to_string(begin) + ", +" + std::to_string(e.size) + ") runs past the end of the " +
         std::to_string(size_) + "-byte file (truncated?)");
  if (check_crc) {
    const uint32_t crc = crc32(data_ + begin, e.size);
    if (crc != e.crc32)
      fail(what + ": CRC-32 mismatch (stored " + hex(e.crc32, 8) + ", data " + hex(crc, 8) + "): corrupt");
  }
  *size = e.size;
  return data_ + begin;
}

std::vector<uint8_t> ZipArchive::read(const std::string& entry) const {
  uint64_t size = 0;
  const uint8_t* data = locate(entry, /*check_crc=*/true, &size);
  return std::vector<uint8_t>(data, data + size);
}

namespace {
void put_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}
}  // namespace

std::string make_stored_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  constexpr uint16_t kPaddingExtraId = 0x4246;  // "FB": the id torch.save uses for its alignment padding
  constexpr uint16_t kDosDate = 0x21;           // 1980-01-01
  std::string out, directory;
  for (const auto& [name, data] : entries) {
    const uint64_t offset = out.size();
    const uint32_t crc = crc32(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    // Pad through the extra field so that the data starts on a 64-byte boundary (an extra field is >= 4 bytes).
    size_t pad = (64 - (offset + kLocalHeaderSize + name.size() + 4) % 64) % 64 + 4;
    put_le(out, kLocalHeaderSig, 4);
    put_le(out, 20, 2);  // version needed: 2.0
    put_le(out, 0, 2);   // flags
    put_le(out, 0, 2);   // method: stored
    put_le(out, 0, 2);   // time
    put_le(out, kDosDate, 2);
    put_le(out, crc, 4);
    put_le(out, data.size(), 4);
    put_le(out, data.size(), 4);
    put_le(out, name.size(), 2);
    put_le(out, pad, 2);
    out += name;
    put_le(out, kPaddingExtraId, 2);
    put_le(out, pad - 4, 2);
    out.append(pad - 4, 'Z');
    out += data;

    put_le(directory, kCentralHeaderSig, 4);
    put_le(directory, 20, 2);  // made by
    put_le(directory, 20, 2);  // needed
    put_le(directory, 0, 2);
    put_le(directory, 0, 2);
    put_le(directory, 0, 2);
    put_le(directory, kDosDate, 2);
    put_le(directory, crc, 4);
    put_le(directory, data.size(), 4);
    put_le(directory, data.size(), 4);
    put_le(directory, name.size(), 2);
    put_le(directory, 0, 2);  // extra
    put_le(directory, 0, 2);  // comment
    put_le(directory, 0, 2);  // disk
    put_le(directory, 0, 2);  // internal attributes
    put_le(directory, 0, 4);  // external attributes
    put_le(directory, offset, 4);
    directory += name;
  }
  const uint64_t directory_offset = out.size();
  out += directory;
  if (out.size() > 0xFFFFFFFFull || entries.size() > 0xFFFF)
    throw TorchArchiveError("zip archive of " + std::to_string(out.size()) + " bytes, " +
                            std::to_string(entries.size()) + " entries needs zip64, which is not written");
  put_le(out, kEndSig, 4);
  put_le(out, 0, 2);
  put_le(out, 0, 2);
  put_le(out, entries.size(), 2);
  put_le(out, entries.size(), 2);
  put_le(out, directory.size(), 4);
  put_le(out, directory_offset, 4);
  put_le(out, 0, 2);  // comment
  return out;
}

// ================================ pickle ================================

const char* PickleValue::kind_name() const {
  switch (kind) {
    case Kind::None:
      return "NoneType";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::Bytes:
      return "bytes";
    case Kind::Tuple:
      return "tuple";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return "dict";
    case Kind::Global:
      return "global";
    case Kind::Storage:
      return "storage";
    case Kind::Tensor:
      return "Tensor";
  }
  return "?";
}

namespace {

// Every opcode of pickle protocols 0-5, named in error messages.
const char* opcode_name(uint8_t op) {
  // clang-format off
  switch (op) {
    case '(': return "MARK";            case '.': return "STOP";           case '0': return "POP";
    case '1': return "POP_MARK";        case '2': return "DUP";            case 'F': return "FLOAT";
    case 'I': return "INT";             case 'J': return "BININT";         case 'K': return "BININT1";
    case 'L': return "LONG";            case 'M': return "BININT2";        case 'N': return "NONE";
    case 'P': return "PERSID";          case 'Q': return "BINPERSID";      case 'R': return "REDUCE";
    case 'S': return "STRING";          case 'T': return "BINSTRING";      case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";         case 'X': return "BINUNICODE";     case 'a': return "APPEND";
    case 'b': return "BUILD";           case 'c': return "GLOBAL";         case 'd': return "DICT";
    case '}': return "EMPTY_DICT";      case 'e': return "APPENDS";        case 'g': return "GET";
    case 'h': return "BINGET";          case 'i': return "INST";           case 'j': return "LONG_BINGET";
    case 'l': return "LIST";            case ']': return "EMPTY_LIST";     case 'o': return "OBJ";
    case 'p': return "PUT";             case 'q': return "BINPUT";         case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";         case 't': return "TUPLE";          case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS";        case 'G': return "BINFLOAT";       case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";  case 0x80: return "PROTO";         case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1";           case 0x83: return "EXT2";          case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";         case 0x86: return "TUPLE2";        case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE";        case 0x89: return "NEWFALSE";      case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";          case 0x8c: return "SHORT_BINUNICODE"; case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8";      case 0x8f: return "EMPTY_SET";     case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";      case 0x92: return "NEWOBJ_EX";     case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE";        case 0x95: return "FRAME";         case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";    case 0x98: return "READONLY_BUFFER";
    default: return nullptr;
  }
  // clang-format on
}

std::string describe_opcode(uint8_t op) {
  const char* name = opcode_name(op);
  std::string s = "0x" + hex(op, 2);
  if (std::isprint(op)) s += std::string(" '") + static_cast<char>(op) + "'";
  return s + " (" + (name ? name : "not a pickle opcode") + ")";
}

PickleRef make(PickleValue::Kind kind) {
  auto v = std::make_shared<PickleValue>();
  v->kind = kind;
  return v;
}

// UTF-8 -> code points, each of which must fit in one byte: how protocol 2 carries bytes inside a str.
bool utf8_to_latin1(const std::string& text, std::string* out, uint32_t* bad_code_point) {
  out->clear();
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<uint8_t>(text[i]);
    uint32_t cp = 0;
    size_t extra = 0;
    if (lead < 0x80) {
      cp = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      cp = lead & 0x1F, extra = 1;
    } else if ((lead & 0xF0) == 0xE0) {
      cp = lead & 0x0F, extra = 2;
    } else if ((lead & 0xF8) == 0xF0) {
      cp = lead & 0x07, extra = 3;
    } else {
      *bad_code_point = 0xFFFFFFFFu;  // not UTF-8
      return false;
    }
    if (i + extra >= text.size()) {  // sequence cut short
      *bad_code_point = 0xFFFFFFFFu;
      return false;
    }
    for (size_t k = 1; k <= extra; ++k) {
      const auto cont = static_cast<uint8_t>(text[i + k]);
      if ((cont & 0xC0) != 0x80) {
        *bad_code_point = 0xFFFFFFFFu;
        return false;
      }
      cp = (cp << 6) | (cont & 0x3F);
    }
    if (cp > 0xFF) {
      *bad_code_point = cp;
      return false;
    }
    out->push_back(static_cast<char>(cp));
    i += extra + 1;
  }
  return true;
}

bool is_latin1_name(std::string encoding) {
  for (auto& c : encoding) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : encoding)
    if (c == '_') c = '-';
  return encoding == "latin1" || encoding == "latin-1" || encoding == "iso-8859-1" || encoding == "iso8859-1" ||
         encoding == "l1";
}

class PickleMachine {
 public:
  PickleMachine(const std::vector<uint8_t>& bytes, const std::string& name, bool allow_tensors)
      : bytes_(bytes), name_(name), allow_tensors_(allow_tensors) {}

  PickleRef run() {
    while (true) {
      op_at_ = pos_;
      op_ = next_u8("an opcode");
      if (op_ == '.') break;
      step();
    }
    if (stack_.size() != 1) fail("STOP with " + std::to_string(stack_.size()) + " values on the stack (expected 1)");
    return stack_.back();
  }

 private:
  [[noreturn]] void fail(const std::string& message) const { throw TorchArchiveError(name_ + ": pickle: " + message); }
  [[noreturn]] void fail_here(const std::string& message) const {
    fail(describe_opcode(op_) + " at byte " + std::to_string(op_at_) + ": " + message);
  }

  // ---- reading operands ----
  const uint8_t* take(size_t n, const char* what) {
    if (n > bytes_.size() - pos_)
      fail(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes at byte " +
           std::to_string(pos_) + ", " + std::to_string(bytes_.size() - pos_) + " left");
    const uint8_t* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint8_t next_u8(const char* what) { return *take(1, what); }
  template <typename T>
  T next_le() {
    return load_le<T>(take(sizeof(T), opcode_name(op_)));
  }
  std::string next_string(uint64_t n) {
    const uint8_t* p = take(n, opcode_name(op_));
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  std::string next_line() {
    const size_t start = pos_;
    while (pos_ < bytes_.size() && bytes_[pos_] != '\n') ++pos_;
    if (pos_ == bytes_.size()) fail_here("unterminated line");
    std::string line(reinterpret_cast<const char*>(bytes_.data() + start), pos_ - start);
    ++pos_;
    return line;
  }

  // ---- stack ----
  void push(PickleRef v) { stack_.push_back(std::move(v)); }
  PickleRef pop() {
    if (stack_.size() <= floor()) fail_here("stack underflow");
    PickleRef v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PickleRef& top() {
    if (stack_.size() <= floor()) fail_here("stack underflow");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<PickleRef> pop_to_mark() {
    if (marks_.empty()) fail_here("no MARK to pop to");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PickleRef> items(stack_.begin() + mark, stack_.end());
    stack_.resize(mark);
    return items;
  }

  PickleRef tuple_of(std::vector<PickleRef> items) {
    auto t = make(PickleValue::Kind::Tuple);
    t->items = std::move(items);
    return t;
  }
  void push_tuple(size_t n) {
    std::vector<PickleRef> items(n);
    for (size_t i = n; i-- > 0;) items[i] = pop();
    push(tuple_of(std::move(items)));
  }
  void push_int(int64_t value) {
    auto v = make(PickleValue::Kind::Int);
    v->integer = value;
    push(v);
  }
  void push_text(PickleValue::Kind kind, std::string text) {
    auto v = make(kind);
    v->text = std::move(text);
    push(v);
  }
  void push_bool(bool value) {
    auto v = make(PickleValue::Kind::Bool);
    v->boolean = value;
    push(v);
  }

  // ---- memo ----
  void memo_put(uint64_t key) { memo_[key] = top(); }
  void memo_get(uint64_t key) {
    const auto it = memo_.find(key);
    if (it == memo_.end()) fail_here("memo key " + std::to_string(key) + " was never stored");
    push(it->second);
  }

  // ---- containers ----
  PickleRef expect_kind(PickleRef v, PickleValue::Kind kind, const char* what) {
    if (v->kind != kind) fail_here(std::string(what) + " expected, found " + v->kind_name());
    return v;
  }
  void append_items(std::vector<PickleRef> items) {
    auto list = expect_kind(top(), PickleValue::Kind::List, "a list");
    for (auto& item : items) list->items.push_back(std::move(item));
  }
  void set_items(std::vector<PickleRef> pairs) {
    if (pairs.size() % 2) fail_here("odd number of keys and values");
    auto dict = expect_kind(top(), PickleValue::Kind::Dict, "a dict");
    for (auto& item : pairs) dict->items.push_back(std::move(item));
  }

  // ---- REDUCE: the two callables protocol 2 needs for bytes ----
  PickleRef reduce(const PickleRef& callable, const PickleRef& args) {
    if (callable->kind != PickleValue::Kind::Global) fail_here(std::string("cannot call a ") + callable->kind_name());
    if (args->kind != PickleValue::Kind::Tuple) fail_here("arguments must be a tuple");
    const std::string& fn = callable->text;
    if (fn == "_codecs.encode") return codecs_encode(args->items);
    if ((fn == "__builtin__.bytes" || fn == "builtins.bytes") && args->items.empty())
      return make(PickleValue::Kind::Bytes);
    if (allow_tensors_) {
      if (fn == "collections.OrderedDict" && args->items.empty()) return make(PickleValue::Kind::Dict);
      if (fn == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args->items);
      if ((fn == "torch._utils._rebuild_parameter" || fn == "torch._utils._rebuild_parameter_with_state") &&
          !args->items.empty() && args->items[0]->kind == PickleValue::Kind::Tensor)
        return args->items[0];  // (tensor, requires_grad, hooks[, state]): the values are the tensor's
      // libtorch's pickler (torch::pickle_save) tags typed containers: restore_type_tag(obj, "Dict[str, Tensor]").
      if (fn == "torch.jit._pickle.restore_type_tag" && args->items.size() == 2) return args->items[0];
    }
    fail_here("calling " + fn + " is not supported (only _codecs.encode(str, 'latin1') and bytes())");
  }
  // ('storage', torch.<type>Storage, key, location, numel): what torch.save writes as a storage's persistent id.
  PickleRef persistent_storage(const PickleRef& pid) {
    using Kind = PickleValue::Kind;
    const auto& f = pid->items;
    if (pid->kind != Kind::Tuple || f.size() != 5 || f[0]->kind != Kind::String || f[0]->text != "storage" ||
        f[1]->kind != Kind::Global || f[2]->kind != Kind::String || f[4]->kind != Kind::Int)
      fail_here("a persistent id other than ('storage', torch.<type>Storage, key, location, numel)");
    std::string type = f[1]->text;  // "torch.BFloat16Storage"
    const std::string head = "torch.", tail = "Storage";
    if (type.size() <= head.size() + tail.size() || type.compare(0, head.size(), head) != 0 ||
        type.compare(type.size() - tail.size(), tail.size(), tail) != 0)
      fail_here("storage class " + type + " is not torch.<type>Storage");
    auto v = make(Kind::Storage);
    v->tensor = std::make_shared<TorchTensorRef>();
    v->tensor->storage_key = f[2]->text;
    v->tensor->element_type = type.substr(head.size(), type.size() - head.size() - tail.size());
    v->tensor->storage_numel = f[4]->integer;
    return v;
  }
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  PickleRef rebuild_tensor(const std::vector<PickleRef>& args) {
    using Kind = PickleValue::Kind;
    if (args.size() < 4 || args[0]->kind != Kind::Storage || args[1]->kind != Kind::Int ||
        args[2]->kind != Kind::Tuple || args[3]->kind != Kind::Tuple || args[2]->items.size() != args[3]->items.size())
      fail_here("_rebuild_tensor_v2 expects (storage, offset, size, stride, ...)");
    auto v = make(Kind::Tensor);
    v->tensor = std::make_shared<TorchTensorRef>(*args[0]->tensor);
    v->tensor->offset = args[1]->integer;
    for (size_t i = 0; i < args[2]->items.size(); ++i) {
      if (args[2]->items[i]->kind != Kind::Int || args[3]->items[i]->kind != Kind::Int)
        fail_here("tensor size and stride must be ints");
      v->tensor->size.push_back(args[2]->items[i]->integer);
      v->tensor->stride.push_back(args[3]->items[i]->integer);
    }
    return v;
  }

  PickleRef codecs_encode(const std::vector<PickleRef>& args) {
    if (args.size() != 2 || args[0]->kind != PickleValue::Kind::String || args[1]->kind != PickleValue::Kind::String)
      fail_here("_codecs.encode expects (str, encoding)");
    if (!is_latin1_name(args[1]->text))
      fail_here("_codecs.encode with encoding " + in_quotes(args[1]->text) + " is not supported (only latin1)");
    auto out = make(PickleValue::Kind::Bytes);
    uint32_t bad = 0;
    if (!utf8_to_latin1(args[0]->text, &out->text, &bad))
      fail_here(bad == 0xFFFFFFFFu ? std::string("string is not valid UTF-8")
                                   : "code point U+" + hex(bad, 4) + " does not fit in latin1");
    return out;
  }

  void step() {
    using Kind = PickleValue::Kind;
    switch (op_) {
      case 0x80: {  // PROTO
        const uint8_t protocol = next_u8("PROTO");
        if (protocol > 5) fail_here("protocol " + std::to_string(protocol) + " is newer than 5");
        break;
      }
      case 0x95:
        next_le<uint64_t>();
        break;     // FRAME: only a read-ahead hint
      case 'c': {  // GLOBAL
        std::string module = next_line();
        push_text(Kind::Global, module + "." + next_line());
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        auto name = expect_kind(pop(), Kind::String, "a name string");
        auto module = expect_kind(pop(), Kind::String, "a module string");
        push_text(Kind::Global, module->text + "." + name->text);
        break;
      }
      case 'X':
        push_text(Kind::String, next_string(next_le<uint32_t>()));
        break;
      case 0x8c:
        push_text(Kind::String, next_string(next_le<uint8_t>()));
        break;
      case 0x8d:
        push_text(Kind::String, next_string(next_le<uint64_t>()));
        break;
      case 'B':
        push_text(Kind::Bytes, next_string(next_le<uint32_t>()));
        break;
      case 'C':
        push_text(Kind::Bytes, next_string(next_le<uint8_t>()));
        break;
      case 0x8e:
        push_text(Kind::Bytes, next_string(next_le<uint64_t>()));
        break;
      case '(':
        marks_.push_back(stack_.size());
        break;
      case 't':
        push(tuple_of(pop_to_mark()));
        break;
      case ')':
        push(tuple_of({}));
        break;
      case 0x85:
        push_tuple(1);
        break;
      case 0x86:
        push_tuple(2);
        break;
      case 0x87:
        push_tuple(3);
        break;
      case 'R': {
        auto args = pop();
        auto callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'q':
        memo_put(next_le<uint8_t>());
        break;
      case 'r':
        memo_put(next_le<uint32_t>());
        break;
      case 0x94:
        memo_put(memo_.size());
        break;
      case 'h':
        memo_get(next_le<uint8_t>());
        break;
      case 'j':
        memo_get(next_le<uint32_t>());
        break;
      case 'N':
        push(make(Kind::None));
        break;
      case 0x88:
        push_bool(true);
        break;
      case 0x89:
        push_bool(false);
        break;
      case 'J':
        push_int(static_cast<int32_t>(next_le<uint32_t>()));
        break;
      case 'K':
        push_int(next_le<uint8_t>());
        break;
      case 'M':
        push_int(next_le<uint16_t>());
        break;
      case 'G': {  // BINFLOAT: big-endian IEEE double
        const uint8_t* p = take(8, "BINFLOAT");
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        auto v = make(Kind::Float);
        std::memcpy(&v->number, &bits, sizeof bits);
        push(v);
        break;
      }
      case '}':
        push(make(Kind::Dict));
        break;
      case ']':
        push(make(Kind::List));
        break;
      case 'l': {
        auto list = make(Kind::List);
        list->items = pop_to_mark();
        push(list);
        break;
      }
      case 'd': {
        auto items = pop_to_mark();
        push(make(Kind::Dict));
        set_items(std::move(items));
        break;
      }
      case 's': {
        auto value = pop();
        auto key = pop();
        set_items({key, value});
        break;
      }
      case 'u':
        set_items(pop_to_mark());
        break;
      case 'a':
        append_items({pop()});
        break;
      case 'e':
        append_items(pop_to_mark());
        break;
      case '0':
        pop();
        break;
      case 0x8a: {  // LONG1: a little-endian two's-complement integer of n bytes (Python's ints >= 2^31)
        const uint8_t n = next_u8("LONG1");
        if (n > 8) fail_here("integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
        const uint8_t* p = take(n, "LONG1");
        uint64_t bits = 0;
        for (size_t i = 0; i < n; ++i) bits |= static_cast<uint64_t>(p[i]) << (8 * i);
        if (n > 0 && n < 8 && (p[n - 1] & 0x80)) bits |= ~uint64_t{0} << (8 * n);  // sign-extend
        push_int(static_cast<int64_t>(bits));
        break;
      }
      case 'b':  // BUILD: obj.__setstate__(state); for a state dict the state is its _metadata, not needed here
        if (!allow_tensors_) fail_here("not supported");
        pop();
        top();
        break;
      case 'Q':
        if (allow_tensors_) {
          auto pid = pop();
          push(persistent_storage(pid));
          break;
        }
        [[fallthrough]];
      case 'P':
        fail_here(
            "not supported: the archive holds tensors or other persistent objects; only plain Python "
            "objects (such as bytes) can be read");
      default:
        fail_here("not supported");
    }
  }

  const std::vector<uint8_t>& bytes_;
  const std::string& name_;
  const bool allow_tensors_;
  size_t pos_ = 0, op_at_ = 0;
  uint8_t op_ = 0;
  std::vector<PickleRef> stack_;
  std::vector<size_t> marks_;  // stack heights at each MARK
  std::unordered_map<uint64_t, PickleRef> memo_;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

PickleRef unpickle(const std::vector<uint8_t>& bytes, const std::string& name_for_errors, bool allow_tensors) {
  return PickleMachine(bytes, name_for_errors, allow_tensors).run();
}

PickleRef load_torch_archive(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  // The pre-1.6 torch.save format is a bare pickle stream, recognisable by its PROTO opcode up front.
  if (bytes.size() >= 2 && bytes[0] == 0x80 && bytes[1] <= 5)
    throw TorchArchiveError(path +
                            ": legacy (pre-zip) torch.save format is not supported; re-save it with torch >= 1.6");
  ZipArchive zip(std::move(bytes), path);
  const std::string pickle_entry = torch_archive_pickle_entry(zip, path);
  return unpickle(zip.read(pickle_entry), path + ":" + pickle_entry);
}

std::string torch_archive_pickle_entry(const ZipArchive& zip, const std::string& path) {
  std::string pickle_entry;
  for (const auto& name : zip.names()) {
    const bool top_level = name.find('/') == name.rfind('/');
    if (top_level && ends_with(name, "/data.pkl")) {
      if (!pickle_entry.empty())
        throw TorchArchiveError(path + ": two pickles, " + in_quotes(pickle_entry) + " and " + in_quotes(name));
      pickle_entry = name;
    }
  }
  if (pickle_entry.empty())
    throw TorchArchiveError(path + ": not a torch.save archive (no '<archive>/data.pkl' entry)");
  return pickle_entry;
}

std::vector<uint8_t> load_torch_saved_bytes(const std::string& path) {
  PickleRef object = load_torch_archive(path);
  if (object->kind != PickleValue::Kind::Bytes)
    throw TorchArchiveError(path + ": the saved object is a " + object->kind_name() + ", expected bytes");
  return std::vector<uint8_t>(object->text.begin(), object->text.end());
}

}  // namespace ms::io
