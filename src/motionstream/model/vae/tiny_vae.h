// TinyVae: a TAEHV-style video autoencoder (SPEC.md section 6) with 4x temporal and 8x spatial compression.
//
// Encoder: conv 3->E, ReLU, then three stages of [TPool (pack `stride` frames into channels, 1x1 conv), strided
// 3x3 conv, 3 MemBlocks] with temporal strides (2, 2, 1), then conv E->latent.
// Decoder: tanh clamp, conv latent->W0, ReLU, 3 MemBlocks, then three stages of [2x nearest upsample, TGrow (1x1
// conv C -> stride*C, split into `stride` frames; temporal strides 1, 2, 2), conv to the next width, 3 MemBlocks
// (none after the last)], ReLU, conv -> RGB.
// MemBlock(x, past) = ReLU(conv(ReLU(conv(ReLU(conv([x, past]))))) + skip(x)), past = the block's input one step
// earlier (zeros at the first step): the only state a streaming decoder keeps.
//
// Frame layout (the Wan convention, as the track raster): latent 0 stands for frame 0 alone, latent k >= 1 for
// frames 4k-3 .. 4k. The encoder pads the front with three copies of frame 0; the decoder drops the first three of
// the 4T frames it makes. So F = 1 + 4k frames <-> T = 1 + k latents.
// Module and parameter names follow the public TAEHV layout (encoder.N / decoder.N by sequence index).
//
// Linear path (config.linear_path, off in the public presets): a 1x1 conv from the 4 x 3 x 8 x 8 pixels a latent
// pixel stands for to that latent pixel, and a k x k conv back (config.linear_decoder_kernel: each block of pixels
// drawn from its latent pixel and k*k - 1 neighbours), added to the convolutional encoder's latent and decoder's
// frames. Initialised from the principal components of world clips (fit_linear_path), it makes the autoencoder start
// as the best linear codec of its size; the convolutional paths then learn what a linear codec cannot. A decoder
// kernel of 3 lets each block borrow from its neighbours' components, which a 1x1 decoder cannot: smoother block
// edges, same latent space.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace ms {

struct TinyVaeConfig {
  std::string name = "custom";
  int64_t latent_channels = 16;
  int64_t encoder_width = 64;
  std::vector<int64_t> decoder_widths{256, 128, 64, 64};  // stage widths and the final conv width
  bool linear_path = false;
  int64_t linear_decoder_kernel = 1;  // odd; see above
  void validate() const;
};
// "taehv-wan": the public Wan preset (16 latent channels, 64 / 256-128-64-64); "cpu": the bundled CPU preset.
TinyVaeConfig tiny_vae_preset(const std::string& name);
void to_json(nlohmann::json& j, const TinyVaeConfig& c);
void from_json(const nlohmann::json& j, TinyVaeConfig& c);

class MemBlockImpl : public torch::nn::Module {
 public:
  MemBlockImpl(int64_t in, int64_t out);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& past);  // [N, C, H, W] each
  torch::nn::Sequential conv{nullptr};
  torch::nn::Conv2d skip{nullptr};  // only when in != out
};
TORCH_MODULE(MemBlock);

// Frames <-> channels: TPool packs `stride` consecutive frames into channels then 1x1-convs back to C;
// TGrow 1x1-convs C -> stride*C and unpacks into `stride` consecutive frames.
class TPoolImpl : public torch::nn::Module {
 public:
  TPoolImpl(int64_t channels, int64_t stride);
  at::Tensor forward(const at::Tensor& x);  // [N*T, C, H, W] -> [N*T/stride, C, H, W]
  torch::nn::Conv2d conv{nullptr};
  int64_t stride;
};
TORCH_MODULE(TPool);

class TGrowImpl : public torch::nn::Module {
 public:
  TGrowImpl(int64_t channels, int64_t stride);
  at::Tensor forward(const at::Tensor& x);  // [N*T, C, H, W] -> [N*T*stride, C, H, W]
  torch::nn::Conv2d conv{nullptr};
  int64_t stride;
};
TORCH_MODULE(TGrow);

class TinyVaeImpl : public torch::nn::Module {
 public:
  explicit TinyVaeImpl(const TinyVaeConfig& config);
  const TinyVaeConfig& config() const { return config_; }

