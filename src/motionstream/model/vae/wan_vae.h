// WanVae: the Wan2.1 video autoencoder (SPEC.md section 6) in the published state-dict naming, so that
// Wan2.1_VAE.pth loads as it is.
//
// Conventions (Wan's own, used throughout this file): videos are [B, C, T, H, W], pixels in [-1, 1], latents are
// the raw encoder mean mu (not normalised; WanLatentCodec converts from/to the project's [B, F, 3, H, W] frames in
// [0, 1] and the normalised latents the diffusion model sees).
//
// Time layout: latent 0 stands for frame 0 alone, latent k >= 1 for frames 4k-3 .. 4k, so F = 1 + 4k frames
// <-> T = 1 + k latents. Every temporal convolution is causal (zero frames in front, none behind), so a frame never
// depends on later frames.
//
// Two ways through the same modules, which the tests hold equal:
//   whole-sequence (cache == nullptr): every layer sees the whole video at once, causal zero padding in front;
//   chunk-wise (with a WanFeatureCache): the encoder takes frame 0 alone, then 4 frames at a time; the decoder one
//   latent at a time. Each temporal conv keeps the last 2 input frames it saw, so memory stays bounded whatever the
//   length (this is how Wan runs, and what WanStreamingDecoder exposes).
// The first chunk is special in the temporal resamplers: frame 0 passes through without the time convolution
// (the encoder keeps it as latent 0; the decoder makes 1 frame from latent 0, not 4), and the decoder's temporal
// upsampling convolution never sees it.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>

#include <vector>

#include "motionstream/model/vae/wan_vae_config.h"

namespace ms {

// Per-layer memory of a chunk-wise pass: each temporal layer owns one slot, visited in the same order every chunk.
class WanFeatureCache {
 public:
  void begin_chunk() { next_ = 0; }  // call before each chunk
  void clear() { slots_.clear(), next_ = 0; }
  at::Tensor& next_slot();  // undefined until the layer has seen its first chunk
  size_t size() const { return slots_.size(); }

 private:
  std::vector<at::Tensor> slots_;
  size_t next_ = 0;
};

// A 3D convolution that pads time only in front: output frame t sees input frames t-(kt-1) .. t. Spatial padding
// is symmetric (k/2). With `pad_time` false no frames are added (the temporal downsampler pads by hand).
class CausalConv3dImpl : public torch::nn::Module {
 public:
  CausalConv3dImpl(int64_t in, int64_t out, int64_t kernel_t, int64_t kernel_s, int64_t stride_t = 1, bool pad_time = true);
  // Whole sequence: x [B, in, T, H, W] -> [B, out, T', H, W].
  at::Tensor forward(const at::Tensor& x);
  // One chunk: `past` holds the last input frames of the earlier chunks (undefined before the first chunk: zeros
  // stand in), and is updated to the last kernel_t - 1 frames seen.
  at::Tensor forward(const at::Tensor& x, at::Tensor& past);
  int64_t past_frames() const { return pad_time_ ? kernel_t_ - 1 : 0; }

  at::Tensor weight, bias;  // [out, in, kt, k, k], [out]

 private:
  at::Tensor convolve(const at::Tensor& x, int64_t zero_frames);
  int64_t kernel_t_, kernel_s_, stride_t_;
  bool pad_time_;
};
TORCH_MODULE(CausalConv3d);

// Wan's RMS norm: x / ||x||_2 over channels * sqrt(C) * gamma, at every position. gamma is [C, 1, 1, 1] for videos
// ([B, C, T, H, W]) and [C, 1, 1] for images ([N, C, H, W]).
class WanRmsNormImpl : public torch::nn::Module {
 public:
  WanRmsNormImpl(int64_t channels, bool images);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor gamma;
};
TORCH_MODULE(WanRmsNorm);

// norm, SiLU, conv 3x3x3, norm, SiLU, conv 3x3x3, plus a (1x1x1 conv) shortcut.
// Stored as residual.{0,2,3,6} (Wan's Sequential indices; 1, 4, 5 are SiLU, SiLU, dropout) and shortcut.
class WanResidualBlockImpl : public torch::nn::Module {
 public:
  WanResidualBlockImpl(int64_t in, int64_t out);
  at::Tensor forward(const at::Tensor& x, WanFeatureCache* cache);  // [B, in, T, H, W] -> [B, out, T, H, W]
  WanRmsNorm norm1{nullptr}, norm2{nullptr};
  CausalConv3d conv1{nullptr}, conv2{nullptr}, shortcut{nullptr};  // shortcut only when in != out
};
TORCH_MODULE(WanResidualBlock);

// Single-head self-attention over the positions of each frame separately (no attention across time).
class WanAttentionBlockImpl : public torch::nn::Module {
 public:
  explicit WanAttentionBlockImpl(int64_t dim);
  at::Tensor forward(const at::Tensor& x);  // [B, C, T, H, W] -> same
  WanRmsNorm norm{nullptr};
  torch::nn::Conv2d to_qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(WanAttentionBlock);

// Between stages. Spatial part per frame (stored as resample.1):
//   downsample: zero pad right and bottom by 1, conv 3x3 stride 2 (dim -> dim);
//   upsample:   nearest 2x, conv 3x3 (dim -> dim / 2).
// Temporal part (time_conv), only in the *3d modes:
//   downsample3d: conv over 3 frames with stride 2 after the spatial part: 1 + 2n frames -> 1 + n;
//   upsample3d: causal conv dim -> 2 * dim over 3 frames before the spatial part, each output frame split into two
//               (channels [0, dim) first, [dim, 2 dim) second): 1 + n frames -> 1 + 2n.
// In both, frame 0 passes through untouched and the time convolution works on frames 1.. only (for downsampling,
// frame 0 still leads the window of frames 1 and 2).
class WanResampleImpl : public torch::nn::Module {
 public:
  enum class Mode { Upsample2d, Upsample3d, Downsample2d, Downsample3d };
  WanResampleImpl(int64_t dim, Mode mode);
  at::Tensor forward(const at::Tensor& x, WanFeatureCache* cache);
  torch::nn::Conv2d conv{nullptr};
  CausalConv3d time_conv{nullptr};  // *3d modes only
  Mode mode;

