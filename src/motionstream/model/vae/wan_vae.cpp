#include "motionstream/model/vae/wan_vae.h"

#include <torch/nn/init.h>
#include <torch/utils.h>

#include <cmath>
#include <stdexcept>

#include "motionstream/model/attention.h"

namespace ms {

namespace nn = torch::nn;

namespace {

// A parameter-free module that only groups children under Wan's names (e.g. "residual" holding 0, 2, 3, 6).
std::shared_ptr<nn::Module> group(nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<nn::Module>());
}

// Applies a 2D function to every frame: [B, C, T, H, W] -> [B, C', T, H', W'].
template <typename Fn>
at::Tensor per_frame(const at::Tensor& x, Fn&& fn) {
  const int64_t B = x.size(0), T = x.size(2);
  auto y = fn(x.transpose(1, 2).flatten(0, 1));  // [B*T, C, H, W]
  return y.view({B, T, y.size(1), y.size(2), y.size(3)}).transpose(1, 2);
}

// Nearest-neighbour 2x (equal to Wan's 'nearest-exact' at scale 2), by broadcasting so that every dtype works.
at::Tensor upsample_nearest_2x(const at::Tensor& x) {  // [N, C, H, W] -> [N, C, 2H, 2W]
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  return x.view({N, C, H, 1, W, 1}).expand({N, C, H, 2, W, 2}).reshape({N, C, 2 * H, 2 * W});
}

// The last `n` frames of x (all of them when it has fewer).
at::Tensor last_frames(const at::Tensor& x, int64_t n) {
  const int64_t keep = std::min(n, x.size(2));
  return x.narrow(2, x.size(2) - keep, keep);
}

}  // namespace

// ---------------------------------------------------------------- WanFeatureCache

at::Tensor& WanFeatureCache::next_slot() {
  if (next_ == slots_.size()) slots_.emplace_back();
  return slots_[next_++];
}

// ---------------------------------------------------------------- CausalConv3d

CausalConv3dImpl::CausalConv3dImpl(int64_t in, int64_t out, int64_t kernel_t, int64_t kernel_s, int64_t stride_t,
                                   bool pad_time)
    : kernel_t_(kernel_t), kernel_s_(kernel_s), stride_t_(stride_t), pad_time_(pad_time) {
  // PyTorch's default convolution initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in * kernel_t * kernel_s * kernel_s));
  weight = register_parameter("weight", at::empty({out, in, kernel_t, kernel_s, kernel_s}).uniform_(-bound, bound));
  bias = register_parameter("bias", at::empty({out}).uniform_(-bound, bound));
}

at::Tensor CausalConv3dImpl::convolve(const at::Tensor& x, int64_t zero_frames) {
  auto padded = zero_frames > 0 ? at::constant_pad_nd(x, {0, 0, 0, 0, zero_frames, 0}) : x;
  const int64_t p = kernel_s_ / 2;
  return at::conv3d(padded, weight, bias, {stride_t_, 1, 1}, {0, p, p});
}

at::Tensor CausalConv3dImpl::forward(const at::Tensor& x) { return convolve(x, past_frames()); }

at::Tensor CausalConv3dImpl::forward(const at::Tensor& x, at::Tensor& past) {
  const int64_t need = past_frames();
  if (need == 0) return convolve(x, 0);
  auto input = past.defined() ? at::cat({past, x}, 2) : x;  // [B, C, past + T, H, W]
  past = last_frames(input, need);
  return convolve(input, need - (input.size(2) - x.size(2)));
}

// ---------------------------------------------------------------- WanRmsNorm

WanRmsNormImpl::WanRmsNormImpl(int64_t channels, bool images) {
  gamma = register_parameter("gamma", images ? at::ones({channels, 1, 1}) : at::ones({channels, 1, 1, 1}));
}

