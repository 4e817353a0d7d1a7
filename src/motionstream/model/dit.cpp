#include "motionstream/model/dit.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/normalization.h>

#include <torch/version.h>

#include <cmath>

namespace ms {

namespace nn = torch::nn;

at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim) {
  const int64_t half = dim / 2;
  auto opts = at::TensorOptions().dtype(at::kDouble).device(t.device());
  auto freq = at::pow(10000.0, -at::arange(half, opts) / static_cast<double>(half));  // [half]
  auto args = t.to(at::kDouble).unsqueeze(-1) * freq;                                // [..., half]
  return at::cat({at::cos(args), at::sin(args)}, -1).to(at::kFloat);
}

at::Tensor patchify(const at::Tensor& x) {
  const auto B = x.size(0), C = x.size(1), F = x.size(2), H = x.size(3), W = x.size(4);
  TORCH_CHECK(H % 2 == 0 && W % 2 == 0, "patchify: latent height and width must be even, got ", H, "x", W);
  return x.view({B, C, F, H / 2, 2, W / 2, 2})
      .permute({0, 2, 3, 5, 1, 4, 6})  // [B, F, h, w, C, ph, pw]
      .reshape({B, F * (H / 2) * (W / 2), C * 4});
}

at::Tensor unpatchify(const at::Tensor& tokens, const TokenGrid& g, int64_t channels) {
  const auto B = tokens.size(0);
  return tokens.view({B, g.frames, g.h, g.w, 2, 2, channels})
      .permute({0, 6, 1, 2, 4, 3, 5})  // [B, C, F, h, ph, w, pw]
      .reshape({B, channels, g.frames, g.h * 2, g.w * 2});
}

namespace {
// LayerNorm without affine parameters; the kernel accumulates in float32 whatever the input type, like Wan.
at::Tensor plain_norm(const at::Tensor& x, double eps) { return at::layer_norm(x, {x.size(-1)}, {}, {}, eps); }
// x: [B, L, D] with L = F * HW; shift/scale: [B, F, 1, D] -> x * (1 + scale) + shift, frame by frame.
at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, const TokenGrid& g) {
  const auto B = x.size(0), D = x.size(2);
  auto xf = x.view({B, g.frames, g.tokens_per_frame(), D});
  return at::addcmul(shift, xf, 1 + scale).view({B, g.tokens(), D});  // one pass over x
}
// residual + y * gate, frame by frame. residual, y: [B, L, D]; gate: [B, F, 1, D]
at::Tensor add_gated(const at::Tensor& residual, const at::Tensor& y, const at::Tensor& gate, const TokenGrid& g) {
  const auto B = y.size(0), D = y.size(2);
  const std::vector<int64_t> frames{B, g.frames, g.tokens_per_frame(), D};
  return at::addcmul(residual.view(frames), y.view(frames), gate).view({B, g.tokens(), D});
}
at::Tensor split_heads(const at::Tensor& x, int64_t heads) {  // [B, L, D] -> [B, L, H, d]
  return x.view({x.size(0), x.size(1), heads, x.size(2) / heads});
}
}  // namespace

RmsNormImpl::RmsNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor RmsNormImpl::forward(const at::Tensor& x) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  if (x.is_cuda()) return at::rms_norm(x, {x.size(-1)}, weight, eps_);  // fused, float32 inside
#endif
  auto xf = x.to(at::kFloat);
  auto normed = xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps_);
  return normed.to(x.scalar_type()) * weight;
}

AttentionProjImpl::AttentionProjImpl(int64_t dim, int64_t heads, double eps, bool image_branch) : heads(heads) {
  q = register_module("q", nn::Linear(dim, dim));
  k = register_module("k", nn::Linear(dim, dim));
  v = register_module("v", nn::Linear(dim, dim));
  o = register_module("o", nn::Linear(dim, dim));
  norm_q = register_module("norm_q", RmsNorm(dim, eps));
  norm_k = register_module("norm_k", RmsNorm(dim, eps));
  if (image_branch) {
    k_img = register_module("k_img", nn::Linear(dim, dim));
    v_img = register_module("v_img", nn::Linear(dim, dim));
    norm_k_img = register_module("norm_k_img", RmsNorm(dim, eps));
  }
}