 private:
  at::Tensor upsample_time(const at::Tensor& x, WanFeatureCache* cache);    // before the spatial part
  at::Tensor downsample_time(const at::Tensor& x, WanFeatureCache* cache);  // after the spatial part
};
TORCH_MODULE(WanResample);

// frames [B, 3, F, H, W] -> [B, 2 z_dim, T, H/8, W/8] (mu and log_var before the 1x1x1 conv1)
class WanEncoder3dImpl : public torch::nn::Module {
 public:
  explicit WanEncoder3dImpl(const WanVaeConfig& c);
  at::Tensor forward(const at::Tensor& x, WanFeatureCache* cache);
  CausalConv3d conv1{nullptr}, head_conv{nullptr};
  torch::nn::ModuleList downsamples{nullptr}, middle{nullptr};  // WanResidualBlock / WanResample / WanAttentionBlock
  WanRmsNorm head_norm{nullptr};
};
TORCH_MODULE(WanEncoder3d);

// latents [B, z_dim, T, h, w] (after the 1x1x1 conv2) -> frames [B, 3, 1 + 4(T-1), 8h, 8w]
class WanDecoder3dImpl : public torch::nn::Module {
 public:
  explicit WanDecoder3dImpl(const WanVaeConfig& c);
  at::Tensor forward(const at::Tensor& x, WanFeatureCache* cache);
  CausalConv3d conv1{nullptr}, head_conv{nullptr};
  torch::nn::ModuleList middle{nullptr}, upsamples{nullptr};
  WanRmsNorm head_norm{nullptr};
};
TORCH_MODULE(WanDecoder3d);

class WanVaeImpl : public torch::nn::Module {
 public:
  explicit WanVaeImpl(const WanVaeConfig& config);
  const WanVaeConfig& config() const { return config_; }

  // frames [B, 3, F, H, W] in [-1, 1], F = 1 + 4k, H and W multiples of 8 -> mu [B, z_dim, 1 + k, H/8, W/8].
  // Chunk-wise as Wan runs it (frame 0, then 4 frames at a time): memory independent of F.
  at::Tensor encode(const at::Tensor& frames);
  // The same result in one whole-sequence pass (memory grows with F; for tests and short clips).
  at::Tensor encode_whole(const at::Tensor& frames);
  // mu [B, z_dim, T, h, w] -> frames [B, 3, 1 + 4(T-1), 8h, 8w], roughly in [-1, 1] (not clamped).
  // One latent at a time through a WanStreamingDecoder.
  at::Tensor decode(const at::Tensor& latents);
  // The same result in one whole-sequence pass.
  at::Tensor decode_whole(const at::Tensor& latents);

  WanEncoder3d encoder{nullptr};
  CausalConv3d conv1{nullptr}, conv2{nullptr};  // 1x1x1: after the encoder (2 z -> 2 z), before the decoder (z -> z)
  WanDecoder3d decoder{nullptr};

 private:
  void check_frames(const at::Tensor& frames, const char* who) const;
  WanVaeConfig config_;
};
TORCH_MODULE(WanVae);

// Decodes latents one at a time, keeping every temporal layer's last input frames: latent 0 gives 1 frame, each
// later latent 4. Equals WanVae::decode_whole of the whole sequence. One instance per stream; the model is shared.
class WanStreamingDecoder {
 public:
  explicit WanStreamingDecoder(WanVae vae);
  // latent [B, z_dim, h, w] (raw mu, not normalised; any float dtype, run in the model's) -> frames
  // [B, 3, n, 8h, 8w] in the model's dtype, roughly in [-1, 1] (not clamped), n = 1 for the first latent after
  // reset(), else 4.
  at::Tensor push(const at::Tensor& latent);
  void reset();
  int64_t latents_seen() const { return latents_seen_; }

 private:
  WanVae vae_;
  WanFeatureCache cache_;
  int64_t latents_seen_ = 0;
};

}  // namespace ms