at::Tensor WanRmsNormImpl::forward(const at::Tensor& x) {
  // Wan spells this F.normalize(x, dim=1) * sqrt(C) * gamma: the L2 norm clamped at 1e-12, not an RMS with eps.
  const double scale = std::sqrt(static_cast<double>(x.size(1)));
  return x / x.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12) * (gamma * scale);
}

// ---------------------------------------------------------------- WanResidualBlock

WanResidualBlockImpl::WanResidualBlockImpl(int64_t in, int64_t out) {
  auto residual = group(*this, "residual");
  norm1 = residual->register_module("0", WanRmsNorm(in, false));
  conv1 = residual->register_module("2", CausalConv3d(in, out, 3, 3));
  norm2 = residual->register_module("3", WanRmsNorm(out, false));
  conv2 = residual->register_module("6", CausalConv3d(out, out, 3, 3));
  if (in != out) shortcut = register_module("shortcut", CausalConv3d(in, out, 1, 1));
}

at::Tensor WanResidualBlockImpl::forward(const at::Tensor& x, WanFeatureCache* cache) {
  auto conv = [&](CausalConv3d& c, const at::Tensor& h) {
    return cache ? c->forward(h, cache->next_slot()) : c->forward(h);
  };
  auto h = conv(conv1, at::silu(norm1->forward(x)));
  h = conv(conv2, at::silu(norm2->forward(h)));  // dropout (residual.5) is 0 in the published model
  return h + (shortcut ? shortcut->forward(x) : x);
}

// ---------------------------------------------------------------- WanAttentionBlock

WanAttentionBlockImpl::WanAttentionBlockImpl(int64_t dim) {
  norm = register_module("norm", WanRmsNorm(dim, true));
  to_qkv = register_module("to_qkv", nn::Conv2d(nn::Conv2dOptions(dim, 3 * dim, 1)));
  proj = register_module("proj", nn::Conv2d(nn::Conv2dOptions(dim, dim, 1)));
}

at::Tensor WanAttentionBlockImpl::forward(const at::Tensor& x) {
  return x + per_frame(x, [&](const at::Tensor& frames) {  // [N, C, H, W], N = B*T
    const int64_t N = frames.size(0), C = frames.size(1), H = frames.size(2), W = frames.size(3);
    auto qkv = to_qkv->forward(norm->forward(frames)).flatten(2).transpose(1, 2);  // [N, HW, 3C]
    auto parts = qkv.unsqueeze(2).chunk(3, -1);                                   // 3 x [N, HW, 1 head, C]
    auto out = attention(parts[0].contiguous(), parts[1].contiguous(), parts[2].contiguous());  // [N, HW, 1, C]
    return proj->forward(out.squeeze(2).transpose(1, 2).reshape({N, C, H, W}));
  });
}

// ---------------------------------------------------------------- WanResample

WanResampleImpl::WanResampleImpl(int64_t dim, Mode mode) : mode(mode) {
  auto resample = group(*this, "resample");
  const bool up = mode == Mode::Upsample2d || mode == Mode::Upsample3d;
  conv = resample->register_module("1", up ? nn::Conv2d(nn::Conv2dOptions(dim, dim / 2, 3).padding(1))
                                            : nn::Conv2d(nn::Conv2dOptions(dim, dim, 3).stride(2)));
  if (mode == Mode::Upsample3d) time_conv = register_module("time_conv", CausalConv3d(dim, 2 * dim, 3, 1));
  if (mode == Mode::Downsample3d) time_conv = register_module("time_conv", CausalConv3d(dim, dim, 3, 1, 2, false));
}

