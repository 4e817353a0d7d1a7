#include "motionstream/model/clip_vision.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>

#include <cmath>
#include <stdexcept>

namespace ms {

// ---------------------------------------------------------------- config

ShapeManifest ClipVisionConfig::parameter_shapes() const {
  // libtorch lists a module's own parameters before its children's: the embeddings and head first.
  ShapeManifest out;
  out.push_back({"cls_embedding", {1, 1, dim}});
  out.push_back({"pos_embedding", {1, tokens(), dim}});
  out.push_back({"head", {dim, out_dim}});
  out.push_back({"patch_embedding.weight", {dim, 3, patch_size, patch_size}});
  out.push_back({"pre_norm.weight", {dim}});
  out.push_back({"pre_norm.bias", {dim}});
  for (int64_t i = 0; i < num_layers; ++i) {
    const std::string b = "transformer." + std::to_string(i) + ".";
    out.push_back({b + "norm1.weight", {dim}});
    out.push_back({b + "norm1.bias", {dim}});
    out.push_back({b + "attn.to_qkv.weight", {3 * dim, dim}});
    out.push_back({b + "attn.to_qkv.bias", {3 * dim}});
    out.push_back({b + "attn.proj.weight", {dim, dim}});
    out.push_back({b + "attn.proj.bias", {dim}});
    out.push_back({b + "norm2.weight", {dim}});
    out.push_back({b + "norm2.bias", {dim}});
    out.push_back({b + "mlp.0.weight", {mlp_dim, dim}});
    out.push_back({b + "mlp.0.bias", {mlp_dim}});
    out.push_back({b + "mlp.2.weight", {dim, mlp_dim}});
    out.push_back({b + "mlp.2.bias", {dim}});
  }
  out.push_back({"post_norm.weight", {dim}});
  out.push_back({"post_norm.bias", {dim}});
  return out;
}

int64_t ClipVisionConfig::parameter_count() const { return manifest_parameter_count(parameter_shapes()); }

void ClipVisionConfig::validate() const {
  auto positive = [](const char* field, int64_t v) {
    if (v <= 0)
      throw std::invalid_argument(std::string("ClipVisionConfig.") + field + " must be positive, got " + std::to_string(v));
  };
  positive("image_size", image_size);
  positive("patch_size", patch_size);
  positive("dim", dim);
  positive("num_heads", num_heads);
  positive("mlp_dim", mlp_dim);
  positive("num_layers", num_layers);
  positive("out_dim", out_dim);
  if (image_size % patch_size)
    throw std::invalid_argument("ClipVisionConfig.image_size " + std::to_string(image_size) +
                                " is not a multiple of patch_size " + std::to_string(patch_size));
  if (dim % num_heads)
    throw std::invalid_argument("ClipVisionConfig.dim " + std::to_string(dim) + " is not a multiple of num_heads " +
                                std::to_string(num_heads));
  if (output_blocks < 1 || output_blocks > num_layers)
    throw std::invalid_argument("ClipVisionConfig.output_blocks must be in 1.." + std::to_string(num_layers) + ", got " +
                                std::to_string(output_blocks));
  for (double s : std)
    if (!(s > 0)) throw std::invalid_argument("ClipVisionConfig.std must be positive, got " + std::to_string(s));
}

ClipVisionConfig clip_vision_preset(const std::string& name) {
  ClipVisionConfig c;
  c.name = name;
  if (name == "clip-vit-h-14") return c;  // the defaults are Wan's ViT-H/14
  if (name == "clip-tiny") {
    c.image_size = 28, c.patch_size = 7, c.dim = 32, c.num_heads = 4, c.mlp_dim = 128, c.num_layers = 3;
    c.output_blocks = 2, c.out_dim = 24;
    return c;
  }
  std::string known;
  for (const auto& n : clip_vision_preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown CLIP vision preset '" + name + "' (known: " + known + ")");
}

std::vector<std::string> clip_vision_preset_names() { return {"clip-vit-h-14", "clip-tiny"}; }

// ---------------------------------------------------------------- preprocessing

at::Tensor clip_preprocess(const at::Tensor& image, const ClipVisionConfig& config) {
  if (image.dim() != 3 || image.size(0) != 3 || image.size(1) < 1 || image.size(2) < 1)
    throw std::invalid_argument("clip_preprocess: image must be RGB [3, H, W], got " + c10::str(image.sizes()));
  at::Tensor x;  // [1, 3, H, W] float32 in [0, 1]
  if (image.scalar_type() == at::kByte)
    x = image.to(at::kFloat).div(255.0);
  else if (at::isFloatingType(image.scalar_type()))
    x = image.to(at::kFloat);
  else
    throw std::invalid_argument("clip_preprocess: image must be uint8 or floating point, got " +
                                std::string(c10::toString(image.scalar_type())));
  x = x.unsqueeze(0).mul(2.0).sub(1.0);  // Wan's [-1, 1] image
  const int64_t s = config.image_size;
  x = at::upsample_bicubic2d(x, {s, s}, /*align_corners=*/false).mul(0.5).add(0.5);  // [1, 3, s, s]
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor mean = at::tensor({config.mean[0], config.mean[1], config.mean[2]}, opts).view({1, 3, 1, 1});
  const at::Tensor deviation = at::tensor({config.std[0], config.std[1], config.std[2]}, opts).view({1, 3, 1, 1});
  return (x - mean) / deviation;
}

// ---------------------------------------------------------------- modules

namespace {

// Wan's LayerNorm: computed in float32 whatever the weights' dtype, then cast back to the input's.
at::Tensor layer_norm_f32(const torch::nn::LayerNorm& norm, const at::Tensor& x) {
  return at::layer_norm(x.to(at::kFloat), norm->options.normalized_shape(), norm->weight.to(at::kFloat),
                        norm->bias.to(at::kFloat), norm->options.eps())
      .to(x.scalar_type());
}

torch::nn::LayerNorm layer_norm(int64_t dim, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps));
}

}  // namespace

