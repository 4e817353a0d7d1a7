// WordTextEncoder: the prompt encoder of the bundled models. Words of a fixed vocabulary map to learned embeddings
// plus learned positions: [B, text_len, text_dim], the context the DiT's text_embedding and cross-attention read.
// (Real Wan checkpoints use umT5-XXL instead; this small encoder is what a model trained from scratch on the
// synthetic world's captions needs.) Token 0 is padding, token 1 stands for words outside the vocabulary.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>

#include <string>
#include <vector>

namespace ms {

class WordTextEncoderImpl : public torch::nn::Module {
 public:
  // vocabulary: the known words (lower case), without the two reserved tokens.
  WordTextEncoderImpl(std::vector<std::string> vocabulary, int64_t text_len, int64_t text_dim);

  // Lower-cases, splits on anything that is not a letter or a digit, maps words to ids and pads/cuts to text_len.
  std::vector<int64_t> tokenize(const std::string& prompt) const;
  // prompts -> [B, text_len] int64 on `device`
  at::Tensor tokens(const std::vector<std::string>& prompts, const at::Device& device) const;
  // token ids [B, text_len] -> [B, text_len, text_dim]
  at::Tensor forward(const at::Tensor& ids);
  at::Tensor encode(const std::vector<std::string>& prompts);  // tokens on the module's device, then forward

  const std::vector<std::string>& vocabulary() const { return vocabulary_; }
  int64_t text_len() const { return text_len_; }

  torch::nn::Embedding token_embedding{nullptr};
  at::Tensor position_embedding;  // [text_len, text_dim]

 private:
  std::vector<std::string> vocabulary_;
  int64_t text_len_;
};
TORCH_MODULE(WordTextEncoder);

// The distinct words of the given sentences, sorted: a vocabulary for WordTextEncoder.
std::vector<std::string> build_vocabulary(const std::vector<std::string>& sentences);

}  // namespace ms