at::Tensor WanResampleImpl::upsample_time(const at::Tensor& x, WanFeatureCache* cache) {
  at::Tensor doubled;  // [B, 2C, n, H, W] for the n frames after frame 0
  at::Tensor first;    // frame 0, when this chunk holds it: [B, C, 1, H, W]
  if (cache) {
    at::Tensor& past = cache->next_slot();
    if (!past.defined()) {  // the first chunk: frame 0 alone, not doubled; later chunks start from zeros
      past = x.narrow(2, 0, 0);
      return x;
    }
    doubled = time_conv->forward(x, past);
  } else {
    first = x.narrow(2, 0, 1);
    if (x.size(2) == 1) return x;
    doubled = time_conv->forward(x.narrow(2, 1, x.size(2) - 1));
  }
  const int64_t B = x.size(0), C = x.size(1), n = doubled.size(2), H = x.size(3), W = x.size(4);
  // Output frame 2i is channels [0, C) of doubled frame i, frame 2i + 1 channels [C, 2C).
  auto frames = doubled.view({B, 2, C, n, H, W}).permute({0, 2, 3, 1, 4, 5}).reshape({B, C, 2 * n, H, W});
  return first.defined() ? at::cat({first, frames}, 2) : frames;
}

at::Tensor WanResampleImpl::downsample_time(const at::Tensor& x, WanFeatureCache* cache) {
  // Windows of 3 frames at stride 2 over [frame 0, frame 1, ...]: frame 0 stands alone, then (0,1,2), (2,3,4), ...
  if (cache) {
    at::Tensor& last = cache->next_slot();  // the last frame of the previous chunk
    if (!last.defined()) {
      last = last_frames(x, 1);
      return x;
    }
    auto input = at::cat({last, x}, 2);
    last = last_frames(x, 1);
    return time_conv->forward(input);
  }
  if (x.size(2) < 3) return x.narrow(2, 0, 1);
  return at::cat({x.narrow(2, 0, 1), time_conv->forward(x)}, 2);
}

at::Tensor WanResampleImpl::forward(const at::Tensor& x, WanFeatureCache* cache) {
  switch (mode) {
    case Mode::Upsample2d:
      return per_frame(x, [&](const at::Tensor& f) { return conv->forward(upsample_nearest_2x(f)); });
    case Mode::Upsample3d:
      return per_frame(upsample_time(x, cache),
                       [&](const at::Tensor& f) { return conv->forward(upsample_nearest_2x(f)); });
    case Mode::Downsample2d:
    case Mode::Downsample3d: {
      // One zero row and column after the image, none before: the stride-2 windows start at pixel 0; H -> H/2.
      auto y = per_frame(x, [&](const at::Tensor& f) { return conv->forward(at::constant_pad_nd(f, {0, 1, 0, 1})); });
      return mode == Mode::Downsample3d ? downsample_time(y, cache) : y;
    }
  }
  throw std::logic_error("WanResample: unknown mode");
}

// ---------------------------------------------------------------- WanEncoder3d

namespace {

// Runs a list of residual / attention / resample blocks.
at::Tensor run_blocks(nn::ModuleList& blocks, at::Tensor x, WanFeatureCache* cache) {
  for (const auto& block : *blocks) {
    if (auto* r = block->as<WanResidualBlock>()) x = r->forward(x, cache);
    else if (auto* a = block->as<WanAttentionBlock>()) x = a->forward(x);
    else if (auto* s = block->as<WanResample>()) x = s->forward(x, cache);
    else throw std::logic_error("WanVae: unexpected block " + block->name());
  }
  return x;
}

at::Tensor causal(CausalConv3d& conv, const at::Tensor& x, WanFeatureCache* cache) {
  return cache ? conv->forward(x, cache->next_slot()) : conv->forward(x);
}

nn::ModuleList middle_blocks(int64_t dim) {
  return nn::ModuleList(WanResidualBlock(dim, dim), WanAttentionBlock(dim), WanResidualBlock(dim, dim));
}

}  // namespace

