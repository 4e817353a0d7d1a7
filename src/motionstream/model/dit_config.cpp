#include "motionstream/model/dit_config.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace ms {

namespace {
std::invalid_argument config_error(const std::string& field, const std::string& why) {
  return std::invalid_argument("DitConfig." + field + ": " + why);
}
}  // namespace

void DitConfig::validate() const {
  auto positive = [](const char* field, int64_t v) {
    if (v <= 0) throw config_error(field, "must be positive, got " + std::to_string(v));
  };
  positive("latent_channels", latent_channels);
  positive("dim", dim);
  positive("ffn_dim", ffn_dim);
  positive("freq_dim", freq_dim);
  positive("text_dim", text_dim);
  positive("text_len", text_len);
  positive("num_heads", num_heads);
  positive("num_layers", num_layers);
  positive("track_id_dim", track_id_dim);
  if (image_tokens < 0) throw config_error("image_tokens", "must be >= 0, got " + std::to_string(image_tokens));
  positive("image_token_dim", image_token_dim);
  if (track_channels < 0) throw config_error("track_channels", "must be >= 0, got " + std::to_string(track_channels));
  if (dim % num_heads != 0)
    throw config_error("num_heads", std::to_string(num_heads) + " does not divide dim " + std::to_string(dim));
  if (head_dim() % 2 != 0 || head_dim() < 6)
    throw config_error("dim", "head_dim " + std::to_string(head_dim()) + " must be even and >= 6 for 3D RoPE");
  if (freq_dim % 2 != 0) throw config_error("freq_dim", "must be even, got " + std::to_string(freq_dim));
  if (track_id_dim % 2 != 0) throw config_error("track_id_dim", "must be even, got " + std::to_string(track_id_dim));
  if (patch_t != 1 || patch_h != 2 || patch_w != 2)
    throw config_error("patch", "only the Wan patch (1, 2, 2) is supported");
  if ((track_latent_copy || track_warp_hint) && !(image_condition && track_channels > 0))
    throw config_error(track_latent_copy ? "track_latent_copy" : "track_warp_hint",
                       "needs the I2V condition and a track head (image_condition, track_channels > 0)");
  if (track_latent_copy && track_warp_hint)
    throw config_error("track_warp_hint", "and track_latent_copy both write the later frames' condition: pick one");
}

ShapeManifest DitConfig::parameter_shapes() const {
  ShapeManifest p;
  const int64_t D = dim;
  p.push_back({"patch_embedding.weight", {D, in_channels(), patch_t, patch_h, patch_w}});
  p.push_back({"patch_embedding.bias", {D}});
  p.push_back({"text_embedding.0.weight", {D, text_dim}});
  p.push_back({"text_embedding.0.bias", {D}});
  p.push_back({"text_embedding.2.weight", {D, D}});
  p.push_back({"text_embedding.2.bias", {D}});
  p.push_back({"time_embedding.0.weight", {D, freq_dim}});
  p.push_back({"time_embedding.0.bias", {D}});
  p.push_back({"time_embedding.2.weight", {D, D}});
  p.push_back({"time_embedding.2.bias", {D}});
  p.push_back({"time_projection.1.weight", {6 * D, D}});
  p.push_back({"time_projection.1.bias", {6 * D}});
  for (int64_t i = 0; i < num_layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    p.push_back({b + "modulation", {1, 6, D}});
    for (const std::string attn : {"self_attn.", "cross_attn."}) {
      for (const char* proj : {"q", "k", "v", "o"}) {
        p.push_back({b + attn + proj + ".weight", {D, D}});
        p.push_back({b + attn + proj + ".bias", {D}});
      }
      p.push_back({b + attn + "norm_q.weight", {D}});
      p.push_back({b + attn + "norm_k.weight", {D}});
      if (attn == "cross_attn." && image_branch()) {  // Wan's WanI2VCrossAttention: after the text projections
        for (const char* proj : {"k_img", "v_img"}) {
          p.push_back({b + attn + proj + ".weight", {D, D}});
          p.push_back({b + attn + proj + ".bias", {D}});
        }
        p.push_back({b + attn + "norm_k_img.weight", {D}});
      }
    }
    p.push_back({b + "norm3.weight", {D}});
    p.push_back({b + "norm3.bias", {D}});
    p.push_back({b + "ffn.0.weight", {ffn_dim, D}});
    p.push_back({b + "ffn.0.bias", {ffn_dim}});
    p.push_back({b + "ffn.2.weight", {D, ffn_dim}});
    p.push_back({b + "ffn.2.bias", {D}});
  }
  p.push_back({"head.modulation", {1, 2, D}});
  p.push_back({"head.head.weight", {out_features(), D}});
  p.push_back({"head.head.bias", {out_features()}});
  if (image_branch()) {  // img_emb.proj: LayerNorm(Ci), Linear(Ci, Ci), GELU, Linear(Ci, D), LayerNorm(D)
    const int64_t Ci = image_token_dim;
    p.push_back({"img_emb.proj.0.weight", {Ci}});
    p.push_back({"img_emb.proj.0.bias", {Ci}});
    p.push_back({"img_emb.proj.1.weight", {Ci, Ci}});
    p.push_back({"img_emb.proj.1.bias", {Ci}});
    p.push_back({"img_emb.proj.3.weight", {D, Ci}});
    p.push_back({"img_emb.proj.3.bias", {D}});
    p.push_back({"img_emb.proj.4.weight", {D}});
    p.push_back({"img_emb.proj.4.bias", {D}});
  }
  if (track_channels > 0) {
    p.push_back({"track_head.weight", {track_channels, packed_track_channels(), 1, 1, 1}});
    p.push_back({"track_head.bias", {track_channels}});
  }
  return p;
}

