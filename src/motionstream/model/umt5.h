// Umt5Encoder: the umT5 text encoder Wan2.1 reads its prompts with (umT5-XXL, encoder half only).
//
// Per block: x += Attn(RmsNorm(x)) with a relative-position bias of the block's own (umT5 does not share it across
// blocks, unlike T5), then x += FFN(RmsNorm(x)) with FFN(x) = fc2(fc1(x) * gelu_tanh(gate(x))). After the last block
// one more RmsNorm. T5 conventions: RMS norms have a weight but no bias and subtract no mean; attention scores are
// not divided by sqrt(head_dim); no linear has a bias; no dropout at inference.
//
// Parameter names are those of Wan's models_t5_umt5-xxl-enc-bf16.pth (token_embedding.weight, blocks.N.attn.q.weight,
// ...); other layouts are converted by the name tables in umt5_checkpoint.h.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <string>
#include <utility>
#include <vector>

#include "motionstream/model/shape_manifest.h"

namespace ms {

struct Umt5Config {
  std::string name = "custom";
  int64_t vocab = 256384;
  int64_t dim = 4096;
  int64_t num_heads = 64;
  int64_t head_dim = 64;  // attention width num_heads * head_dim need not equal dim (it does in umT5-XXL)
  int64_t ffn_dim = 10240;
  int64_t num_layers = 24;
  int64_t num_buckets = 32;     // relative-position buckets, half for keys before the query, half for keys after
  int64_t max_distance = 128;   // distances from here on share the last bucket
  int64_t text_len = 512;       // what prompts are padded or cut to (Wan's text_len)
  double eps = 1e-6;

  int64_t attn_dim() const { return num_heads * head_dim; }
  // Every parameter in the module's (Wan) naming, with its shape, in registration order. Allocates nothing.
  ShapeManifest parameter_shapes() const;
  int64_t parameter_count() const;
  void validate() const;  // throws std::invalid_argument naming the field
};

// "umt5-xxl" (the encoder of Wan2.1's text model), "umt5-tiny" (tests).
Umt5Config umt5_preset(const std::string& name);
std::vector<std::string> umt5_preset_names();

// T5's bucket for a key at `relative_position` = key index - query index, bidirectional: keys after the query use
// buckets num_buckets/2 and up. Distances below num_buckets/4 get a bucket each; larger ones share buckets
// logarithmically up to max_distance. Computed in float32 as the reference implementations do, so boundary cases
// land in the same bucket.
at::Tensor relative_position_buckets(int64_t query_len, int64_t key_len, int64_t num_buckets,
                                     int64_t max_distance);  // [Lq, Lk] int64

// RMS norm over the last dimension, in float32, then scaled by the weight (cast back to the weight's dtype when
// that is half or bfloat16).
class Umt5RmsNormImpl : public torch::nn::Module {
 public:
  Umt5RmsNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;  // [dim]
 private:
  double eps_;
};
TORCH_MODULE(Umt5RmsNorm);

// The per-block learned bias added to the attention scores: one value per head and bucket.
class Umt5RelativeBiasImpl : public torch::nn::Module {
 public:
  Umt5RelativeBiasImpl(int64_t num_buckets, int64_t num_heads, int64_t max_distance);
  at::Tensor forward(int64_t query_len, int64_t key_len);  // [1, H, Lq, Lk]
  torch::nn::Embedding embedding{nullptr};                  // [num_buckets, H]
 private:
  int64_t num_buckets_, max_distance_;
};
TORCH_MODULE(Umt5RelativeBias);

class Umt5AttentionImpl : public torch::nn::Module {
 public:
  explicit Umt5AttentionImpl(const Umt5Config& c);
  // x [B, L, dim], bias [B or 1, H, L, L] (relative positions plus the padding mask) -> [B, L, dim]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias);
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
 private:
  int64_t num_heads_, head_dim_;
};
TORCH_MODULE(Umt5Attention);

class Umt5FeedForwardImpl : public torch::nn::Module {
 public:
  explicit Umt5FeedForwardImpl(const Umt5Config& c);
  at::Tensor forward(const at::Tensor& x);  // [B, L, dim] -> [B, L, dim]
  torch::nn::Sequential gate{nullptr};      // holds one Linear, so that its weight is named gate.0.weight as in Wan
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Umt5FeedForward);

class Umt5BlockImpl : public torch::nn::Module {
 public:
  explicit Umt5BlockImpl(const Umt5Config& c);
  // x [B, L, dim], padding [B, 1, 1, L] bool (true where the key is padding) -> [B, L, dim]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& padding);
  Umt5RmsNorm norm1{nullptr}, norm2{nullptr};
  Umt5Attention attn{nullptr};
  Umt5FeedForward ffn{nullptr};
  Umt5RelativeBias pos_embedding{nullptr};
};
TORCH_MODULE(Umt5Block);

class Umt5EncoderImpl : public torch::nn::Module {
 public:
  explicit Umt5EncoderImpl(Umt5Config config);

  // ids [B, L] int64, mask [B, L] (nonzero = token, 0 = padding) -> [B, L, dim] in the weights' dtype.
  // Padding takes no part in attention, and the output there is zero: Wan cuts each prompt's output to its length
  // and pads it back with zeros to text_len before the DiT reads it, and this returns that padded result directly.
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& mask);

  const Umt5Config& config() const { return config_; }

  torch::nn::Embedding token_embedding{nullptr};  // [vocab, dim]
  torch::nn::ModuleList blocks{nullptr};
  Umt5RmsNorm norm{nullptr};

 private:
  Umt5Config config_;
};
TORCH_MODULE(Umt5Encoder);

}  // namespace ms
