#include "motionstream/model/vae/tiny_vae.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/upsampling.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace ms {

namespace nn = torch::nn;

namespace {

nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride = 1, bool bias = true) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1).stride(stride).bias(bias));
}
nn::Conv2d conv1x1(int64_t in, int64_t out) { return nn::Conv2d(nn::Conv2dOptions(in, out, 1).bias(false)); }

// tanh(x / 3) * 3: keeps latents from a diffusion model inside the range the decoder was trained on.
class ClampImpl : public nn::Module {
 public:
  at::Tensor forward(const at::Tensor& x) { return at::tanh(x / 3) * 3; }
};
TORCH_MODULE(Clamp);

// Layers without memory act on every frame independently: [M, C, H, W] -> [M, C', H', W'].
at::Tensor apply_framewise(nn::Module& m, const at::Tensor& x) {
  if (auto* c = m.as<nn::Conv2d>()) return c->forward(x);
  if (auto* r = m.as<nn::ReLU>()) return r->forward(x);
  if (auto* u = m.as<nn::Upsample>()) return u->forward(x);
  if (auto* c = m.as<Clamp>()) return c->forward(x);
  throw std::logic_error("TinyVae: unexpected layer " + m.name());
}

// Runs a layer list over whole sequences. x: [N, T, C, H, W] -> [N, T', C', H', W']
at::Tensor apply_parallel(nn::ModuleList& layers, const at::Tensor& video) {
  const int64_t N = video.size(0);
  at::Tensor x = video.flatten(0, 1);  // [N*T, C, H, W]
  for (const auto& layer : *layers) {
    if (auto* mb = layer->as<MemBlock>()) {
      const int64_t T = x.size(0) / N;
      auto seq = x.view({N, T, x.size(1), x.size(2), x.size(3)});
      auto past = at::constant_pad_nd(seq, {0, 0, 0, 0, 0, 0, 1, 0}).narrow(1, 0, T).reshape(x.sizes());
      x = mb->forward(x, past);
    } else if (auto* pool = layer->as<TPool>()) {
      x = pool->forward(x);
    } else if (auto* grow = layer->as<TGrow>()) {
      x = grow->forward(x);
    } else {
      x = apply_framewise(*layer, x);
    }
  }
  return x.view({N, x.size(0) / N, x.size(1), x.size(2), x.size(3)});
}

// Frame 0 stands alone in latent 0: frames [N, F, 3, H, W] -> [N, 3 + F, 3, H, W], three copies of it in front.
at::Tensor pad_first_frame(const at::Tensor& frames) {
  return at::cat({frames.narrow(1, 0, 1).expand({-1, 3, -1, -1, -1}), frames}, 1);
}

// The pixels each latent pixel stands for, as the linear path reads them: padded [N, 4T, 3, H, W] ->
// [N*T, 4*3*64, H/8, W/8], channel ((j * 3 + c) * 8 + y) * 8 + x for frame j, colour c, row y, column x.
at::Tensor pixel_groups(const at::Tensor& padded) {
  const int64_t N = padded.size(0), T = padded.size(1) / 4, H = padded.size(3), W = padded.size(4);
  return at::pixel_unshuffle(padded.reshape({N * T, 4 * 3, H, W}), 8);
}

}  // namespace

void TinyVaeConfig::validate() const {
  if (latent_channels <= 0) throw std::invalid_argument("TinyVaeConfig.latent_channels must be positive");
  if (encoder_width <= 0) throw std::invalid_argument("TinyVaeConfig.encoder_width must be positive");
  if (decoder_widths.size() != 4)
    throw std::invalid_argument("TinyVaeConfig.decoder_widths needs 4 widths (3 stages + final conv), got " +
                                std::to_string(decoder_widths.size()));
  for (auto w : decoder_widths)
    if (w <= 0) throw std::invalid_argument("TinyVaeConfig.decoder_widths must be positive");
  if (linear_decoder_kernel < 1 || linear_decoder_kernel % 2 == 0)
    throw std::invalid_argument("TinyVaeConfig.linear_decoder_kernel must be odd and positive, got " +
                                std::to_string(linear_decoder_kernel));
}

