#include "motionstream/model/umt5_tokenizer.h"

#include <algorithm>
#include <stdexcept>

#include <dlfcn.h>

#include <cstdlib>
#include <fstream>
#include <type_traits>

namespace ms {

namespace {

// Length in bytes of the whitespace character starting at s[i], or 0 when there is none.
size_t whitespace_at(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  const unsigned c = b(0);
  if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
  if (c == 0xc2 && (b(1) == 0x85 || b(1) == 0xa0)) return 2;  // U+0085, U+00A0
  if (c == 0xe1 && b(1) == 0x9a && b(2) == 0x80) return 3;    // U+1680
  if (c == 0xe2 && b(1) == 0x80 && (b(2) <= 0x8a || b(2) == 0xa8 || b(2) == 0xa9 || b(2) == 0xaf))
    return 3;                                                  // U+2000-U+200A, U+2028, U+2029, U+202F
  if (c == 0xe2 && b(1) == 0x81 && b(2) == 0x9f) return 3;    // U+205F
  if (c == 0xe3 && b(1) == 0x80 && b(2) == 0x80) return 3;    // U+3000
  return 0;
}

}  // namespace

std::string clean_prompt_whitespace(const std::string& text) {
  std::string out;
  bool pending_space = false;
  for (size_t i = 0; i < text.size();) {
    if (const size_t n = whitespace_at(text, i)) {
      pending_space = !out.empty();
      i += n;
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(text[i++]);
  }
  return out;
}

// ---- sentencepiece, through its shim module (src/sentencepiece_shim: why it is not linked directly) ----

namespace {

struct SentencepieceLibrary {
  void* (*load)(const char*, char*, size_t) = nullptr;
  void (*free)(void*) = nullptr;
  int (*piece_size)(void*) = nullptr;
  long (*encode)(void*, const char*, size_t, int*, size_t, char*, size_t) = nullptr;
  int (*train)(const char*, char*, size_t) = nullptr;
  std::string why_not;  // empty when loaded
};

// Loaded once: MS_SENTENCEPIECE_LIBRARY when set, else the module this build made (MS_SENTENCEPIECE_SHIM).
const SentencepieceLibrary& sentencepiece_library() {
  static const SentencepieceLibrary library = [] {
    SentencepieceLibrary lib;
    const char* env = std::getenv("MS_SENTENCEPIECE_LIBRARY");
#ifdef MS_SENTENCEPIECE_SHIM
    const std::string path = env && *env ? env : MS_SENTENCEPIECE_SHIM;
#else
    const std::string path = env && *env ? env : "";
#endif
    if (path.empty()) {
      lib.why_not = "this build has no sentencepiece (install libsentencepiece-dev and rebuild)";
      return lib;
    }
    // A link-map namespace of its own: sentencepiece's protobuf 3.14 and libtorch's libprotobuf 3.21 never meet.
    // (RTLD_LOCAL alone lets sentencepiece bind to libprotobuf 3.21, which aborts on the version check;
    // RTLD_DEEPBIND breaks its use of std::cerr, whose live copy sits in the executable.)
    void* handle = ::dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      lib.why_not = std::string("cannot load the sentencepiece module: ") + ::dlerror();
      return lib;
    }
    auto symbol = [&](const char* name, auto* target) {
      *target = reinterpret_cast<std::remove_pointer_t<decltype(target)>>(::dlsym(handle, name));
      if (!*target && lib.why_not.empty()) lib.why_not = path + ": no symbol " + name;
    };
    symbol("ms_spm_load", &lib.load);
    symbol("ms_spm_free", &lib.free);
    symbol("ms_spm_piece_size", &lib.piece_size);
    symbol("ms_spm_encode", &lib.encode);
    symbol("ms_spm_train", &lib.train);
    return lib;  // the handle stays open for the life of the process
  }();
  return library;
}

const SentencepieceLibrary& require_sentencepiece(const std::string& for_what) {
  const SentencepieceLibrary& lib = sentencepiece_library();
  if (!lib.why_not.empty()) throw std::runtime_error(for_what + ": " + lib.why_not);
  return lib;
}

}  // namespace

bool sentencepiece_available() { return sentencepiece_library().why_not.empty(); }

struct Umt5Tokenizer::Impl {
  const SentencepieceLibrary* lib = nullptr;
  void* processor = nullptr;
  ~Impl() {
    if (processor) lib->free(processor);
  }
};

Umt5Tokenizer::Umt5Tokenizer(const std::string& model_path, int64_t text_len)
    : impl_(std::make_unique<Impl>()), text_len_(text_len) {
  if (text_len < 1) throw std::invalid_argument("Umt5Tokenizer: text_len must be at least 1");
  impl_->lib = &require_sentencepiece(model_path + ": cannot tokenize");
  char error[512] = {};
  impl_->processor = impl_->lib->load(model_path.c_str(), error, sizeof error);
  if (!impl_->processor) throw std::runtime_error(model_path + ": cannot load the sentencepiece model: " + error);
}

std::vector<int64_t> Umt5Tokenizer::pieces(const std::string& text) const {
  std::vector<int> ids(text.size() + 16);  // a piece covers at least one byte, but leave room regardless
  char error[512] = {};
  long n = impl_->lib->encode(impl_->processor, text.data(), text.size(), ids.data(), ids.size(), error, sizeof error);
  if (n > static_cast<long>(ids.size())) {
    ids.resize(static_cast<size_t>(n));
    n = impl_->lib->encode(impl_->processor, text.data(), text.size(), ids.data(), ids.size(), error, sizeof error);
  }
  if (n < 0) throw std::runtime_error(std::string("sentencepiece: cannot encode: ") + error);
  return std::vector<int64_t>(ids.begin(), ids.begin() + n);
}

int64_t Umt5Tokenizer::vocab_size() const { return impl_->lib->piece_size(impl_->processor); }

void train_sentencepiece_model(const std::vector<std::string>& sentences, const std::string& model_prefix,
                               int vocab_size) {
  const SentencepieceLibrary& lib = require_sentencepiece(model_prefix + ": cannot train");
  const std::string corpus = model_prefix + ".corpus.txt";
  {
    std::ofstream out(corpus);
    for (const auto& s : sentences) out << s << "\n";
    if (!out) throw std::runtime_error(corpus + ": cannot write");
  }
  const std::string args = "--input=" + corpus + " --model_prefix=" + model_prefix +
                           " --vocab_size=" + std::to_string(vocab_size) +
                           " --model_type=unigram --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1"
                           " --hard_vocab_limit=false --minloglevel=2";
  char error[512] = {};
  if (lib.train(args.c_str(), error, sizeof error) != 0)
    throw std::runtime_error(model_prefix + ": sentencepiece training failed: " + error);
}

Umt5Tokenizer::~Umt5Tokenizer() = default;
Umt5Tokenizer::Umt5Tokenizer(Umt5Tokenizer&&) noexcept = default;
Umt5Tokenizer& Umt5Tokenizer::operator=(Umt5Tokenizer&&) noexcept = default;

TokenizedPrompt Umt5Tokenizer::encode(const std::string& prompt) const {
  std::vector<int64_t> ids = pieces(clean_prompt_whitespace(prompt));
  if (static_cast<int64_t>(ids.size()) > text_len_ - 1) ids.resize(text_len_ - 1);
  ids.push_back(kEosId);
  TokenizedPrompt out;
  out.length = static_cast<int64_t>(ids.size());
  out.ids = ids;
  out.ids.resize(text_len_, kPadId);
  out.mask.assign(text_len_, 0);
  std::fill(out.mask.begin(), out.mask.begin() + out.length, 1);
  return out;
}

}  // namespace ms