WanEncoder3dImpl::WanEncoder3dImpl(const WanVaeConfig& c) {
  const auto dims = c.encoder_dims();  // e.g. 96, 96, 192, 384, 384
  const size_t stages = c.dim_mult.size();
  conv1 = register_module("conv1", CausalConv3d(3, dims[0], 3, 3));
  downsamples = register_module("downsamples", nn::ModuleList());
  for (size_t i = 0; i < stages; ++i) {
    int64_t in = dims[i];
    for (int64_t r = 0; r < c.num_res_blocks; ++r, in = dims[i + 1])
      downsamples->push_back(WanResidualBlock(in, dims[i + 1]));
    if (i + 1 != stages)
      downsamples->push_back(WanResample(dims[i + 1], c.temporal_downsample[i] ? WanResampleImpl::Mode::Downsample3d
                                                                               : WanResampleImpl::Mode::Downsample2d));
  }
  middle = register_module("middle", middle_blocks(dims.back()));
  auto head = group(*this, "head");  // 0: norm, 1: SiLU, 2: conv
  head_norm = head->register_module("0", WanRmsNorm(dims.back(), false));
  head_conv = head->register_module("2", CausalConv3d(dims.back(), 2 * c.z_dim, 3, 3));
}

at::Tensor WanEncoder3dImpl::forward(const at::Tensor& frames, WanFeatureCache* cache) {
  auto x = causal(conv1, frames, cache);  // [B, 96, F, H, W]
  x = run_blocks(downsamples, x, cache);  // [B, 384, T, H/8, W/8]
  x = run_blocks(middle, x, cache);
  return causal(head_conv, at::silu(head_norm->forward(x)), cache);  // [B, 2 z, T, H/8, W/8]
}

// ---------------------------------------------------------------- WanDecoder3d

WanDecoder3dImpl::WanDecoder3dImpl(const WanVaeConfig& c) {
  const auto dims = c.decoder_dims();  // e.g. 384, 384, 384, 192, 96
  const size_t stages = c.dim_mult.size();
  conv1 = register_module("conv1", CausalConv3d(c.z_dim, dims[0], 3, 3));
  middle = register_module("middle", middle_blocks(dims[0]));
  upsamples = register_module("upsamples", nn::ModuleList());
  for (size_t i = 0; i < stages; ++i) {
    int64_t in = i == 0 ? dims[i] : dims[i] / 2;  // each upsampling halves the width
    for (int64_t r = 0; r <= c.num_res_blocks; ++r, in = dims[i + 1])
      upsamples->push_back(WanResidualBlock(in, dims[i + 1]));
    if (i + 1 != stages) {
      const bool temporal = c.temporal_downsample[stages - 2 - i];  // mirrors the encoder
      upsamples->push_back(
          WanResample(dims[i + 1], temporal ? WanResampleImpl::Mode::Upsample3d : WanResampleImpl::Mode::Upsample2d));
    }
  }
  auto head = group(*this, "head");  // 0: norm, 1: SiLU, 2: conv
  head_norm = head->register_module("0", WanRmsNorm(dims.back(), false));
  head_conv = head->register_module("2", CausalConv3d(dims.back(), 3, 3, 3));
}

at::Tensor WanDecoder3dImpl::forward(const at::Tensor& latents, WanFeatureCache* cache) {
  auto x = causal(conv1, latents, cache);  // [B, 384, T, h, w]
  x = run_blocks(middle, x, cache);
  x = run_blocks(upsamples, x, cache);  // [B, 96, 1 + 4(T-1), 8h, 8w]
  return causal(head_conv, at::silu(head_norm->forward(x)), cache);  // [B, 3, ...]
}

// ---------------------------------------------------------------- WanVae

WanVaeImpl::WanVaeImpl(const WanVaeConfig& config) : config_(config) {
  config_.validate();
  encoder = register_module("encoder", WanEncoder3d(config_));
  conv1 = register_module("conv1", CausalConv3d(2 * config_.z_dim, 2 * config_.z_dim, 1, 1));
  conv2 = register_module("conv2", CausalConv3d(config_.z_dim, config_.z_dim, 1, 1));
  decoder = register_module("decoder", WanDecoder3d(config_));
}

