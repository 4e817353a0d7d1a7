// WanVaeConfig: the shape of the Wan2.1 video autoencoder (causal 3D convolutions, 4x temporal and 8x spatial
// compression, 16 latent channels), its presets, its tensor manifest and the published latent statistics.
// Torch-free, so that the CLI can check a checkpoint against a preset without building the model.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "motionstream/model/shape_manifest.h"

namespace ms {

struct WanVaeConfig {
  std::string name = "custom";
  int64_t base_dim = 96;                              // width of the first encoder stage and the last decoder stage
  int64_t z_dim = 16;                                 // latent channels (the encoder head emits 2 * z_dim: mu, log_var)
  std::vector<int64_t> dim_mult{1, 2, 4, 4};          // stage widths = base_dim * dim_mult
  int64_t num_res_blocks = 2;                         // per encoder stage; the decoder has one more per stage
  std::vector<bool> temporal_downsample{false, true, true};  // per encoder stage transition; the decoder mirrors it

  // Encoder stage widths: base_dim * [1, dim_mult...], e.g. 96, 96, 192, 384, 384.
  std::vector<int64_t> encoder_dims() const;
  // Decoder stage widths: base_dim * [dim_mult.back(), reversed dim_mult...], e.g. 384, 384, 384, 192, 96.
  std::vector<int64_t> decoder_dims() const;
  // Temporal compression: 2 per temporally downsampling stage (4 for the published preset).
  int64_t temporal_stride() const;
  // Spatial compression: 2 per stage transition (8 for the published preset).
  int64_t spatial_stride() const;

  // Every parameter in the published state-dict naming, with its shape, in registration order
  // (encoder, conv1, conv2, decoder). Computed from the numbers above alone: nothing is allocated.
  ShapeManifest parameter_shapes() const;
  int64_t parameter_count() const;

  void validate() const;  // throws std::invalid_argument naming the field and value
};

// "wan-vae": the published Wan2.1_VAE.pth layout; "wan-vae-tiny": the same structure at base width 8, for tests.
WanVaeConfig wan_vae_preset(const std::string& name);
std::vector<std::string> wan_vae_preset_names();
bool is_wan_vae_preset(const std::string& name);

// Per-channel statistics of the published VAE's mu, as Wan normalises latents for its diffusion model:
// z_norm = (mu - mean) / std.
extern const std::array<double, 16> kWanLatentMean;
extern const std::array<double, 16> kWanLatentStd;

}  // namespace ms