TinyVaeConfig tiny_vae_preset(const std::string& name) {
  TinyVaeConfig c;
  c.name = name;
  if (name == "taehv-wan") return c;
  if (name == "cpu") {
    c.encoder_width = 32;
    c.decoder_widths = {64, 32, 16, 16};
    return c;
  }
  throw std::invalid_argument("unknown autoencoder preset '" + name + "' (known: taehv-wan, cpu)");
}

void to_json(nlohmann::json& j, const TinyVaeConfig& c) {
  j = nlohmann::json{{"name", c.name},
                     {"latent_channels", c.latent_channels},
                     {"encoder_width", c.encoder_width},
                     {"decoder_widths", c.decoder_widths}};
  // Written only when not the default, so that files written before a field existed read the same.
  if (c.linear_path) j["linear_path"] = true;
  if (c.linear_decoder_kernel != 1) j["linear_decoder_kernel"] = c.linear_decoder_kernel;
}

void from_json(const nlohmann::json& j, TinyVaeConfig& c) {
  TinyVaeConfig out;
  for (const auto& [key, value] : j.items()) {
    try {
      if (key == "name") out.name = value.get<std::string>();
      else if (key == "latent_channels") out.latent_channels = value.get<int64_t>();
      else if (key == "encoder_width") out.encoder_width = value.get<int64_t>();
      else if (key == "decoder_widths") out.decoder_widths = value.get<std::vector<int64_t>>();
      else if (key == "linear_path") out.linear_path = value.get<bool>();
      else if (key == "linear_decoder_kernel") out.linear_decoder_kernel = value.get<int64_t>();
      else throw std::invalid_argument("TinyVaeConfig." + key + ": unknown field");
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument("TinyVaeConfig." + key + ": bad value " + value.dump());
    }
  }
  out.validate();
  c = out;
}

MemBlockImpl::MemBlockImpl(int64_t in, int64_t out) {
  conv = register_module("conv", nn::Sequential(conv3x3(2 * in, out), nn::ReLU(), conv3x3(out, out), nn::ReLU(),
                                                conv3x3(out, out)));
  if (in != out) skip = register_module("skip", conv1x1(in, out));
}

at::Tensor MemBlockImpl::forward(const at::Tensor& x, const at::Tensor& past) {
  auto y = conv->forward(at::cat({x, past}, 1));
  return at::relu(y + (skip ? skip->forward(x) : x));
}

TPoolImpl::TPoolImpl(int64_t channels, int64_t stride) : stride(stride) {
  conv = register_module("conv", conv1x1(channels * stride, channels));
}

at::Tensor TPoolImpl::forward(const at::Tensor& x) {
  const auto C = x.size(1), H = x.size(2), W = x.size(3);
  return conv->forward(x.reshape({-1, stride * C, H, W}));  // consecutive frames side by side in channels
}

TGrowImpl::TGrowImpl(int64_t channels, int64_t stride) : stride(stride) {
  conv = register_module("conv", conv1x1(channels, channels * stride));
}

at::Tensor TGrowImpl::forward(const at::Tensor& x) {
  const auto C = x.size(1), H = x.size(2), W = x.size(3);
  return conv->forward(x).reshape({-1, C, H, W});  // channel block j -> the j-th new frame
}

