// Umt5Tokenizer: prompt text -> umT5 token ids, as Wan prepares them: whitespace cleaned, sentencepiece pieces, the
// end-of-sequence token (1) appended, then cut or padded with 0 to a fixed length, with a mask saying which
// positions hold tokens. The model file is the umT5 tokenizer's sentencepiece model (google/umt5-xxl spiece.model).
//
// sentencepiece is an optional dependency. It is not linked into the library: the build makes a small module,
// libmotionstream_sentencepiece.so, that this code loads with dlmopen() on first use (MS_SENTENCEPIECE_LIBRARY, when set,
// names another copy); src/sentencepiece_shim says why. Without it the constructor throws, and the rest of the
// library is unaffected. Torch-free.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ms {

struct TokenizedPrompt {
  std::vector<int64_t> ids;   // [text_len]: tokens, end-of-sequence, then padding
  std::vector<int64_t> mask;  // [text_len]: 1 for tokens and end-of-sequence, 0 for padding
  int64_t length = 0;         // positions with mask 1
};

// Runs of whitespace become one space, leading and trailing whitespace goes (Python's \s: ASCII whitespace, the
// information separators 0x1c-0x1f and the Unicode spaces). Wan also unescapes HTML and repairs mojibake
// (ftfy); those steps are not done here.
std::string clean_prompt_whitespace(const std::string& text);

bool sentencepiece_available();  // whether this build can tokenize

// Trains a small unigram sentencepiece model on `sentences` with umT5's special ids (pad 0, eos 1, unk 2, no bos)
// and writes model_prefix + ".model": for tests and experiments, where the real umT5 model is not at hand.
// Throws std::runtime_error when training fails or the build has no sentencepiece.
void train_sentencepiece_model(const std::vector<std::string>& sentences, const std::string& model_prefix,
                               int vocab_size);

class Umt5Tokenizer {
 public:
  static constexpr int64_t kPadId = 0;
  static constexpr int64_t kEosId = 1;

  // Throws std::runtime_error naming the file when it cannot be loaded, or when built without sentencepiece.
  Umt5Tokenizer(const std::string& model_path, int64_t text_len = 512);
  ~Umt5Tokenizer();
  Umt5Tokenizer(Umt5Tokenizer&&) noexcept;
  Umt5Tokenizer& operator=(Umt5Tokenizer&&) noexcept;

  // Cleaned, encoded, cut to text_len - 1 pieces so that the end-of-sequence token always fits, then padded.
  TokenizedPrompt encode(const std::string& prompt) const;
  std::vector<int64_t> pieces(const std::string& text) const;  // sentencepiece ids alone, no cleaning, no EOS
  int64_t vocab_size() const;
  int64_t text_len() const { return text_len_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t text_len_;
};

}  // namespace ms