ImageEmbeddingImpl::ImageEmbeddingImpl(int64_t image_dim, int64_t dim) {
  proj = register_module("proj", nn::Sequential(nn::LayerNorm(nn::LayerNormOptions({image_dim}).eps(1e-5)),
                                                nn::Linear(image_dim, image_dim), nn::GELU(),
                                                nn::Linear(image_dim, dim),
                                                nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-5))));
}

DitBlockImpl::DitBlockImpl(const DitConfig& c) : dim_(c.dim), eps_(c.eps) {
  modulation = register_parameter("modulation", at::randn({1, 6, c.dim}) / std::sqrt(static_cast<double>(c.dim)));
  self_attn = register_module("self_attn", AttentionProj(c.dim, c.num_heads, c.eps));
  cross_attn = register_module("cross_attn", AttentionProj(c.dim, c.num_heads, c.eps, c.image_branch()));
  norm3 = register_module("norm3", nn::LayerNorm(nn::LayerNormOptions({c.dim}).eps(c.eps)));
  ffn = register_module("ffn", nn::Sequential(nn::Linear(c.dim, c.ffn_dim),
                                              nn::GELU(nn::GELUOptions().approximate("tanh")),
                                              nn::Linear(c.ffn_dim, c.dim)));
}

std::pair<at::Tensor, at::Tensor> DitBlockImpl::text_kv(const at::Tensor& context) {
  return {split_heads(cross_attn->norm_k(cross_attn->k(context)), cross_attn->heads),
          split_heads(cross_attn->v(context), cross_attn->heads)};
}

std::pair<at::Tensor, at::Tensor> DitBlockImpl::image_kv(const at::Tensor& context) {
  TORCH_CHECK(!cross_attn->k_img.is_empty(), "DitBlock: this block has no image cross-attention (k_img, v_img)");
  return {split_heads(cross_attn->norm_k_img(cross_attn->k_img(context)), cross_attn->heads),
          split_heads(cross_attn->v_img(context), cross_attn->heads)};
}

at::Tensor DitBlockImpl::forward(const at::Tensor& x_in, const at::Tensor& e0, const TokenGrid& g,
                                 const at::Tensor& text_k, const at::Tensor& text_v, SelfAttention& self_attention,
                                 int64_t index, const at::Tensor& image_k, const at::Tensor& image_v) {
  const auto B = x_in.size(0), L = x_in.size(1);
  auto mod = modulation.unsqueeze(0) + e0;  // [B, F, 6, D]
  auto part = [&](int64_t i) { return mod.select(2, i).unsqueeze(2); };  // [B, F, 1, D]
  at::Tensor x = x_in;

  // Self-attention (RoPE and key source decided by self_attention).
  auto h = modulate(plain_norm(x, eps_), part(0), part(1), g);
  auto& sa = *self_attn;
  auto q = split_heads(sa.norm_q(sa.q(h)), sa.heads);  // [B, L, H, d]
  auto k = split_heads(sa.norm_k(sa.k(h)), sa.heads);
  auto v = split_heads(sa.v(h), sa.heads);
  auto y = sa.o(self_attention.attend(index, q, k, v).reshape({B, L, dim_}));
  x = add_gated(x, y, part(2), g);

  // Cross-attention to the text, plus to the CLIP image tokens when given (no gate, affine LayerNorm).
  auto& ca = *cross_attn;
  auto cq = split_heads(ca.norm_q(ca.q(norm3(x))), ca.heads);
  auto cross = attention(cq, text_k, text_v);  // [B, L, H, d]
  if (image_k.defined()) cross = cross + attention(cq, image_k, image_v);  // summed before o, as in Wan's I2V
  x = x + ca.o(cross.reshape({B, L, dim_}));

  // Feed-forward.
  auto f = ffn->forward(modulate(plain_norm(x, eps_), part(3), part(4), g));
  return add_gated(x, f, part(5), g);
}

