// WanDiT: the Wan2.1 diffusion transformer (SPEC.md section 2), with parameter names identical to
// Wan2.1's state dict so that a published checkpoint loads unchanged, plus the MotionStream track head.
//
// One forward: [noisy | I2V condition | track features] -> 2x2 patches -> tokens (f, h, w row-major)
//   -> N blocks of (modulated self-attention with 3D RoPE, text cross-attention, modulated FFN)
//   -> head with 2-way modulation -> velocity in latent space.
// Timesteps are per latent frame, so every modulation vector is per frame.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <vector>

#include "motionstream/model/attention.h"
#include "motionstream/model/dit_config.h"
#include "motionstream/model/track_head.h"

namespace ms {

// Image keys/values of the CLIP branch for every block: computed once per session (one first frame).
struct ImageKv {
  std::vector<at::Tensor> k, v;  // per block [B, Li, H, d]
  bool empty() const { return k.empty(); }
};

// Text keys/values for every block's cross-attention: computed once per prompt and reused by every pass. Models
// with the CLIP image branch (DitConfig::image_tokens > 0) also need `image` (WanDiTImpl::encode_image); a new
// prompt keeps the image's.
struct TextKv {
  std::vector<at::Tensor> k, v;  // per block [B, Lt, H, d]
  ImageKv image;                 // empty for models without the CLIP branch
};

struct DitInput {
  at::Tensor noisy;      // [B, C, F, H, W] latent at noise level t (H, W even)
  at::Tensor timesteps;  // [B, F] in [0, 1000], one per latent frame
  at::Tensor condition;  // [B, 4 + C, F, H, W] first-frame mask + first-frame latent (image_condition models)
  at::Tensor tracks;     // [B, 4 * id_dim, F, H, W] packed track raster; undefined = no motion (all zero)
};

// Sinusoidal timestep embedding: t -> [cos(t w_i) | sin(t w_i)], w_i = 10000^(-i/half). [...] -> [..., dim]
at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim);

// Token layout of the patch embedding (a (1,2,2) Conv3d as one matmul): [B, C, F, H, W] -> [B, F*h*w, C*4],
// features ordered (c, ph, pw) like the flattened Conv3d kernel.
at::Tensor patchify(const at::Tensor& x);
// Token layout of the head: [B, F*h*w, 4*C] with features ordered (ph, pw, c) -> [B, C, F, H, W].
at::Tensor unpatchify(const at::Tensor& tokens, const TokenGrid& grid, int64_t channels);

// RMSNorm over the last dim with a learned weight, computed in float32.
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

// Self- or cross-attention projections: q, k, v, o with bias; RMS norm on q and k over the full dim. With
// `image_branch` (Wan's I2V cross-attention) also k_img, v_img and norm_k_img for the CLIP image tokens.
class AttentionProjImpl : public torch::nn::Module {
 public:
  AttentionProjImpl(int64_t dim, int64_t heads, double eps, bool image_branch = false);
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  RmsNorm norm_q{nullptr}, norm_k{nullptr};
  torch::nn::Linear k_img{nullptr}, v_img{nullptr};  // only with the image branch
  RmsNorm norm_k_img{nullptr};
  int64_t heads;
};
TORCH_MODULE(AttentionProj);

class DitBlockImpl : public torch::nn::Module {
 public:
  explicit DitBlockImpl(const DitConfig& c);
  // x: [B, L, D], e0: [B, F, 6, D] -> [B, L, D]. image_k/v: [B, Li, H, d], undefined without the image branch;
  // Wan sums the text and the image attention before the output projection `o`.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& e0, const TokenGrid& grid, const at::Tensor& text_k,
                     const at::Tensor& text_v, SelfAttention& self_attention, int64_t index,
                     const at::Tensor& image_k = {}, const at::Tensor& image_v = {});
  // Cross-attention keys/values of an embedded text context [B, Lt, D] -> ([B, Lt, H, d], [B, Lt, H, d])
  std::pair<at::Tensor, at::Tensor> text_kv(const at::Tensor& context);
  // The same for embedded image tokens [B, Li, D] through k_img, norm_k_img, v_img.
  std::pair<at::Tensor, at::Tensor> image_kv(const at::Tensor& context);

  at::Tensor modulation;  // [1, 6, D]
  AttentionProj self_attn{nullptr}, cross_attn{nullptr};
  torch::nn::LayerNorm norm3{nullptr};
  torch::nn::Sequential ffn{nullptr};

 private:
  int64_t dim_;
  double eps_;
};
TORCH_MODULE(DitBlock);

