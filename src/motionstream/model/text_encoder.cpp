#include "motionstream/model/text_encoder.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <unordered_map>

namespace ms {

namespace {
std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c)) {
      word += static_cast<char>(std::tolower(c));
    } else if (!word.empty()) {
      words.push_back(word);
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(word);
  return words;
}
}  // namespace

std::vector<std::string> build_vocabulary(const std::vector<std::string>& sentences) {
  std::set<std::string> words;
  for (const auto& s : sentences)
    for (auto& w : words_of(s)) words.insert(w);
  return {words.begin(), words.end()};
}

WordTextEncoderImpl::WordTextEncoderImpl(std::vector<std::string> vocabulary, int64_t text_len, int64_t text_dim)
    : vocabulary_(std::move(vocabulary)), text_len_(text_len) {
  std::sort(vocabulary_.begin(), vocabulary_.end());  // tokenize() looks words up by binary search
  vocabulary_.erase(std::unique(vocabulary_.begin(), vocabulary_.end()), vocabulary_.end());
  token_embedding = register_module(
      "token_embedding", torch::nn::Embedding(static_cast<int64_t>(vocabulary_.size()) + 2, text_dim));
  position_embedding = register_parameter("position_embedding", at::randn({text_len, text_dim}) * 0.02);
}

std::vector<int64_t> WordTextEncoderImpl::tokenize(const std::string& prompt) const {
  std::vector<int64_t> ids;
  for (const auto& w : words_of(prompt)) {
    if (static_cast<int64_t>(ids.size()) == text_len_) break;
    auto it = std::lower_bound(vocabulary_.begin(), vocabulary_.end(), w);
    ids.push_back(it != vocabulary_.end() && *it == w ? 2 + (it - vocabulary_.begin()) : 1);
  }
  ids.resize(static_cast<size_t>(text_len_), 0);
  return ids;
}

at::Tensor WordTextEncoderImpl::tokens(const std::vector<std::string>& prompts, const at::Device& device) const {
  std::vector<int64_t> flat;
  for (const auto& p : prompts) {
    auto ids = tokenize(p);
    flat.insert(flat.end(), ids.begin(), ids.end());
  }
  return at::tensor(flat, at::kLong).view({static_cast<int64_t>(prompts.size()), text_len_}).to(device);
}

at::Tensor WordTextEncoderImpl::forward(const at::Tensor& ids) {
  return token_embedding->forward(ids) + position_embedding.unsqueeze(0);
}

at::Tensor WordTextEncoderImpl::encode(const std::vector<std::string>& prompts) {
  return forward(tokens(prompts, position_embedding.device()));
}

}  // namespace ms