ClipAttentionImpl::ClipAttentionImpl(const ClipVisionConfig& c) : num_heads_(c.num_heads) {
  to_qkv = register_module("to_qkv", torch::nn::Linear(c.dim, 3 * c.dim));
  proj = register_module("proj", torch::nn::Linear(c.dim, c.dim));
}

at::Tensor ClipAttentionImpl::forward(const at::Tensor& x) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), Dh = D / num_heads_;
  const at::Tensor qkv = to_qkv->forward(x).view({B, L, 3, num_heads_, Dh}).permute({2, 0, 3, 1, 4});  // [3, B, H, L, Dh]
  const at::Tensor q = qkv[0], k = qkv[1], v = qkv[2];
  const at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(Dh));  // [B, H, L, L]
  const at::Tensor weights = at::softmax(scores.to(at::kFloat), -1).to(x.scalar_type());
  const at::Tensor out = at::matmul(weights, v).transpose(1, 2).reshape({B, L, D});  // heads back side by side
  return proj->forward(out);
}

ClipBlockImpl::ClipBlockImpl(const ClipVisionConfig& c) {
  norm1 = register_module("norm1", layer_norm(c.dim, c.eps));
  attn = register_module("attn", ClipAttention(c));
  norm2 = register_module("norm2", layer_norm(c.dim, c.eps));
  mlp = register_module("mlp", torch::nn::Sequential(torch::nn::Linear(c.dim, c.mlp_dim), torch::nn::GELU(),
                                                     torch::nn::Linear(c.mlp_dim, c.dim)));
}

at::Tensor ClipBlockImpl::forward(const at::Tensor& x) {
  const at::Tensor h = x + attn->forward(layer_norm_f32(norm1, x));
  return h + mlp->forward(layer_norm_f32(norm2, h));
}

ClipVisionEncoderImpl::ClipVisionEncoderImpl(ClipVisionConfig config) : config_(std::move(config)) {
  config_.validate();
  const ClipVisionConfig& c = config_;
  const double gain = 1.0 / std::sqrt(static_cast<double>(c.dim));  // the reference's initial scale
  cls_embedding = register_parameter("cls_embedding", at::randn({1, 1, c.dim}) * gain);
  pos_embedding = register_parameter("pos_embedding", at::randn({1, c.tokens(), c.dim}) * gain);
  head = register_parameter("head", at::randn({c.dim, c.out_dim}) * gain);
  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(3, c.dim, c.patch_size).stride(c.patch_size).bias(false)));
  pre_norm = register_module("pre_norm", layer_norm(c.dim, c.eps));
  transformer = register_module("transformer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) transformer->push_back(ClipBlock(c));
  post_norm = register_module("post_norm", layer_norm(c.dim, c.eps));
}

at::Tensor ClipVisionEncoderImpl::forward(const at::Tensor& images) {
  const ClipVisionConfig& c = config_;
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) != c.image_size || images.size(3) != c.image_size)
    throw std::invalid_argument("ClipVisionEncoder (" + c.name + "): images must be [B, 3, " +
                                std::to_string(c.image_size) + ", " + std::to_string(c.image_size) + "], got " +
                                c10::str(images.sizes()));
  const int64_t B = images.size(0);
  at::Tensor x = patch_embedding->forward(images.to(patch_embedding->weight.scalar_type()));  // [B, dim, g, g]
  x = x.flatten(2).transpose(1, 2);                                                          // [B, g*g, dim] row-major
  x = at::cat({cls_embedding.expand({B, 1, c.dim}), x}, 1) + pos_embedding;                  // [B, tokens, dim]
  x = layer_norm_f32(pre_norm, x);
  for (int64_t i = 0; i < c.output_blocks; ++i) x = transformer[i]->as<ClipBlock>()->forward(x);
  return x;  // [B, tokens, dim]
}

}  // namespace ms