DitHeadImpl::DitHeadImpl(const DitConfig& c) : eps_(c.eps) {
  modulation = register_parameter("modulation", at::randn({1, 2, c.dim}) / std::sqrt(static_cast<double>(c.dim)));
  head = register_module("head", nn::Linear(c.dim, c.out_features()));
}

at::Tensor DitHeadImpl::forward(const at::Tensor& x, const at::Tensor& e, const TokenGrid& g) {
  auto mh = modulation.unsqueeze(0) + e.unsqueeze(2);  // [B, F, 2, D]
  auto shift = mh.select(2, 0).unsqueeze(2), scale = mh.select(2, 1).unsqueeze(2);
  return head(modulate(plain_norm(x, eps_), shift, scale, g));
}

WanDiTImpl::WanDiTImpl(const DitConfig& config) : config_(config) {
  config_.validate();
  const auto& c = config_;
  patch_embedding = register_module(
      "patch_embedding", nn::Conv3d(nn::Conv3dOptions(c.in_channels(), c.dim, {c.patch_t, c.patch_h, c.patch_w})
                                        .stride({c.patch_t, c.patch_h, c.patch_w})));
  text_embedding = register_module(
      "text_embedding", nn::Sequential(nn::Linear(c.text_dim, c.dim), nn::GELU(nn::GELUOptions().approximate("tanh")),
                                       nn::Linear(c.dim, c.dim)));
  time_embedding = register_module("time_embedding",
                                   nn::Sequential(nn::Linear(c.freq_dim, c.dim), nn::SiLU(), nn::Linear(c.dim, c.dim)));
  time_projection = register_module("time_projection", nn::Sequential(nn::SiLU(), nn::Linear(c.dim, 6 * c.dim)));
  blocks = register_module("blocks", nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) blocks->push_back(DitBlock(c));
  head = register_module("head", DitHead(c));
  if (c.image_branch()) img_emb = register_module("img_emb", ImageEmbedding(c.image_token_dim, c.dim));
  if (c.track_channels > 0) {
    track_head = register_module("track_head", TrackHead(c.packed_track_channels(), c.track_channels));
    zero_track_input_weights(*this);
  }
}

TextKv WanDiTImpl::encode_text(const at::Tensor& text) {
  TORCH_CHECK(text.dim() == 3 && text.size(2) == config_.text_dim, "encode_text: expected [B, Lt, ",
              config_.text_dim, "], got ", text.sizes());
  TORCH_CHECK(text.size(1) <= config_.text_len, "encode_text: ", text.size(1), " text tokens exceed text_len ",
              config_.text_len);
  auto param = patch_embedding->weight;
  auto padded = at::constant_pad_nd(text.to(param.options()), {0, 0, 0, config_.text_len - text.size(1)});
  auto context = text_embedding->forward(padded);  // [B, text_len, D]
  TextKv kv;
  for (const auto& block : *blocks) {
    auto [k, v] = block->as<DitBlock>()->text_kv(context);
    kv.k.push_back(k);
    kv.v.push_back(v);
  }
  return kv;
}

ImageKv WanDiTImpl::encode_image(const at::Tensor& tokens) {
  const auto& c = config_;
  TORCH_CHECK(c.image_branch(), "encode_image: this model (", c.name,
              ") has no CLIP image cross-attention (DitConfig.image_tokens is 0)");
  TORCH_CHECK(tokens.dim() == 3 && tokens.size(1) == c.image_tokens && tokens.size(2) == c.image_token_dim,
              "encode_image: image tokens must be [B, ", c.image_tokens, ", ", c.image_token_dim, "], got ",
              tokens.sizes());
  auto context = img_emb(tokens.to(patch_embedding->weight.options()));  // [B, Li, D]
  ImageKv kv;
  for (const auto& block : *blocks) {
    auto [k, v] = block->as<DitBlock>()->image_kv(context);
    kv.k.push_back(k);
    kv.v.push_back(v);
  }
  return kv;
}