TinyVaeImpl::TinyVaeImpl(const TinyVaeConfig& config) : config_(config) {
  config_.validate();
  const int64_t E = config_.encoder_width, C = config_.latent_channels;
  const auto& w = config_.decoder_widths;
  encoder = register_module("encoder", nn::ModuleList());
  encoder->push_back(conv3x3(3, E));
  encoder->push_back(nn::ReLU());
  for (int64_t time_stride : {2, 2, 1}) {
    encoder->push_back(TPool(E, time_stride));
    encoder->push_back(conv3x3(E, E, 2, false));
    for (int i = 0; i < 3; ++i) encoder->push_back(MemBlock(E, E));
  }
  encoder->push_back(conv3x3(E, C));

  decoder = register_module("decoder", nn::ModuleList());
  decoder->push_back(Clamp());
  decoder->push_back(conv3x3(C, w[0]));
  decoder->push_back(nn::ReLU());
  const int64_t time_strides[3] = {1, 2, 2};
  for (int stage = 0; stage < 3; ++stage) {
    for (int i = 0; i < 3; ++i) decoder->push_back(MemBlock(w[stage], w[stage]));
    decoder->push_back(nn::Upsample(nn::UpsampleOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest)));
    decoder->push_back(TGrow(w[stage], time_strides[stage]));
    decoder->push_back(conv3x3(w[stage], w[stage + 1], 1, false));
  }
  decoder->push_back(nn::ReLU());
  decoder->push_back(conv3x3(w[3], 3));
  if (config_.linear_path) {
    constexpr int64_t kPixels = 4 * 3 * 8 * 8;  // one latent pixel's frames x colours x 8 x 8
    encoder_linear = register_module("encoder_linear", nn::Conv2d(nn::Conv2dOptions(kPixels, C, 1)));
    const int64_t k = config_.linear_decoder_kernel;
    decoder_linear = register_module("decoder_linear", nn::Conv2d(nn::Conv2dOptions(C, kPixels, k).padding(k / 2)));
  }
}

at::Tensor TinyVaeImpl::linear_encode(const at::Tensor& padded) {
  auto z = encoder_linear->forward(pixel_groups(padded));  // [N*T, C, H/8, W/8]
  return z.view({padded.size(0), padded.size(1) / 4, z.size(1), z.size(2), z.size(3)});
}

std::vector<at::Tensor> TinyVaeImpl::encoder_parameters() const {
  auto params = encoder->parameters();
  if (encoder_linear) params.push_back(encoder_linear->weight), params.push_back(encoder_linear->bias);
  return params;
}

at::Tensor TinyVaeImpl::linear_decode(const at::Tensor& latents) {
  const int64_t N = latents.size(0), T = latents.size(1);
  auto frames = at::pixel_shuffle(decoder_linear->forward(latents.flatten(0, 1)), 8);  // [N*T, 12, H, W]
  return frames.view({N, 4 * T, 3, frames.size(2), frames.size(3)});
}

at::Tensor TinyVaeImpl::encode(const at::Tensor& frames) {
  TORCH_CHECK(frames.dim() == 5 && frames.size(2) == 3, "TinyVae::encode: frames must be [N, F, 3, H, W], got ",
              frames.sizes());
  TORCH_CHECK((frames.size(1) - 1) % 4 == 0, "TinyVae::encode: frame count must be 1 + 4k, got ", frames.size(1));
  TORCH_CHECK(frames.size(3) % 8 == 0 && frames.size(4) % 8 == 0,
              "TinyVae::encode: height and width must be multiples of 8, got ", frames.size(3), "x", frames.size(4));
  const auto padded = pad_first_frame(frames);  // [N, 3 + F, 3, H, W]
  auto latents = apply_parallel(encoder, padded);
  return encoder_linear ? latents + linear_encode(padded) : latents;
}

at::Tensor TinyVaeImpl::decode(const at::Tensor& latents, bool clamp) {
  TORCH_CHECK(latents.dim() == 5 && latents.size(2) == config_.latent_channels,
              "TinyVae::decode: latents must be [N, T, ", config_.latent_channels, ", h, w], got ", latents.sizes());
  auto frames = apply_parallel(decoder, latents);  // [N, 4T, 3, H, W]
  if (decoder_linear) frames = frames + linear_decode(latents);
  frames = frames.narrow(1, 3, frames.size(1) - 3);
  return clamp ? frames.clamp(0, 1) : frames;
}

