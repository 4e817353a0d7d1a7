// PromptEmbeddingCache: a folder of safetensors files, one per (text encoder, prompt), each holding the encoder's
// output for that prompt, so that a large text encoder (umT5-XXL: 5.7B parameters) runs once per prompt.
//
// A file is named by a 64-bit hash of the encoder's identity and the prompt, and holds tensor "context"
// ([1, text_len, dim], in the dtype it was stored in) with the identity and the prompt in its metadata, which are
// compared on every read: a hash collision is a miss, never a wrong answer. Entries that cannot be read (truncated,
// corrupt, of another encoder) count as misses and are rewritten.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <optional>
#include <string>

#include "motionstream/io/safetensors.h"

namespace ms {

class PromptEmbeddingCache {
 public:
  // folder: created when missing. encoder_identity: anything that changes when the encoder's output would, e.g.
  // encoder_file_identity(path) plus the config name.
  PromptEmbeddingCache(std::string folder, std::string encoder_identity, io::DType stored_dtype = io::DType::BF16);

  std::optional<at::Tensor> find(const std::string& prompt) const;     // nullopt on a miss or an unreadable entry
  // Writes atomically (temp file + rename); returns what was stored: `context` on the CPU in the stored dtype.
  at::Tensor store(const std::string& prompt, const at::Tensor& context) const;
  // The cached embedding, or compute()'s result stored and returned as stored (so that a miss and a later hit
  // give the same values). compute runs only on a miss.
  at::Tensor get_or_compute(const std::string& prompt, const std::function<at::Tensor()>& compute) const;

  std::string entry_path(const std::string& prompt) const;
  const std::string& folder() const { return folder_; }

 private:
  std::string folder_, identity_;
  io::DType dtype_;
};

// Identity of a weights file that is cheap to compute for an 11 GB file: its absolute path, size and modification
// time (hashing the contents would take longer than encoding many prompts).
std::string encoder_file_identity(const std::string& path);

}  // namespace ms