at::Tensor WanDiTImpl::assemble_input(const DitInput& in) {
  const auto& c = config_;
  TORCH_CHECK(in.noisy.defined() && in.noisy.dim() == 5 && in.noisy.size(1) == c.latent_channels,
              "WanDiT: noisy latent must be [B, ", c.latent_channels, ", F, H, W], got ",
              in.noisy.defined() ? in.noisy.sizes() : at::IntArrayRef{});
  const auto B = in.noisy.size(0), F = in.noisy.size(2), H = in.noisy.size(3), W = in.noisy.size(4);
  std::vector<at::Tensor> parts{in.noisy};
  if (c.image_condition) {
    TORCH_CHECK(in.condition.defined(), "WanDiT: this model needs the image condition (mask + first-frame latent)");
    TORCH_CHECK(in.condition.sizes() == at::IntArrayRef({B, 4 + c.latent_channels, F, H, W}),
                "WanDiT: condition must be [", B, ", ", 4 + c.latent_channels, ", ", F, ", ", H, ", ", W, "], got ",
                in.condition.sizes());
    parts.push_back(in.condition.to(in.noisy.scalar_type()));
  } else {
    TORCH_CHECK(!in.condition.defined(), "WanDiT: an image condition was given to a text-to-video model");
  }
  if (c.track_channels > 0) {
    if (in.tracks.defined()) {
      TORCH_CHECK(in.tracks.sizes() == at::IntArrayRef({B, c.packed_track_channels(), F, H, W}),
                  "WanDiT: tracks must be [", B, ", ", c.packed_track_channels(), ", ", F, ", ", H, ", ", W,
                  "], got ", in.tracks.sizes());
      parts.push_back(track_head(in.tracks.to(in.noisy.scalar_type())));
    } else {  // no tracks = an all-zero raster, the same input track dropout trains
      parts.push_back(track_head->bias.to(in.noisy.scalar_type()).view({1, -1, 1, 1, 1}).expand({B, -1, F, H, W}));
    }
  } else {
    TORCH_CHECK(!in.tracks.defined(), "WanDiT: tracks were given to a model without a track head");
  }
  return parts.size() == 1 ? in.noisy : at::cat(parts, 1);
}

at::Tensor WanDiTImpl::forward(const DitInput& in, const TextKv& text, SelfAttention& self_attention) {
  const auto& c = config_;
  auto x_in = assemble_input(in);  // [B, Cin, F, H, W]
  const auto B = x_in.size(0);
  const TokenGrid grid{x_in.size(2), x_in.size(3) / 2, x_in.size(4) / 2};
  TORCH_CHECK(in.timesteps.defined() && in.timesteps.sizes() == at::IntArrayRef({B, grid.frames}),
              "WanDiT: timesteps must be [", B, ", ", grid.frames, "] (one per latent frame)");
  TORCH_CHECK(static_cast<int64_t>(text.k.size()) == c.num_layers, "WanDiT: text K/V has ", text.k.size(),
              " blocks, the model ", c.num_layers);
  if (c.image_branch()) {
    TORCH_CHECK(!text.image.empty(), "WanDiT: this model has the CLIP image cross-attention (image_tokens ",
                c.image_tokens, "): give the first frame's CLIP tokens (TextKv.image = encode_image(tokens))");
    TORCH_CHECK(static_cast<int64_t>(text.image.k.size()) == c.num_layers, "WanDiT: image K/V has ",
                text.image.k.size(), " blocks, the model ", c.num_layers);
  } else {
    TORCH_CHECK(text.image.empty(), "WanDiT: image K/V were given to a model without the CLIP image cross-attention");
  }

  auto x = at::linear(patchify(x_in), patch_embedding->weight.flatten(1), patch_embedding->bias);  // [B, L, D]
  auto t_emb = timestep_embedding(in.timesteps, c.freq_dim).to(x.scalar_type());                 // [B, F, 256]
  auto e = time_embedding->forward(t_emb);                                                       // [B, F, D]
  auto e0 = time_projection->forward(e).view({B, grid.frames, 6, c.dim});                        // [B, F, 6, D]

  self_attention.begin(grid);
  for (int64_t i = 0; i < c.num_layers; ++i)
    x = blocks[i]->as<DitBlock>()->forward(x, e0, grid, text.k[i], text.v[i], self_attention, i,
                                           c.image_branch() ? text.image.k[i] : at::Tensor(),
                                           c.image_branch() ? text.image.v[i] : at::Tensor());
  auto out = head(x, e, grid);  // [B, L, 4 * C]
  return unpatchify(out, grid, c.latent_channels);
}

