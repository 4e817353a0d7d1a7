// DitConfig: the shape of a Wan2.1-layout diffusion transformer, and the named presets.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "motionstream/model/shape_manifest.h"

namespace ms {

struct DitConfig {
  std::string name = "custom";
  // Input channels, concatenated in this order before the patch embedding:
  //   noisy latent (latent_channels) | I2V condition: first-frame mask (4) + first-frame latent (latent_channels)
  //   | track features (track_channels, produced by the track head from the ID-embedding raster).
  int64_t latent_channels = 16;
  bool image_condition = false;   // Wan I2V convention: +4 mask +latent_channels image-latent channels
  int64_t track_channels = 0;     // 0: no track head (plain Wan layout)
  int64_t track_id_dim = 64;      // width of the per-track sinusoidal ID embedding
  // Also copy the first frame's latent along the tracks into the I2V condition of later frames (Wan-Move's latent
  // trajectory guidance; ms::copy_latents_along_tracks): no new weights, a strong hint of what goes where.
  bool track_latent_copy = false;
  // Or the first frame warped along the tracks in pixels and encoded (ms::write_warp_hint): the same hint, but in
  // step with the content's sub-cell position, which the small autoencoder's latents depend on.
  bool track_warp_hint = false;
  int64_t dim = 1536;
  int64_t ffn_dim = 8960;
  int64_t freq_dim = 256;         // sinusoidal timestep embedding width
  int64_t text_dim = 4096;
  int64_t text_len = 512;
  int64_t num_heads = 12;
  int64_t num_layers = 30;
  double eps = 1e-6;
  // Wan I2V's CLIP image cross-attention: every block also attends to `image_tokens` tokens of width
  // `image_token_dim` (257 x 1280 for Wan: CLIP ViT-H/14 penultimate-block features of the first frame), projected
  // once per session by `img_emb`; the two attentions are summed before `o`. 0 = no such branch (T2V layout, and
  // every config.json written before the field existed).
  int64_t image_tokens = 0;
  int64_t image_token_dim = 1280;
  // Patch size over (t, h, w); Wan uses (1, 2, 2) and so does all of this code.
  int64_t patch_t = 1, patch_h = 2, patch_w = 2;

  int64_t head_dim() const { return dim / num_heads; }
  int64_t in_channels() const {
    return latent_channels + (image_condition ? 4 + latent_channels : 0) + track_channels;
  }
  int64_t out_features() const { return latent_channels * patch_t * patch_h * patch_w; }
  // Channels of the packed track raster fed to the track head: 4 pixel frames per latent frame.
  int64_t packed_track_channels() const { return 4 * track_id_dim; }
  bool image_branch() const { return image_tokens > 0; }

  // Every parameter tensor in Wan2.1 state-dict naming, with its shape, in registration order.
  // Computed from the numbers above alone: nothing is allocated.
  ShapeManifest parameter_shapes() const;
  int64_t parameter_count() const;

  // Floating-point operations (2 per multiply-add) of one forward over `tokens` tokens whose self-attention sees
  // `keys` keys (their own included). Counts every matmul, the image cross-attention included; the per-prompt text
  // and per-session image K/V projections and elementwise work are left out (under 1% at every preset).
  double forward_flops(int64_t tokens, int64_t keys) const;

  void validate() const;  // throws std::invalid_argument naming the field and value
};

// Presets: "wan-1.3b" (Wan2.1 1.3B T2V layout), "wan-1.3b-i2v" (I2V channels + CLIP image cross-attention),
// "wan-1.3b-motion" (that + 16 track channels), "wan-1.3b-motion-t2v" (the same without the CLIP branch: a
// MotionStream model grown from a T2V checkpoint such as Wan2.1-T2V-1.3B or Self-Forcing), "wan-14b-i2v" (Wan2.1 I2V 14B layout), "cpu-small" (the CPU
// streaming benchmark model), "tiny" (unit tests), "tiny-motion" (training tests), "tiny-clip" (tiny + a CLIP
// branch of 5 tokens of width 12). Only the wan-* I2V presets and tiny-clip have the CLIP branch.
DitConfig dit_preset(const std::string& name);
std::vector<std::string> dit_preset_names();

void to_json(nlohmann::json& j, const DitConfig& c);
void from_json(const nlohmann::json& j, DitConfig& c);  // unknown keys are refused by name

}  // namespace ms