int64_t DitConfig::parameter_count() const { return manifest_parameter_count(parameter_shapes()); }

double DitConfig::forward_flops(int64_t tokens, int64_t keys) const {
  const double L = static_cast<double>(tokens), D = static_cast<double>(dim), F = static_cast<double>(ffn_dim);
  const double per_block = 2.0 * L * (6.0 * D * D + 2.0 * D * F)     // q, k, v, o, cross q, o, FFN
                           + 4.0 * L * static_cast<double>(keys) * D  // self-attention scores and values
                           + 4.0 * L * static_cast<double>(text_len + image_tokens) * D;  // cross-attention
  const double patch = 2.0 * L * static_cast<double>(in_channels() * patch_t * patch_h * patch_w) * D;
  const double head = 2.0 * L * D * static_cast<double>(out_features());
  // The track head runs at latent resolution: patch_h * patch_w positions per token.
  const double tracks = 2.0 * L * static_cast<double>(patch_h * patch_w * packed_track_channels() * track_channels);
  return static_cast<double>(num_layers) * per_block + patch + head + tracks;
}

DitConfig dit_preset(const std::string& name) {
  DitConfig c;  // defaults are the Wan2.1 1.3B numbers
  c.name = name;
  if (name == "wan-1.3b") return c;
  if (name == "wan-1.3b-i2v") {  // MotionStream's 1.3B keeps Wan2.1's CLIP image cross-attention (SPEC.md 2)
    c.image_condition = true;
    c.image_tokens = 257;
    return c;
  }
  if (name == "wan-1.3b-motion") {
    c.image_condition = true;
    c.image_tokens = 257;
    c.track_channels = 16;
    return c;
  }
  if (name == "wan-1.3b-motion-t2v") {  // grown from a T2V 1.3B (Wan2.1-T2V, Self-Forcing): no CLIP branch
    c.image_condition = true;
    c.track_channels = 16;
    return c;
  }
  if (name == "wan-14b-i2v") {  // Wan2.1-I2V-14B (480P and 720P share the layout)
    c.image_condition = true;
    c.image_tokens = 257;
    c.dim = 5120;
    c.ffn_dim = 13824;
    c.num_heads = 40;
    c.num_layers = 40;
    return c;
  }
  if (name == "cpu-small") {  // ~5M parameters: the CPU streaming benchmark shape
    c.image_condition = true;
    c.track_channels = 16;
    c.dim = 256;
    c.ffn_dim = 1024;
    c.num_heads = 4;
    c.num_layers = 4;
    c.text_dim = 256;
    c.text_len = 32;
    return c;
  }
  if (name == "tiny") {  // unit tests: every code path, milliseconds per forward
    c.image_condition = true;
    c.track_channels = 4;
    c.track_id_dim = 8;
    c.latent_channels = 4;
    c.dim = 48;
    c.ffn_dim = 96;
    c.freq_dim = 32;
    c.num_heads = 2;
    c.num_layers = 2;
    c.text_dim = 24;
    c.text_len = 7;
    return c;
  }
  if (name == "tiny-clip") {  // unit tests of the CLIP image branch
    DitConfig t = dit_preset("tiny");
    t.name = name;
    t.image_tokens = 5;
    t.image_token_dim = 12;
    return t;
  }
  if (name == "tiny-motion") {  // training tests: the tiny shapes in a 16-channel latent space
    DitConfig t = dit_preset("tiny");
    t.name = name;
    t.latent_channels = 16;
    t.text_len = 16;
    return t;
  }
  std::string known;
  for (const auto& n : dit_preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown model preset '" + name + "' (known: " + known + ")");
}

std::vector<std::string> dit_preset_names() {
  return {"wan-1.3b", "wan-1.3b-i2v", "wan-1.3b-motion", "wan-1.3b-motion-t2v", "wan-14b-i2v", "cpu-small", "tiny", "tiny-motion", "tiny-clip"};
}

void to_json(nlohmann::json& j, const DitConfig& c) {
  j = nlohmann::json{{"name", c.name},
                     {"latent_channels", c.latent_channels},
                     {"image_condition", c.image_condition},
                     {"track_channels", c.track_channels},
                     {"track_id_dim", c.track_id_dim},
                     {"track_latent_copy", c.track_latent_copy},
                     {"track_warp_hint", c.track_warp_hint},
                     {"dim", c.dim},
                     {"ffn_dim", c.ffn_dim},
                     {"freq_dim", c.freq_dim},
                     {"text_dim", c.text_dim},
                     {"text_len", c.text_len},
                     {"num_heads", c.num_heads},
                     {"num_layers", c.num_layers},
                     {"eps", c.eps},
                     {"image_tokens", c.image_tokens},
                     {"image_token_dim", c.image_token_dim}};
}

void from_json(const nlohmann::json& j, DitConfig& c) {
  if (!j.is_object()) throw std::invalid_argument("DitConfig: expected a JSON object");
  DitConfig out = j.contains("preset") ? dit_preset(j.at("preset").get<std::string>()) : DitConfig{};
  for (const auto& [key, value] : j.items()) {
    try {
      if (key == "preset") continue;
      else if (key == "name") out.name = value.get<std::string>();
      else if (key == "latent_channels") out.latent_channels = value.get<int64_t>();
      else if (key == "image_condition") out.image_condition = value.get<bool>();
      else if (key == "track_channels") out.track_channels = value.get<int64_t>();
      else if (key == "track_id_dim") out.track_id_dim = value.get<int64_t>();
      else if (key == "track_latent_copy") out.track_latent_copy = value.get<bool>();
      else if (key == "track_warp_hint") out.track_warp_hint = value.get<bool>();
      else if (key == "dim") out.dim = value.get<int64_t>();
      else if (key == "ffn_dim") out.ffn_dim = value.get<int64_t>();
      else if (key == "freq_dim") out.freq_dim = value.get<int64_t>();
      else if (key == "text_dim") out.text_dim = value.get<int64_t>();
      else if (key == "text_len") out.text_len = value.get<int64_t>();
      else if (key == "num_heads") out.num_heads = value.get<int64_t>();
      else if (key == "num_layers") out.num_layers = value.get<int64_t>();
      else if (key == "eps") out.eps = value.get<double>();
      else if (key == "image_tokens") out.image_tokens = value.get<int64_t>();  // absent (older files): 0
      else if (key == "image_token_dim") out.image_token_dim = value.get<int64_t>();
      else throw config_error(key, "unknown field");
    } catch (const nlohmann::json::exception& e) {
      throw config_error(key, std::string("bad value ") + value.dump() + " (" + e.what() + ")");
    }
  }
  out.validate();
  c = out;
}

}  // namespace ms