void WanVaeImpl::check_frames(const at::Tensor& frames, const char* who) const {
  const int64_t ts = config_.temporal_stride(), ss = config_.spatial_stride();
  TORCH_CHECK(frames.dim() == 5 && frames.size(1) == 3, who, ": frames must be [B, 3, F, H, W], got ", frames.sizes());
  TORCH_CHECK((frames.size(2) - 1) % ts == 0, who, ": frame count must be 1 + ", ts, "k, got ", frames.size(2));
  TORCH_CHECK(frames.size(3) % ss == 0 && frames.size(4) % ss == 0, who, ": height and width must be multiples of ",
              ss, ", got ", frames.size(3), "x", frames.size(4));
}

at::Tensor WanVaeImpl::encode(const at::Tensor& frames) {
  check_frames(frames, "WanVae::encode");
  const int64_t ts = config_.temporal_stride(), chunks = 1 + (frames.size(2) - 1) / ts;
  WanFeatureCache cache;
  std::vector<at::Tensor> latents;
  for (int64_t i = 0; i < chunks; ++i) {
    cache.begin_chunk();
    auto chunk = i == 0 ? frames.narrow(2, 0, 1) : frames.narrow(2, 1 + ts * (i - 1), ts);  // frame 0, then 4 at a time
    latents.push_back(conv1->forward(encoder->forward(chunk, &cache)).narrow(1, 0, config_.z_dim));  // mu half
  }
  return at::cat(latents, 2);
}

at::Tensor WanVaeImpl::encode_whole(const at::Tensor& frames) {
  check_frames(frames, "WanVae::encode_whole");
  return conv1->forward(encoder->forward(frames, nullptr)).narrow(1, 0, config_.z_dim);
}

at::Tensor WanVaeImpl::decode(const at::Tensor& latents) {
  TORCH_CHECK(latents.dim() == 5 && latents.size(1) == config_.z_dim, "WanVae::decode: latents must be [B, ",
              config_.z_dim, ", T, h, w], got ", latents.sizes());
  auto x = conv2->forward(latents);  // 1x1x1: per latent frame
  WanFeatureCache cache;
  std::vector<at::Tensor> frames;
  for (int64_t t = 0; t < x.size(2); ++t) {  // as WanStreamingDecoder::push
    cache.begin_chunk();
    frames.push_back(decoder->forward(x.narrow(2, t, 1), &cache));
  }
  return at::cat(frames, 2);
}

at::Tensor WanVaeImpl::decode_whole(const at::Tensor& latents) {
  TORCH_CHECK(latents.dim() == 5 && latents.size(1) == config_.z_dim, "WanVae::decode_whole: latents must be [B, ",
              config_.z_dim, ", T, h, w], got ", latents.sizes());
  return decoder->forward(conv2->forward(latents), nullptr);
}

// ---------------------------------------------------------------- WanStreamingDecoder

WanStreamingDecoder::WanStreamingDecoder(WanVae vae) : vae_(std::move(vae)) {}

void WanStreamingDecoder::reset() {
  cache_.clear();
  latents_seen_ = 0;
}

at::Tensor WanStreamingDecoder::push(const at::Tensor& latent) {
  TORCH_CHECK(latent.dim() == 4 && latent.size(1) == vae_->config().z_dim, "WanStreamingDecoder::push: latent must be [B, ",
              vae_->config().z_dim, ", h, w], got ", latent.sizes());
  cache_.begin_chunk();
  // In the model's dtype, so that fp32 latents from the sampler feed a bf16 / fp16 VAE as they are.
  auto x = vae_->conv2->forward(latent.unsqueeze(2).to(vae_->conv2->weight.scalar_type()));  // [B, z, 1, h, w]
  ++latents_seen_;
  return vae_->decoder->forward(x, &cache_);
}

}  // namespace ms
