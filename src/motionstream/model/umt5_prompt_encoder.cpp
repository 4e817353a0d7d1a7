#include "motionstream/model/umt5_prompt_encoder.h"

#include <ATen/core/grad_mode.h>

#include "motionstream/model/umt5_checkpoint.h"

namespace ms {

Umt5PromptEncoder::Umt5PromptEncoder(std::string weights_path, const std::string& tokenizer_path,
                                     Umt5PromptEncoderOptions options)
    : weights_path_(std::move(weights_path)),
      options_(std::move(options)),
      tokenizer_(tokenizer_path, options_.config.text_len) {
  if (!options_.cache_folder.empty()) {
    // What the cached output depends on: the weights file, the model shape, the compute dtype, the text length.
    const std::string identity = encoder_file_identity(weights_path_) + " | " + options_.config.name + " " +
                                 std::string(c10::toString(options_.dtype)) + " text_len " +
                                 std::to_string(options_.config.text_len);
    cache_ = std::make_unique<PromptEmbeddingCache>(options_.cache_folder, identity, options_.cache_dtype);
  }
}

at::Tensor Umt5PromptEncoder::run_encoder(const std::string& prompt) {
  if (!encoder_) {
    encoder_ = load_umt5_encoder(weights_path_, options_.config, options_.dtype);
    encoder_->to(options_.device);
  }
  const TokenizedPrompt tokens = tokenizer_.encode(prompt);
  const auto as_tensor = [&](const std::vector<int64_t>& v) {
    return at::tensor(v, at::TensorOptions().dtype(at::kLong)).unsqueeze(0).to(options_.device);  // [1, text_len]
  };
  at::NoGradGuard no_grad;
  return encoder_->forward(as_tensor(tokens.ids), as_tensor(tokens.mask)).to(at::kCPU);  // [1, text_len, dim]
}

at::Tensor Umt5PromptEncoder::encode(const std::string& prompt) {
  if (!cache_) return run_encoder(prompt);
  // Keyed by the cleaned prompt: prompts that differ only in whitespace tokenize alike.
  return cache_->get_or_compute(clean_prompt_whitespace(prompt), [&] { return run_encoder(prompt); });
}

}  // namespace ms