namespace {

// Where old channels go in a wider layer: `parts` consecutive blocks of width `from` (a MemBlock's [x, past], a
// TGrow's frames) each keep their offset inside blocks of width `to`. [parts * from] int64
at::Tensor channel_map(int64_t from, int64_t to, int64_t parts) {
  return (at::arange(from, at::kLong).unsqueeze(0) + at::arange(parts, at::kLong).unsqueeze(1) * to).flatten();
}

// wide.weight [O, I, k, k]: the mapped rows get the old weights in the mapped columns and zeros elsewhere (old
// outputs read no new input); other rows keep their random initialisation.
void copy_into_wider(const nn::Conv2dImpl& old_conv, nn::Conv2dImpl& wide, int64_t in_parts, int64_t out_parts) {
  const auto& w_old = old_conv.weight;
  auto& w = wide.weight;
  const auto rows = channel_map(w_old.size(0) / out_parts, w.size(0) / out_parts, out_parts);
  const auto cols = channel_map(w_old.size(1) / in_parts, w.size(1) / in_parts, in_parts);
  auto kept = at::zeros({rows.size(0), w.size(1), w.size(2), w.size(3)}, w.options());
  kept.index_copy_(1, cols, w_old.detach());
  w.index_copy_(0, rows, kept);
  if (old_conv.bias.defined()) wide.bias.index_copy_(0, rows, old_conv.bias.detach());
}

}  // namespace

TinyVae widen_decoder(TinyVae& narrow, const std::vector<int64_t>& decoder_widths) {
  TinyVaeConfig config = narrow->config();
  for (size_t i = 0; i < decoder_widths.size() && i < config.decoder_widths.size(); ++i)
    if (decoder_widths[i] < config.decoder_widths[i])
      throw std::invalid_argument("widen_decoder: decoder width " + std::to_string(i) + " would shrink from " +
                                  std::to_string(config.decoder_widths[i]) + " to " + std::to_string(decoder_widths[i]));
  config.decoder_widths = decoder_widths;
  TinyVae wide(config);  // validates the widths
  wide->to(narrow->parameters().front().device());
  torch::NoGradGuard no_grad;
  const auto encoder = narrow->encoder->named_parameters();
  for (auto& p : wide->encoder->named_parameters()) p.value().copy_(encoder[p.key()]);
  if (narrow->encoder_linear) {  // the linear path reads no decoder width: copied as it is
    wide->encoder_linear->weight.copy_(narrow->encoder_linear->weight), wide->encoder_linear->bias.copy_(narrow->encoder_linear->bias);
    wide->decoder_linear->weight.copy_(narrow->decoder_linear->weight), wide->decoder_linear->bias.copy_(narrow->decoder_linear->bias);
  }
  for (size_t i = 0; i < narrow->decoder->size(); ++i) {
    auto& old_layer = *narrow->decoder->ptr(i);
    auto& new_layer = *wide->decoder->ptr(i);
    if (auto* conv = old_layer.as<nn::Conv2d>()) {
      copy_into_wider(*conv, *new_layer.as<nn::Conv2d>(), 1, 1);
    } else if (auto* block = old_layer.as<MemBlock>()) {
      for (size_t j : {0, 2, 4})  // the first conv reads [x, past]
        copy_into_wider(*block->conv->ptr(j)->as<nn::Conv2d>(), *new_layer.as<MemBlock>()->conv->ptr(j)->as<nn::Conv2d>(),
                        j == 0 ? 2 : 1, 1);
    } else if (auto* grow = old_layer.as<TGrow>()) {
      copy_into_wider(*grow->conv, *new_layer.as<TGrow>()->conv, 1, grow->stride);  // one block per new frame
    }
  }
  return wide;
}

TinyVae with_linear_path(TinyVae& vae, int64_t decoder_kernel) {
  TinyVaeConfig config = vae->config();
  config.linear_path = true;
  if (vae->config().linear_path && decoder_kernel < vae->config().linear_decoder_kernel)
    throw std::invalid_argument("with_linear_path: the linear decoder kernel would shrink from " +
                                std::to_string(vae->config().linear_decoder_kernel) + " to " +
                                std::to_string(decoder_kernel));
  config.linear_decoder_kernel = decoder_kernel;
  TinyVae out(config);  // validates the kernel
  out->to(vae->parameters().front().device());
  torch::NoGradGuard no_grad;
  const auto old = vae->named_parameters();
  for (auto& p : out->named_parameters()) {
    const auto* value = old.find(p.key());
    if (!value) continue;
    if (p.key() == "decoder_linear.weight" && value->sizes() != p.value().sizes()) {  // [768, C, k, k] <- [768, C, k', k']
      const int64_t from = value->size(2), offset = (decoder_kernel - from) / 2;
      p.value().zero_();
      p.value().narrow(2, offset, from).narrow(3, offset, from).copy_(*value);
    } else {
      p.value().copy_(*value);
    }
  }
  return out;
}