class DitHeadImpl : public torch::nn::Module {
 public:
  explicit DitHeadImpl(const DitConfig& c);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& e, const TokenGrid& grid);  // -> [B, L, out]
  at::Tensor modulation;  // [1, 2, D]
  torch::nn::Linear head{nullptr};

 private:
  double eps_;
};
TORCH_MODULE(DitHead);

// Wan's MLPProj over CLIP tokens: proj = LayerNorm(Ci), Linear(Ci, Ci), GELU (exact), Linear(Ci, D), LayerNorm(D)
// (both LayerNorms affine, eps 1e-5 as torch.nn.LayerNorm's default). [B, Li, Ci] -> [B, Li, D]
class ImageEmbeddingImpl : public torch::nn::Module {
 public:
  ImageEmbeddingImpl(int64_t image_dim, int64_t dim);
  at::Tensor forward(const at::Tensor& tokens) { return proj->forward(tokens); }
  torch::nn::Sequential proj{nullptr};
};
TORCH_MODULE(ImageEmbedding);

class WanDiTImpl : public torch::nn::Module {
 public:
  explicit WanDiTImpl(const DitConfig& config);
  const DitConfig& config() const { return config_; }

  // Text context [B, Lt, text_dim] (Lt <= text_len; zero-padded to text_len like Wan) -> per-block K/V.
  TextKv encode_text(const at::Tensor& text);
  // CLIP image tokens [B, image_tokens, image_token_dim] -> per-block image K/V (models with the image branch only).
  ImageKv encode_image(const at::Tensor& image_tokens);
  // -> predicted velocity (noise - x0), [B, C, F, H, W]. A model with the image branch requires text.image.
  at::Tensor forward(const DitInput& input, const TextKv& text, SelfAttention& self_attention);

  torch::nn::Conv3d patch_embedding{nullptr};  // weight [D, Cin, 1, 2, 2]: applied as a matmul on patches
  torch::nn::Sequential text_embedding{nullptr}, time_embedding{nullptr}, time_projection{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  DitHead head{nullptr};
  ImageEmbedding img_emb{nullptr};  // only when config.image_tokens > 0
  TrackHead track_head{nullptr};    // only when config.track_channels > 0

 private:
  at::Tensor assemble_input(const DitInput& input);  // -> [B, Cin, F, H, W]
  DitConfig config_;
};
TORCH_MODULE(WanDiT);

// Initialisation for training from scratch (Wan's recipe): Xavier-uniform linears and patch embedding, zero
// biases, N(0, 0.02) text/time embeddings, zero head, zero track-channel patch weights.
void init_dit_weights(WanDiTImpl& model, uint64_t seed);
// The MotionStream initialisation of new input channels: zero the patch-embedding weights of the track channels.
void zero_track_input_weights(WanDiTImpl& model);

// The I2V condition for latent frames [first_frame, first_frame + frames) of a video whose first latent frame is
// image_latent [B, C, H, W]: mask 1 and the latent on frame 0, zeros elsewhere. -> [B, 4 + C, frames, H, W]
at::Tensor image_condition(const at::Tensor& image_latent, int64_t first_frame, int64_t frames);
// The same written in place into out [B, 4 + C, frames, H, W] (its storage is kept).
void write_image_condition(at::Tensor& out, const at::Tensor& image_latent, int64_t first_frame);
// A whole clip's condition [B, 4 + C, T, H, W] (frame 0 first) without what the tracks put into it (latent copy,
// warp hint): the later frames' latents zeroed, as in a training sample whose tracks were dropped. A new tensor.
at::Tensor condition_without_motion(const at::Tensor& condition);

}  // namespace ms
