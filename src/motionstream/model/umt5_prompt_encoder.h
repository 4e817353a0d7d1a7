// Umt5PromptEncoder: prompt text -> the [1, text_len, dim] context a Wan DiT reads, from published files: the umT5
// weights (Wan .pth or Hugging Face safetensors names), the umT5 sentencepiece model, and optionally a cache folder.
// The 5.7B encoder is loaded only when a prompt is not in the cache, so a run whose prompts are all cached never
// loads it.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "motionstream/model/prompt_cache.h"
#include "motionstream/model/umt5.h"
#include "motionstream/model/umt5_tokenizer.h"

namespace ms {

struct Umt5PromptEncoderOptions {
  Umt5Config config = umt5_preset("umt5-xxl");
  at::ScalarType dtype = at::kBFloat16;  // of the weights and the computation
  at::Device device = at::kCPU;
  std::string cache_folder;              // empty: no cache
  io::DType cache_dtype = io::DType::BF16;
};

class Umt5PromptEncoder {
 public:
  // Loads the tokenizer now (small); the weights only on the first cache miss. Throws naming a file that is missing.
  Umt5PromptEncoder(std::string weights_path, const std::string& tokenizer_path, Umt5PromptEncoderOptions options = {});

  // [1, text_len, dim] on the CPU, zero after the prompt's tokens; from the cache when there.
  at::Tensor encode(const std::string& prompt);
  bool encoder_loaded() const { return static_cast<bool>(encoder_); }

 private:
  at::Tensor run_encoder(const std::string& prompt);

  std::string weights_path_;
  Umt5PromptEncoderOptions options_;
  Umt5Tokenizer tokenizer_;
  std::unique_ptr<PromptEmbeddingCache> cache_;
  Umt5Encoder encoder_{nullptr};
};

}  // namespace ms