  // frames [N, F, 3, H, W] in [0, 1], F = 1 + 4k, H and W multiples of 8 -> latents [N, 1 + k, C, H/8, W/8]
  at::Tensor encode(const at::Tensor& frames);
  // latents [N, T, C, h, w] -> frames [N, 4T - 3, 3, 8h, 8w] (all time steps at once), clamped to [0, 1]
  // unless `clamp` is false (training wants the raw output's gradient)
  at::Tensor decode(const at::Tensor& latents, bool clamp = true);

  torch::nn::ModuleList encoder{nullptr}, decoder{nullptr};
  // config.linear_path only: a [C, 4*3*64] 1x1 conv and a [4*3*64, C] k x k conv, channel (frame j, colour c, row y,
  // column x) = ((j * 3 + c) * 8 + y) * 8 + x, as pixel_unshuffle packs it.
  torch::nn::Conv2d encoder_linear{nullptr}, decoder_linear{nullptr};
  // The linear path alone (both need config.linear_path). padded: [N, 4T, 3, H, W] (frame 0 already repeated) ->
  // [N, T, C, H/8, W/8]; latents [N, T, C, h, w] -> [N, 4T, 3, 8h, 8w] (before dropping the three leading frames).
  at::Tensor linear_encode(const at::Tensor& padded);
  at::Tensor linear_decode(const at::Tensor& latents);
  // The encoder's weights, the linear path's half included.
  std::vector<at::Tensor> encoder_parameters() const;

 private:
  TinyVaeConfig config_;
};
TORCH_MODULE(TinyVae);

// A copy of `narrow` whose decoder has the (each at least as large) `decoder_widths`, computing exactly what
// `narrow` computes: the old channels keep their weights, and no old channel reads a new one until training moves
// those weights off zero (the new channels' own weights start random, so they do get gradients). The encoder is
// copied as it is. Lets a decoder grow without forgetting what it learnt. Throws naming the width that shrinks.
TinyVae widen_decoder(TinyVae& narrow, const std::vector<int64_t>& decoder_widths);

// A copy of `vae` with a linear path whose decoder kernel is `decoder_kernel`: a new path is random until
// fit_linear_path; an existing one keeps its weights, its decoder's at the centre tap of the new kernel (so the copy
// computes what `vae` computes until fit_linear_decoder). Throws if the kernel would shrink.
TinyVae with_linear_path(TinyVae& vae, int64_t decoder_kernel = 1);

// Makes the autoencoder the best linear codec of its size for `clips` [N, F, 3, H, W] (F = 1 + 4k): the linear path
// becomes the projection onto the top `latent_channels` principal components of the 4 x 3 x 8 x 8 pixel groups the
// encoder sees (frame 0 repeated four times, as encode pads it), each component scaled to standard deviation
// `latent_std` in the latent; the convolutional paths' last convs are zeroed so they add nothing until trained. The
// linear decoder is the components' reconstruction; a larger kernel is then fitted by fit_linear_decoder.
// Needs config.linear_path.
void fit_linear_path(TinyVae& vae, const at::Tensor& clips, double latent_std = 0.5);

// Sets the linear decoder to the least-squares best for `clips` [N, F, 3, H, W] (F >= 5) given everything else: the
// encoder as it is, and the convolutional decoder's frames, whose error it then corrects; best for the frames decode
// returns (not the three it drops). Leaves the latent space as it is, so a trained autoencoder can take it
// (with_linear_path to a larger kernel, then this) under models already trained in its latents. Needs
// config.linear_path.
void fit_linear_decoder(TinyVae& vae, const at::Tensor& clips);

// Decodes latents one at a time with per-layer memory: each latent gives its 4 frames (1 for the very first,
// after the 3 leading frames are dropped) as soon as it arrives. Equals TinyVae::decode of the whole sequence.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(TinyVae vae);
  // latent [N, C, h, w] -> frames [N, n, 3, 8h, 8w] in [0, 1], n = 1 for the first latent after reset(), else 4
  at::Tensor push(const at::Tensor& latent);
  void reset();
  int64_t latents_seen() const { return latents_seen_; }

 private:
  void run(size_t layer, at::Tensor x, std::vector<at::Tensor>& out);
  TinyVae vae_;
  std::vector<at::Tensor> memory_;  // per decoder layer: a MemBlock's previous input
  int64_t latents_seen_ = 0;
};

}  // namespace ms