void fit_linear_path(TinyVae& vae, const at::Tensor& clips, double latent_std) {
  TORCH_CHECK(vae->config().linear_path, "fit_linear_path: this autoencoder has no linear path (config.linear_path)");
  TORCH_CHECK(clips.dim() == 5 && clips.size(2) == 3 && (clips.size(1) - 1) % 4 == 0,
              "fit_linear_path: clips must be [N, 1 + 4k, 3, H, W], got ", clips.sizes());
  torch::NoGradGuard no_grad;
  const int64_t C = vae->config().latent_channels;
  const auto rows = pixel_groups(pad_first_frame(clips.to(at::kCPU, at::kDouble)))  // [N*T, 768, h, w]
                        .permute({0, 2, 3, 1}).reshape({-1, 4 * 3 * 64});               // [M, 768]: one per latent pixel
  TORCH_CHECK(rows.size(0) > C, "fit_linear_path: ", rows.size(0), " pixel groups cannot fit ", C, " components");
  const auto mean = rows.mean(0);                                 // [768]
  const auto centred = rows - mean;
  const auto covariance = centred.t().mm(centred) / static_cast<double>(rows.size(0));
  auto [variance, basis] = at::linalg_eigh(covariance);          // ascending
  const auto top = basis.narrow(1, basis.size(1) - C, C).flip(1);  // [768, C], largest first
  const auto scale = variance.narrow(0, variance.size(0) - C, C).flip(0).clamp_min(1e-12).sqrt() / latent_std;  // [C]
  const auto encode_w = top.t() / scale.unsqueeze(1);            // [C, 768]
  const auto decode_w = top * scale.unsqueeze(0);                // [768, C]
  vae->encoder_linear->weight.copy_(encode_w.view(vae->encoder_linear->weight.sizes()));
  vae->encoder_linear->bias.copy_(-encode_w.mv(mean));
  auto& decoder = *vae->decoder_linear;  // the components' reconstruction at the kernel's centre tap
  const int64_t centre = decoder.weight.size(2) / 2;
  decoder.weight.zero_();
  decoder.weight.select(3, centre).select(2, centre).copy_(decode_w);
  decoder.bias.copy_(mean);
  for (auto* half : {&vae->encoder, &vae->decoder}) {  // the convolutional paths' output convs
    auto& last = *(*half)->ptr((*half)->size() - 1)->as<nn::Conv2d>();
    last.weight.zero_();
    if (last.bias.defined()) last.bias.zero_();
  }
  if (decoder.weight.size(2) > 1) fit_linear_decoder(vae, clips);  // neighbours' components help where 1x1 cannot
}

