#include "motionstream/model/umt5.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace ms {

// ---------------------------------------------------------------- config

ShapeManifest Umt5Config::parameter_shapes() const {
  ShapeManifest out;
  out.push_back({"token_embedding.weight", {vocab, dim}});
  for (int64_t i = 0; i < num_layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    out.push_back({b + "norm1.weight", {dim}});
    for (const char* p : {"q", "k", "v"}) out.push_back({b + "attn." + p + ".weight", {attn_dim(), dim}});
    out.push_back({b + "attn.o.weight", {dim, attn_dim()}});
    out.push_back({b + "norm2.weight", {dim}});
    out.push_back({b + "ffn.gate.0.weight", {ffn_dim, dim}});
    out.push_back({b + "ffn.fc1.weight", {ffn_dim, dim}});
    out.push_back({b + "ffn.fc2.weight", {dim, ffn_dim}});
    out.push_back({b + "pos_embedding.embedding.weight", {num_buckets, num_heads}});
  }
  out.push_back({"norm.weight", {dim}});
  return out;
}

int64_t Umt5Config::parameter_count() const { return manifest_parameter_count(parameter_shapes()); }

void Umt5Config::validate() const {
  auto positive = [](const char* field, int64_t v) {
    if (v <= 0) throw std::invalid_argument(std::string("Umt5Config.") + field + " must be positive, got " + std::to_string(v));
  };
  positive("vocab", vocab);
  positive("dim", dim);
  positive("num_heads", num_heads);
  positive("head_dim", head_dim);
  positive("ffn_dim", ffn_dim);
  positive("num_layers", num_layers);
  positive("text_len", text_len);
  if (num_buckets < 4 || num_buckets % 2)
    throw std::invalid_argument("Umt5Config.num_buckets must be even and at least 4, got " + std::to_string(num_buckets));
  if (max_distance <= num_buckets / 4)
    throw std::invalid_argument("Umt5Config.max_distance must exceed num_buckets / 4, got " + std::to_string(max_distance));
}

Umt5Config umt5_preset(const std::string& name) {
  Umt5Config c;
  c.name = name;
  if (name == "umt5-xxl") return c;  // the defaults are umT5-XXL's encoder
  if (name == "umt5-tiny") {
    c.vocab = 300, c.dim = 64, c.num_heads = 4, c.head_dim = 16, c.ffn_dim = 160, c.num_layers = 2, c.text_len = 32;
    return c;
  }
  std::string known;
  for (const auto& n : umt5_preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown umT5 preset '" + name + "' (known: " + known + ")");
}

std::vector<std::string> umt5_preset_names() { return {"umt5-xxl", "umt5-tiny"}; }

// ---------------------------------------------------------------- relative positions

at::Tensor relative_position_buckets(int64_t query_len, int64_t key_len, int64_t num_buckets, int64_t max_distance) {
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  const at::Tensor relative = at::arange(key_len, i64).unsqueeze(0) - at::arange(query_len, i64).unsqueeze(1);  // [Lq, Lk]
  const int64_t half = num_buckets / 2;  // one half for keys at or before the query, one for keys after it
  const int64_t max_exact = half / 2;
  const at::Tensor side = (relative > 0).to(at::kLong) * half;
  const at::Tensor distance = relative.abs();
  // log(d / max_exact) / log(max_distance / max_exact) spreads the distances max_exact .. max_distance over the
  // remaining half - max_exact buckets; the cast truncates, as the reference does. clamp_min keeps log(0) out of the
  // branch torch::where does not pick.
  const at::Tensor scaled = at::log(distance.clamp_min(1).to(at::kFloat) / static_cast<double>(max_exact)) /
                            std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                            static_cast<double>(half - max_exact);
  const at::Tensor large = (scaled.to(at::kLong) + max_exact).clamp_max(half - 1);
  return side + at::where(distance < max_exact, distance, large);
}

// ---------------------------------------------------------------- modules

Umt5RmsNormImpl::Umt5RmsNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor Umt5RmsNormImpl::forward(const at::Tensor& x) {
  at::Tensor y = x * at::rsqrt(x.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true) + eps_);  // float32
  if (weight.scalar_type() == at::kHalf || weight.scalar_type() == at::kBFloat16) y = y.to(weight.scalar_type());
  return weight * y;
}

Umt5RelativeBiasImpl::Umt5RelativeBiasImpl(int64_t num_buckets, int64_t num_heads, int64_t max_distance)
    : num_buckets_(num_buckets), max_distance_(max_distance) {
  embedding = register_module("embedding", torch::nn::Embedding(num_buckets, num_heads));
}

at::Tensor Umt5RelativeBiasImpl::forward(int64_t query_len, int64_t key_len) {
  const at::Tensor buckets =
      relative_position_buckets(query_len, key_len, num_buckets_, max_distance_).to(embedding->weight.device());
  return embedding->forward(buckets).permute({2, 0, 1}).unsqueeze(0).contiguous();  // [Lq, Lk, H] -> [1, H, Lq, Lk]
}