void zero_track_input_weights(WanDiTImpl& model) {
  const auto& c = model.config();
  if (c.track_channels == 0) return;
  at::NoGradGuard no_grad;
  model.patch_embedding->weight.narrow(1, c.in_channels() - c.track_channels, c.track_channels).zero_();
}

void init_dit_weights(WanDiTImpl& model, uint64_t seed) {
  at::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  auto xavier = [&](at::Tensor w) {  // on the [out, in] view, like Wan's xavier_uniform_ on the flattened conv
    auto w2 = w.view({w.size(0), -1});
    const double bound = std::sqrt(6.0 / static_cast<double>(w2.size(0) + w2.size(1)));
    w.copy_(at::empty(w.sizes()).uniform_(-bound, bound, gen));
  };
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    auto& p = item.value();
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (name.rfind("text_embedding.", 0) == 0 || name.rfind("time_embedding.", 0) == 0) {
      is_bias ? void(p.zero_()) : void(p.copy_(at::empty(p.sizes()).normal_(0.0, 0.02, gen)));
    } else if (name.rfind("head.head.", 0) == 0) {
      p.zero_();
    } else if (name.find("modulation") != std::string::npos) {
      p.copy_(at::empty(p.sizes()).normal_(0.0, 1.0 / std::sqrt(static_cast<double>(p.size(-1))), gen));
    } else if (is_bias) {
      p.zero_();
    } else if (p.dim() >= 2) {
      xavier(p);
    }  // RMS/LayerNorm weights keep their ones
  }
  zero_track_input_weights(model);
}

at::Tensor image_condition(const at::Tensor& image_latent, int64_t first_frame, int64_t frames) {
  TORCH_CHECK(image_latent.dim() == 4, "image_condition: image latent must be [B, C, H, W], got ",
              image_latent.sizes());
  const auto B = image_latent.size(0), C = image_latent.size(1), H = image_latent.size(2), W = image_latent.size(3);
  auto cond = at::empty({B, 4 + C, frames, H, W}, image_latent.options());  // mask (4) | latent (C)
  write_image_condition(cond, image_latent, first_frame);
  return cond;
}

at::Tensor condition_without_motion(const at::Tensor& condition) {
  at::Tensor out = condition.clone();
  const int64_t T = out.size(2);
  if (T > 1) out.narrow(1, 4, out.size(1) - 4).narrow(2, 1, T - 1).zero_();
  return out;
}

void write_image_condition(at::Tensor& out, const at::Tensor& image_latent, int64_t first_frame) {
  TORCH_CHECK(image_latent.dim() == 4 && out.dim() == 5 && out.size(0) == image_latent.size(0) &&
                  out.size(1) == 4 + image_latent.size(1) && out.size(3) == image_latent.size(2) &&
                  out.size(4) == image_latent.size(3),
              "write_image_condition: condition ", out.sizes(), " does not fit image latent ", image_latent.sizes());
  const auto C = image_latent.size(1);
  out.zero_();
  if (first_frame == 0) {
    out.select(2, 0).narrow(1, 0, 4).fill_(1.0);
    out.select(2, 0).narrow(1, 4, C).copy_(image_latent);
  }
}

}  // namespace ms
