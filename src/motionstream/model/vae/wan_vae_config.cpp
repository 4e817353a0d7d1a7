#include "motionstream/model/vae/wan_vae_config.h"

#include <stdexcept>

namespace ms {

namespace {

std::invalid_argument config_error(const std::string& field, const std::string& why) {
  return std::invalid_argument("WanVaeConfig." + field + ": " + why);
}

// The manifest mirrors the module tree of wan_vae.cpp; the WanVae tests check the two agree name by name.
struct ManifestWriter {
  ShapeManifest& out;

  void conv3d(const std::string& name, int64_t in, int64_t out_ch, int64_t kt, int64_t k) {
    out.push_back({name + ".weight", {out_ch, in, kt, k, k}});
    out.push_back({name + ".bias", {out_ch}});
  }
  void conv2d(const std::string& name, int64_t in, int64_t out_ch, int64_t k) {
    out.push_back({name + ".weight", {out_ch, in, k, k}});
    out.push_back({name + ".bias", {out_ch}});
  }
  void video_norm(const std::string& name, int64_t c) { out.push_back({name + ".gamma", {c, 1, 1, 1}}); }
  void image_norm(const std::string& name, int64_t c) { out.push_back({name + ".gamma", {c, 1, 1}}); }

  void residual_block(const std::string& p, int64_t in, int64_t out_ch) {
    video_norm(p + "residual.0", in);
    conv3d(p + "residual.2", in, out_ch, 3, 3);
    video_norm(p + "residual.3", out_ch);
    conv3d(p + "residual.6", out_ch, out_ch, 3, 3);
    if (in != out_ch) conv3d(p + "shortcut", in, out_ch, 1, 1);
  }
  void attention_block(const std::string& p, int64_t dim) {
    image_norm(p + "norm", dim);
    conv2d(p + "to_qkv", dim, 3 * dim, 1);
    conv2d(p + "proj", dim, dim, 1);
  }
  void downsample(const std::string& p, int64_t dim, bool temporal) {
    conv2d(p + "resample.1", dim, dim, 3);  // resample.0 is the asymmetric zero pad
    if (temporal) conv3d(p + "time_conv", dim, dim, 3, 1);
  }
  void upsample(const std::string& p, int64_t dim, bool temporal) {
    conv2d(p + "resample.1", dim, dim / 2, 3);  // resample.0 is the nearest 2x upsample
    if (temporal) conv3d(p + "time_conv", dim, 2 * dim, 3, 1);
  }
  void middle(const std::string& p, int64_t dim) {
    residual_block(p + "0.", dim, dim);
    attention_block(p + "1.", dim);
    residual_block(p + "2.", dim, dim);
  }
};

}  // namespace

std::vector<int64_t> WanVaeConfig::encoder_dims() const {
  std::vector<int64_t> dims{base_dim};
  for (int64_t m : dim_mult) dims.push_back(base_dim * m);
  return dims;
}

std::vector<int64_t> WanVaeConfig::decoder_dims() const {
  std::vector<int64_t> dims{base_dim * dim_mult.back()};
  for (auto it = dim_mult.rbegin(); it != dim_mult.rend(); ++it) dims.push_back(base_dim * *it);
  return dims;
}

int64_t WanVaeConfig::temporal_stride() const {
  int64_t s = 1;
  for (bool t : temporal_downsample) s *= t ? 2 : 1;
  return s;
}

int64_t WanVaeConfig::spatial_stride() const { return int64_t{1} << temporal_downsample.size(); }

void WanVaeConfig::validate() const {
  if (base_dim <= 0) throw config_error("base_dim", "must be positive, got " + std::to_string(base_dim));
  if (z_dim <= 0) throw config_error("z_dim", "must be positive, got " + std::to_string(z_dim));
  if (num_res_blocks <= 0)
    throw config_error("num_res_blocks", "must be positive, got " + std::to_string(num_res_blocks));
  if (dim_mult.empty()) throw config_error("dim_mult", "needs at least one stage");
  for (int64_t m : dim_mult)
    if (m <= 0) throw config_error("dim_mult", "must be positive, got " + std::to_string(m));
  if (temporal_downsample.size() + 1 != dim_mult.size())
    throw config_error("temporal_downsample", "needs " + std::to_string(dim_mult.size() - 1) +
                                                  " entries (one per stage transition), got " +
                                                  std::to_string(temporal_downsample.size()));
  for (int64_t d : decoder_dims())
    if (d % 2 != 0)
      throw config_error("base_dim", "decoder width " + std::to_string(d) + " must be even (upsampling halves it)");
}

ShapeManifest WanVaeConfig::parameter_shapes() const {
  ShapeManifest p;
  ManifestWriter w{p};
  const size_t stages = dim_mult.size();

  // Encoder: frames (3) -> 2 * z_dim (mu and log_var).
  const auto enc = encoder_dims();
  w.conv3d("encoder.conv1", 3, enc[0], 3, 3);
  int64_t index = 0;
  for (size_t i = 0; i < stages; ++i) {
    int64_t in = enc[i];
    for (int64_t r = 0; r < num_res_blocks; ++r, in = enc[i + 1])
      w.residual_block("encoder.downsamples." + std::to_string(index++) + ".", in, enc[i + 1]);
    if (i + 1 != stages)
      w.downsample("encoder.downsamples." + std::to_string(index++) + ".", enc[i + 1], temporal_downsample[i]);
  }
  w.middle("encoder.middle.", enc.back());
  w.video_norm("encoder.head.0", enc.back());
  w.conv3d("encoder.head.2", enc.back(), 2 * z_dim, 3, 3);

  // The 1x1x1 convolutions around the latent.
  w.conv3d("conv1", 2 * z_dim, 2 * z_dim, 1, 1);
  w.conv3d("conv2", z_dim, z_dim, 1, 1);

  // Decoder: z_dim -> frames (3). Each upsampling halves the width it hands to the next stage.
  const auto dec = decoder_dims();
  w.conv3d("decoder.conv1", z_dim, dec[0], 3, 3);
  w.middle("decoder.middle.", dec[0]);
  index = 0;
  for (size_t i = 0; i < stages; ++i) {
    int64_t in = i == 0 ? dec[i] : dec[i] / 2;
    for (int64_t r = 0; r <= num_res_blocks; ++r, in = dec[i + 1])
      w.residual_block("decoder.upsamples." + std::to_string(index++) + ".", in, dec[i + 1]);
    if (i + 1 != stages)
      w.upsample("decoder.upsamples." + std::to_string(index++) + ".", dec[i + 1], temporal_downsample[stages - 2 - i]);
  }
  w.video_norm("decoder.head.0", dec.back());
  w.conv3d("decoder.head.2", dec.back(), 3, 3, 3);
  return p;
}

int64_t WanVaeConfig::parameter_count() const { return manifest_parameter_count(parameter_shapes()); }

WanVaeConfig wan_vae_preset(const std::string& name) {
  WanVaeConfig c;
  c.name = name;
  if (name == "wan-vae") return c;
  if (name == "wan-vae-tiny") {
    c.base_dim = 8;
    return c;
  }
  throw std::invalid_argument("unknown Wan VAE preset '" + name + "' (known: wan-vae, wan-vae-tiny)");
}

std::vector<std::string> wan_vae_preset_names() { return {"wan-vae", "wan-vae-tiny"}; }

bool is_wan_vae_preset(const std::string& name) {
  for (const auto& n : wan_vae_preset_names())
    if (n == name) return true;
  return false;
}

const std::array<double, 16> kWanLatentMean{-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                                            0.4134,  -0.0715, 0.5517,  -0.3632, -0.1922, -0.9497, 0.2503, -0.2921};
const std::array<double, 16> kWanLatentStd{2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                           3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160};

}  // namespace ms