Umt5AttentionImpl::Umt5AttentionImpl(const Umt5Config& c) : num_heads_(c.num_heads), head_dim_(c.head_dim) {
  auto linear = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  q = register_module("q", linear(c.dim, c.attn_dim()));
  k = register_module("k", linear(c.dim, c.attn_dim()));
  v = register_module("v", linear(c.dim, c.attn_dim()));
  o = register_module("o", linear(c.attn_dim(), c.dim));
}

at::Tensor Umt5AttentionImpl::forward(const at::Tensor& x, const at::Tensor& bias) {
  const int64_t B = x.size(0), L = x.size(1);
  auto heads = [&](const at::Tensor& t) { return t.view({B, L, num_heads_, head_dim_}).transpose(1, 2); };  // [B, H, L, Dh]
  const at::Tensor qh = heads(q->forward(x)), kh = heads(k->forward(x)), vh = heads(v->forward(x));
  // No 1/sqrt(head_dim): T5 folds that scale into its initialisation of q.
  const at::Tensor scores = at::matmul(qh, kh.transpose(-2, -1)) + bias;          // [B, H, L, L]
  const at::Tensor weights = at::softmax(scores.to(at::kFloat), -1).to(x.scalar_type());
  const at::Tensor out = at::matmul(weights, vh).transpose(1, 2).reshape({B, L, num_heads_ * head_dim_});
  return o->forward(out);  // [B, L, dim]
}

Umt5FeedForwardImpl::Umt5FeedForwardImpl(const Umt5Config& c) {
  auto linear = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  gate = register_module("gate", torch::nn::Sequential(linear(c.dim, c.ffn_dim)));
  fc1 = register_module("fc1", linear(c.dim, c.ffn_dim));
  fc2 = register_module("fc2", linear(c.ffn_dim, c.dim));
}

at::Tensor Umt5FeedForwardImpl::forward(const at::Tensor& x) {
  const at::Tensor g = at::gelu(gate->forward(x), "tanh");  // [B, L, ffn_dim]
  return fc2->forward(fc1->forward(x) * g);
}

Umt5BlockImpl::Umt5BlockImpl(const Umt5Config& c) {
  norm1 = register_module("norm1", Umt5RmsNorm(c.dim, c.eps));
  attn = register_module("attn", Umt5Attention(c));
  norm2 = register_module("norm2", Umt5RmsNorm(c.dim, c.eps));
  ffn = register_module("ffn", Umt5FeedForward(c));
  pos_embedding = register_module("pos_embedding", Umt5RelativeBias(c.num_buckets, c.num_heads, c.max_distance));
}

namespace {
// In float16 a residual sum can overflow; the reference clamps it back to finite values when it does.
at::Tensor clamp_if_half_overflows(const at::Tensor& x) {
  if (x.scalar_type() != at::kHalf || !at::isinf(x).any().item<bool>()) return x;
  const double limit = 65504.0 - 1000.0;
  return x.clamp(-limit, limit);
}

double lowest_finite(at::ScalarType type) {
  switch (type) {
    case at::kHalf: return -65504.0;
    case at::kBFloat16: return -3.3895313892515355e38;
    case at::kDouble: return std::numeric_limits<double>::lowest();
    default: return static_cast<double>(std::numeric_limits<float>::lowest());
  }
}
}  // namespace

at::Tensor Umt5BlockImpl::forward(const at::Tensor& x, const at::Tensor& padding) {
  const int64_t B = x.size(0), L = x.size(1);
  // Padding keys get the most negative finite value, as in the reference, rather than -inf: a row of nothing but
  // padding then stays finite.
  const at::Tensor bias = pos_embedding->forward(L, L)
                              .to(x.scalar_type())
                              .expand({B, -1, L, L})
                              .masked_fill(padding, lowest_finite(x.scalar_type()));  // [B, H, L, L]
  at::Tensor h = clamp_if_half_overflows(x + attn->forward(norm1->forward(x), bias));
  return clamp_if_half_overflows(h + ffn->forward(norm2->forward(h)));
}

Umt5EncoderImpl::Umt5EncoderImpl(Umt5Config config) : config_(std::move(config)) {
  config_.validate();
  token_embedding = register_module("token_embedding", torch::nn::Embedding(config_.vocab, config_.dim));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.num_layers; ++i) blocks->push_back(Umt5Block(config_));
  norm = register_module("norm", Umt5RmsNorm(config_.dim, config_.eps));
}

at::Tensor Umt5EncoderImpl::forward(const at::Tensor& ids, const at::Tensor& mask) {
  TORCH_CHECK(ids.dim() == 2 && mask.sizes() == ids.sizes(), "Umt5Encoder: ids and mask must both be [B, L], got ",
              ids.sizes(), " and ", mask.sizes());
  at::Tensor x = token_embedding->forward(ids);  // [B, L, dim]
  const at::Tensor keep = mask.ne(0);            // [B, L]
  const at::Tensor padding = keep.logical_not().view({ids.size(0), 1, 1, ids.size(1)});  // [B, 1, 1, L]
  for (const auto& block : *blocks) x = block->as<Umt5Block>()->forward(x, padding);
  x = norm->forward(x);
  return x * keep.unsqueeze(-1).to(x.scalar_type());  // zeros at padding, as Wan hands it to the DiT
}

}  // namespace ms
