// ClipVisionEncoder: the vision tower of open-clip's XLM-RoBERTa ViT-H/14, which Wan2.1's image-to-video models read
// the input image through (257 tokens of width 1280 that the DiT cross-attends to beside the text).
//
// A pre-norm ViT: 14x14 patches (a bias-free Conv2d) in row-major order after one class token, plus learned
// position embeddings, then LayerNorm (`pre_norm`), then blocks of
//   x += proj(Attn(LN(x)))   (q, k, v from one fused `to_qkv`, scale 1/sqrt(head_dim), no mask)
//   x += mlp(LN(x))          (Linear, GELU (erf, not the tanh or quick approximation), Linear)
// with LayerNorms of eps 1e-5 computed in float32. Wan's I2V stops after the second-to-last block (block 31 of 32)
// and applies neither `post_norm` nor `head`; the module still holds them and the last block so that the published
// file loads whole (config.output_blocks says how many blocks forward runs).
//
// Parameter names are those under `visual.` in Wan's models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth
// (patch_embedding.weight, cls_embedding, pos_embedding, transformer.N.attn.to_qkv.weight, ...); other layouts are
// converted by clip_vision_checkpoint.h.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "motionstream/model/shape_manifest.h"

namespace ms {

struct ClipVisionConfig {
  std::string name = "custom";
  int64_t image_size = 224;
  int64_t patch_size = 14;
  int64_t dim = 1280;
  int64_t num_heads = 16;
  int64_t mlp_dim = 5120;
  int64_t num_layers = 32;
  int64_t output_blocks = 31;  // blocks forward runs: Wan's I2V uses the output of block 31 of 32 (use_31_block)
  int64_t out_dim = 1024;      // width of `head`, the CLIP embedding projection (unused by the I2V tokens)
  double eps = 1e-5;
  // Wan's (and OpenAI CLIP's) normalisation of [0, 1] RGB.
  std::array<double, 3> mean = {0.48145466, 0.4578275, 0.40821073};
  std::array<double, 3> std = {0.26862954, 0.26130258, 0.27577711};

  int64_t grid() const { return image_size / patch_size; }      // 16 patches per side
  int64_t tokens() const { return grid() * grid() + 1; }        // 257: class token + patches
  int64_t head_dim() const { return dim / num_heads; }
  // Every parameter in the module's (Wan) naming, with its shape, in registration order. Allocates nothing.
  ShapeManifest parameter_shapes() const;
  int64_t parameter_count() const;
  void validate() const;  // throws std::invalid_argument naming the field
};

// "clip-vit-h-14" (Wan2.1's image encoder), "clip-tiny" (tests).
ClipVisionConfig clip_vision_preset(const std::string& name);
std::vector<std::string> clip_vision_preset_names();

// An RGB image as Wan's I2V pipeline hands it to CLIP: [3, H, W] (any size), uint8 in 0..255 or floating point in
// [0, 1] -> [1, 3, image_size, image_size] float32, resized bicubically (align_corners false, no antialiasing) to a
// square whatever the aspect ratio, then normalised per channel as (x - mean) / std. Wan resizes the image after
// mapping it to [-1, 1] and maps it back afterwards; that is the same up to float rounding, and done the same here.
at::Tensor clip_preprocess(const at::Tensor& image, const ClipVisionConfig& config);

class ClipAttentionImpl : public torch::nn::Module {
 public:
  explicit ClipAttentionImpl(const ClipVisionConfig& c);
  at::Tensor forward(const at::Tensor& x);  // [B, L, dim] -> [B, L, dim]
  torch::nn::Linear to_qkv{nullptr};        // [3 dim, dim]: rows are q, then k, then v, each head after head
  torch::nn::Linear proj{nullptr};
 private:
  int64_t num_heads_;
};
TORCH_MODULE(ClipAttention);

class ClipBlockImpl : public torch::nn::Module {
 public:
  explicit ClipBlockImpl(const ClipVisionConfig& c);
  at::Tensor forward(const at::Tensor& x);  // [B, L, dim] -> [B, L, dim]
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  ClipAttention attn{nullptr};
  torch::nn::Sequential mlp{nullptr};  // Linear, GELU, Linear: weights named mlp.0.*, mlp.2.* as in Wan
};
TORCH_MODULE(ClipBlock);

class ClipVisionEncoderImpl : public torch::nn::Module {
 public:
  explicit ClipVisionEncoderImpl(ClipVisionConfig config);

  // images [B, 3, image_size, image_size], normalised (clip_preprocess) -> [B, tokens, dim] in the weights' dtype:
  // the output of block `output_blocks`, as Wan's I2V reads it.
  at::Tensor forward(const at::Tensor& images);

  const ClipVisionConfig& config() const { return config_; }

  torch::nn::Conv2d patch_embedding{nullptr};  // [dim, 3, patch, patch], no bias
  at::Tensor cls_embedding;                    // [1, 1, dim]
  at::Tensor pos_embedding;                    // [1, tokens, dim]
  torch::nn::LayerNorm pre_norm{nullptr};
  torch::nn::ModuleList transformer{nullptr};  // num_layers ClipBlocks
  torch::nn::LayerNorm post_norm{nullptr};     // loaded, not applied (see above)
  at::Tensor head;                             // [dim, out_dim], loaded, not applied

 private:
  ClipVisionConfig config_;
};
TORCH_MODULE(ClipVisionEncoder);

}  // namespace ms
