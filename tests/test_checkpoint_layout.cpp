// Recognising published checkpoint layouts from names and shapes.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "motionstream/io/checkpoint_layout.h"
#include "motionstream/model/dit_config.h"
#include "motionstream/model/vae/tiny_vae.h"

using namespace ms;

namespace {
std::vector<io::TensorInfo> manifest(const DitConfig& c, const std::string& prefix) {
  std::vector<io::TensorInfo> out;
  for (const auto& [name, shape] : c.parameter_shapes()) out.push_back({prefix + name, io::DType::BF16, shape, 0, 0});
  return out;
}
}  // namespace

TEST(CheckpointLayout, WanDitVariantsAndSelfForcingWrappers) {
  auto t2v = io::recognise_layout(manifest(dit_preset("wan-1.3b"), ""));
  EXPECT_EQ(t2v.kind, "wan-dit");
  EXPECT_NE(t2v.detail.find("text-to-video, 16 input channels, dim 1536, 30 blocks"), std::string::npos) << t2v.detail;
  auto i2v = io::recognise_layout(manifest(dit_preset("wan-1.3b-i2v"), "model."));
  EXPECT_NE(i2v.detail.find("image-to-video, 36 input channels"), std::string::npos) << i2v.detail;
  EXPECT_EQ(i2v.prefix, "model.");
  auto sf = manifest(dit_preset("wan-1.3b"), "generator.model.");
  for (auto& t : manifest(dit_preset("wan-1.3b"), "critic.model.")) sf.push_back(t);
  auto self_forcing = io::recognise_layout(sf);
  EXPECT_EQ(self_forcing.kind, "wan-dit");
  EXPECT_EQ(self_forcing.wrappers, (std::vector<std::string>{"generator", "critic"}));
  auto motion = io::recognise_layout(manifest(dit_preset("wan-1.3b-motion"), ""));
  EXPECT_NE(motion.detail.find("track channels, 52 input channels"), std::string::npos) << motion.detail;
}

TEST(CheckpointLayout, AutoencodersAndEncoders) {
  TinyVae vae(tiny_vae_preset("taehv-wan"));
  std::vector<io::TensorInfo> names;
  for (const auto& p : vae->named_parameters()) names.push_back({p.key(), io::DType::F16, p.value().sizes().vec(), 0, 0});
  auto taehv = io::recognise_layout(names);
  EXPECT_EQ(taehv.kind, "taehv");
  EXPECT_NE(taehv.detail.find("16 latent channels, decoder width 256"), std::string::npos) << taehv.detail;
  EXPECT_EQ(io::recognise_layout({{"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", io::DType::BF16, {32, 64}, 0, 0}}).kind,
            "umt5-encoder");
  EXPECT_EQ(io::recognise_layout({{"decoder.conv_in.weight", io::DType::BF16, {384, 16, 3, 3, 3}, 0, 0}}).kind, "wan-vae");
  EXPECT_EQ(io::recognise_layout({{"visual.transformer.resblocks.0.attn.in_proj_weight", io::DType::F16, {3840, 1280}, 0, 0}}).kind,
            "clip-vision");
  EXPECT_EQ(io::recognise_layout({{"something.else", io::DType::F32, {3}, 0, 0}}).kind, "unknown");
}