void fit_linear_decoder(TinyVae& vae, const at::Tensor& clips) {
  TORCH_CHECK(vae->config().linear_path, "fit_linear_decoder: this autoencoder has no linear path (config.linear_path)");
  TORCH_CHECK(clips.dim() == 5 && clips.size(2) == 3 && clips.size(1) >= 5 && (clips.size(1) - 1) % 4 == 0,
              "fit_linear_decoder: clips must be [N, 1 + 4k, 3, H, W] with k >= 1, got ", clips.sizes());
  torch::NoGradGuard no_grad;
  const bool was_training = vae->is_training();
  vae->eval();
  const int64_t C = vae->config().latent_channels, k = vae->config().linear_decoder_kernel;
  const int64_t inputs = C * k * k + 1;  // a latent pixel's k x k neighbourhood (conv weight order), then 1 for the bias
  const int64_t outputs = 4 * 3 * 64, last_frame = 3 * 3 * 64;  // channels from last_frame on: the group's 4th frame
  const at::Device device = vae->parameters().front().device();
  // Normal equations over every latent pixel, and over those of latent 0 apart: decode drops latent 0's first three
  // frames (copies of frame 0 the encoder padded with), so those outputs are fitted without its rows.
  auto gram = at::zeros({inputs, inputs}, at::kDouble), cross = at::zeros({inputs, outputs}, at::kDouble);
  auto gram_first = gram.clone(), cross_first = cross.clone();
  for (int64_t i = 0; i < clips.size(0); ++i) {  // one clip at a time: the pixel rows of many clips take gigabytes
    const auto clip = clips.narrow(0, i, 1).to(device, at::kFloat);  // [1, F, 3, H, W]
    const auto latents = vae->encode(clip);                            // [1, T, C, h, w]
    const auto missed = pad_first_frame(clip) - apply_parallel(vae->decoder, latents);  // what the conv path leaves
    const auto y = pixel_groups(missed).flatten(2).transpose(1, 2).to(at::kCPU, at::kDouble);  // [T, h*w, 768]
    auto x = at::im2col(latents.squeeze(0), {k, k}, {1, 1}, {k / 2, k / 2}, {1, 1})  // [T, C*k*k, h*w], zero-padded
                 .transpose(1, 2).to(at::kCPU, at::kDouble);
    x = at::cat({x, at::ones({x.size(0), x.size(1), 1}, x.options())}, 2);  // [T, h*w, inputs]
    gram += at::einsum("tri,trj->ij", {x, x});
    cross += at::einsum("tri,tro->io", {x, y});
    gram_first += x[0].t().mm(x[0]);
    cross_first += x[0].t().mm(y[0]);
  }
  // A whisker of ridge keeps the solves well posed where a latent channel is (near) constant on these clips.
  auto solve = [&](const at::Tensor& g, const at::Tensor& c) {
    return at::linalg_solve(g + 1e-9 * g.diagonal().mean() * at::eye(inputs, g.options()), c);
  };
  const auto solution = at::cat({solve(gram - gram_first, (cross - cross_first).narrow(1, 0, last_frame)),
                                 solve(gram, cross.narrow(1, last_frame, outputs - last_frame))}, 1);  // [inputs, 768]
  auto& conv = *vae->decoder_linear;
  conv.weight.copy_(solution.narrow(0, 0, inputs - 1).t().reshape(conv.weight.sizes()));
  conv.bias.copy_(solution.select(0, inputs - 1));
  vae->train(was_training);
}

StreamingDecoder::StreamingDecoder(TinyVae vae) : vae_(std::move(vae)) { reset(); }

void StreamingDecoder::reset() {
  memory_.assign(vae_->decoder->size(), at::Tensor());
  latents_seen_ = 0;
}

void StreamingDecoder::run(size_t first_layer, at::Tensor x, std::vector<at::Tensor>& out) {
  auto& layers = *vae_->decoder;
  for (size_t i = first_layer; i < layers.size(); ++i) {
    auto layer = layers[i];
    if (auto* mb = layer->as<MemBlock>()) {
      at::Tensor past = memory_[i].defined() ? memory_[i] : at::zeros_like(x);
      memory_[i] = x;
      x = mb->forward(x, past);
    } else if (auto* grow = layer->as<TGrow>()) {
      auto frames = grow->forward(x);  // [N*stride, C, H, W], frames of one batch item consecutive
      const int64_t N = x.size(0);
      auto per_item = frames.view({N, grow->stride, frames.size(1), frames.size(2), frames.size(3)});
      for (int64_t j = 0; j < grow->stride; ++j) run(i + 1, per_item.select(1, j), out);  // causal order
      return;
    } else {
      x = apply_framewise(*layer, x);
    }
  }
  out.push_back(x);
}

at::Tensor StreamingDecoder::push(const at::Tensor& latent) {
  TORCH_CHECK(latent.dim() == 4, "StreamingDecoder::push: latent must be [N, C, h, w], got ", latent.sizes());
  std::vector<at::Tensor> frames;
  run(0, latent, frames);  // 4 frames per latent
  auto four = at::stack(frames, 1);  // [N, 4, 3, H, W]
  if (vae_->decoder_linear) four = four + vae_->linear_decode(latent.unsqueeze(1));
  const int64_t skip = latents_seen_ == 0 ? 3 : 0;  // the decoder's three leading frames are dropped
  ++latents_seen_;
  return four.narrow(1, skip, 4 - skip).clamp(0, 1);
}

}  // namespace ms
