// Published DiT checkpoints (Wan, diffusers, Self-Forcing/CausVid names) into WanDiT, and the MotionStream
// initialisation of the channels and branches a published file lacks.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "motionstream/io/torch_state_dict.h"
#include "motionstream/model/dit.h"
#include "motionstream/model/dit_checkpoint.h"
#include "scoped_temp_dir.h"
#include "test_util.h"

using namespace ms;

namespace {

// diffusers' names for ours, spelled out here from scripts/convert_wan_to_diffusers.py's renames (applied in order,
// each to its first occurrence), not from the table under test.
std::string diffusers_name(std::string n) {
  static const std::vector<std::pair<std::string, std::string>> renames = {
      {"time_embedding.0", "condition_embedder.time_embedder.linear_1"},
      {"time_embedding.2", "condition_embedder.time_embedder.linear_2"},
      {"text_embedding.0", "condition_embedder.text_embedder.linear_1"},
      {"text_embedding.2", "condition_embedder.text_embedder.linear_2"},
      {"time_projection.1", "condition_embedder.time_proj"},
      {"head.modulation", "scale_shift_table"},
      {"head.head", "proj_out"},
      {"modulation", "scale_shift_table"},
      {"ffn.0", "ffn.net.0.proj"},
      {"ffn.2", "ffn.net.2"},
      {"norm3", "norm2"},
      {"img_emb.proj.0", "condition_embedder.image_embedder.norm1"},
      {"img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"},
      {"img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"},
      {"img_emb.proj.4", "condition_embedder.image_embedder.norm2"},
      {"self_attn.q", "attn1.to_q"},
      {"self_attn.k", "attn1.to_k"},
      {"self_attn.v", "attn1.to_v"},
      {"self_attn.o", "attn1.to_out.0"},
      {"self_attn.norm_q", "attn1.norm_q"},
      {"self_attn.norm_k", "attn1.norm_k"},
      {"cross_attn.q", "attn2.to_q"},
      {"cross_attn.k", "attn2.to_k"},
      {"cross_attn.v", "attn2.to_v"},
      {"cross_attn.o", "attn2.to_out.0"},
      {"cross_attn.norm_q", "attn2.norm_q"},
      {"cross_attn.norm_k", "attn2.norm_k"},
      {"attn2.to_k_img", "attn2.add_k_proj"},
      {"attn2.to_v_img", "attn2.add_v_proj"},
      {"attn2.norm_k_img", "attn2.norm_added_k"},
  };
  for (const auto& [from, to] : renames)
    if (const size_t at = n.find(from); at != std::string::npos) n.replace(at, from.size(), to);
  return n;
}

struct Stored {
  std::vector<at::Tensor> keep;
  std::vector<io::TensorToWrite> entries;
  void add(const std::string& name, const at::Tensor& value, io::DType dtype = io::DType::F32) {
    const at::ScalarType type = dtype == io::DType::BF16 ? at::kBFloat16 : at::kFloat;
    keep.push_back(value.detach().to(type).contiguous());
    entries.push_back({name, dtype, keep.back().sizes().vec(), keep.back().data_ptr()});
  }
};

// Every parameter of `model` under `rename(ours)`.
template <class Rename>
Stored stored_as(WanDiT& model, Rename rename, io::DType dtype = io::DType::F32) {
  Stored s;
  for (const auto& p : model->named_parameters()) s.add(rename(p.key()), p.value(), dtype);
  return s;
}

DitConfig tiny_t2v() {  // the tiny shapes in Wan's T2V layout: no I2V channels, no tracks, no CLIP
  DitConfig c = dit_preset("tiny");
  c.name = "tiny-t2v";
  c.image_condition = false;
  c.track_channels = 0;
  return c;
}

DitConfig tiny_i2v() {  // the tiny shapes in Wan's I2V layout: 36-style channels and the CLIP branch, no tracks
  DitConfig c = dit_preset("tiny-clip");
  c.name = "tiny-i2v";
  c.track_channels = 0;
  return c;
}

struct Inputs {
  at::Tensor noisy, condition, tracks, timesteps, text, image;
};
Inputs inputs_for(const DitConfig& c, uint64_t seed) {
  torch::manual_seed(seed);
  Inputs in;
  in.noisy = torch::randn({1, c.latent_channels, 2, 4, 4});
  in.condition = image_condition(torch::randn({1, c.latent_channels, 4, 4}), 0, 2);
  in.tracks = torch::randn({1, c.packed_track_channels(), 2, 4, 4});
  in.timesteps = torch::tensor({{700.0, 300.0}});
  in.text = torch::randn({1, 3, c.text_dim});
  in.image = torch::randn({1, c.image_tokens > 0 ? c.image_tokens : 5, c.image_token_dim});
  return in;
}

// One bidirectional forward, feeding each input the model has (zero I2V condition when `zero_condition`).
at::Tensor run(WanDiT& model, const Inputs& x, bool zero_condition = false) {
  const auto& c = model->config();
  torch::NoGradGuard no_grad;
  DitInput in;
  in.noisy = x.noisy;
  in.timesteps = x.timesteps;
  if (c.image_condition) in.condition = zero_condition ? torch::zeros_like(x.condition) : x.condition;
  if (c.track_channels > 0) in.tracks = x.tracks;
  TextKv text = model->encode_text(x.text);
  if (c.image_branch()) text.image = model->encode_image(x.image.narrow(1, 0, c.image_tokens));
  auto attn = MaskedSelfAttention::bidirectional({2, 2, 2}, c.head_dim());
  return model->forward(in, text, attn);
}

std::string load_error(const DitConfig& config, const std::string& path, const std::string& part = "") {
  WanDiT fresh(config);
  test::randomize(fresh, 99);
  std::vector<at::Tensor> before;
  for (const auto& p : fresh->parameters()) before.push_back(p.clone());
  try {
    load_published_dit(*fresh, path, {part});
  } catch (const io::SafetensorsError& e) {
    const auto after = fresh->parameters();
    for (size_t i = 0; i < before.size(); ++i)
      EXPECT_TRUE(torch::equal(before[i], after[i])) << "a refused file changed parameter " << i;
    return e.what();
  }
  return "";
}

}  // namespace

TEST(DitCheckpoint, DiffusersNamesAreTheConversionScriptsNames) {
  const auto& t = dit_diffusers_names();
  EXPECT_EQ(t.to_ours("blocks.3.attn2.add_k_proj.weight"), "blocks.3.cross_attn.k_img.weight");
  EXPECT_EQ(t.to_ours("blocks.3.attn2.norm_added_k.weight"), "blocks.3.cross_attn.norm_k_img.weight");
  EXPECT_EQ(t.to_ours("blocks.12.norm2.bias"), "blocks.12.norm3.bias");
  EXPECT_EQ(t.to_ours("blocks.0.ffn.net.0.proj.weight"), "blocks.0.ffn.0.weight");
  EXPECT_EQ(t.to_ours("blocks.0.attn1.to_out.0.bias"), "blocks.0.self_attn.o.bias");
  EXPECT_EQ(t.to_ours("scale_shift_table"), "head.modulation");
  EXPECT_EQ(t.to_ours("blocks.29.scale_shift_table"), "blocks.29.modulation");
  EXPECT_EQ(t.to_ours("condition_embedder.time_proj.weight"), "time_projection.1.weight");
  EXPECT_EQ(t.to_ours("blocks.5.attn2.norm_added_q.weight"), "");  // stored, unused
  // Every tensor of the published sizes has a diffusers name, the one the conversion script gives it.
  for (const char* preset : {"wan-1.3b", "wan-14b-i2v"})
    for (const auto& [name, shape] : dit_preset(preset).parameter_shapes())
      EXPECT_EQ(t.to_stored(name), diffusers_name(name)) << name;
}

TEST(DitCheckpoint, EveryLayoutLoadsAndForwardsAsItsSource) {
  test::ScopedTempDir dir("dit_ckpt");
  const DitConfig c = tiny_i2v();  // a published layout: I2V + CLIP, no track head
  WanDiT source(c);
  test::randomize(source, 21);
  const Inputs x = inputs_for(c, 5);
  const at::Tensor expected = run(source, x);

  // Wan's names; diffusers' (with the unused norm_added_q of its I2V files); CausVid's "model." in bf16 comes below.
  auto wan = stored_as(source, [](const std::string& n) { return n; });
  io::write_safetensors(dir.file("wan.safetensors"), wan.entries);
  auto diffusers = stored_as(source, diffusers_name);
  for (int64_t i = 0; i < c.num_layers; ++i)
    diffusers.add("blocks." + std::to_string(i) + ".attn2.norm_added_q.weight", torch::ones({c.dim}));
  io::write_safetensors(dir.file("diffusers.safetensors"), diffusers.entries);

  for (const auto& [file, layout] : {std::pair<std::string, std::string>{"wan.safetensors", "Wan names"},
                                     {"diffusers.safetensors", "diffusers WanTransformer3DModel"}}) {
    WanDiT loaded(c);
    const DitCheckpointPlan plan = load_published_dit(*loaded, dir.file(file));
    EXPECT_NE(plan.layout.find(layout), std::string::npos) << plan.layout;
    EXPECT_TRUE(plan.kept.empty() && plan.zeroed.empty()) << file;
    EXPECT_EQ(test::max_abs_diff(run(loaded, x), expected), 0.0) << file;
  }

  // Self-Forcing: one .pth with generator, generator_ema and critic; generator_ema by default.
  WanDiT ema(c), critic(dit_preset("tiny"));
  test::randomize(ema, 22);
  test::randomize(critic, 23);
  Stored sf;
  for (const auto& p : source->named_parameters()) sf.add("generator.model." + p.key(), p.value());
  for (const auto& p : ema->named_parameters()) sf.add("generator_ema.model._fsdp_wrapped_module." + p.key(), p.value());
  for (const auto& p : critic->named_parameters()) sf.add("critic.model." + p.key(), p.value());
  io::write_torch_state_dict(dir.file("self_forcing.pt"), sf.entries);
  {
    WanDiT loaded(c);
    const DitCheckpointPlan plan = load_published_dit(*loaded, dir.file("self_forcing.pt"));
    EXPECT_EQ(plan.part, "generator_ema");
    EXPECT_EQ(plan.skipped.size(), source->parameters().size() + critic->parameters().size());
    EXPECT_EQ(test::max_abs_diff(run(loaded, x), run(ema, x)), 0.0);
  }
  {
    WanDiT loaded(c);
    EXPECT_EQ(load_published_dit(*loaded, dir.file("self_forcing.pt"), {"generator"}).part, "generator");
    EXPECT_EQ(test::max_abs_diff(run(loaded, x), expected), 0.0);
  }

  // CausVid: Wan names under a bare "model.", stored in bf16: the model holds the bf16 values.
  auto causvid = stored_as(source, [](const std::string& n) { return "model." + n; }, io::DType::BF16);
  io::write_safetensors(dir.file("causvid.safetensors"), causvid.entries);
  WanDiT loaded(c);
  EXPECT_EQ(load_published_dit(*loaded, dir.file("causvid.safetensors")).part, "");
  const auto want = source->named_parameters();
  for (const auto& p : loaded->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), want[p.key()].to(at::kBFloat16).to(at::kFloat))) << p.key();
}

TEST(DitCheckpoint, PublishedModelsStartAMotionStreamModelExactly) {
  // A published T2V (16-channel-style) or I2V file into the MotionStream layout (I2V condition + tracks + CLIP):
  // with the new inputs zero (condition) or silenced by zero weights (tracks, image tokens), the loaded model
  // computes what the published one does.
  test::ScopedTempDir dir("dit_ckpt");
  const DitConfig target = dit_preset("tiny-clip");
  const Inputs x = inputs_for(target, 6);
  for (const DitConfig& published : {tiny_t2v(), tiny_i2v()}) {
    WanDiT source(published);
    test::randomize(source, 31);
    const std::string path = dir.file(published.name + ".safetensors");
    io::write_safetensors(path, stored_as(source, [](const std::string& n) { return n; }).entries);

    WanDiT loaded(target);
    test::randomize(loaded, 32);  // whatever the new tensors held before
    const DitCheckpointPlan plan = load_published_dit(*loaded, path);
    EXPECT_EQ(plan.stored_in_channels, published.in_channels());
    const bool from_t2v = !published.image_branch();
    // the track head; from T2V also img_emb (8) and per block k_img.{weight, bias}, norm_k_img
    EXPECT_EQ(plan.kept.size(), from_t2v ? 2u + 8u + 3u * target.num_layers : 2u) << published.name;
    EXPECT_EQ(plan.zeroed.size(), from_t2v ? 2u * target.num_layers : 0u) << published.name;

    auto w = loaded->patch_embedding->weight;
    const int64_t cs = published.in_channels();
    EXPECT_TRUE(torch::equal(w.narrow(1, 0, cs), source->patch_embedding->weight));
    EXPECT_EQ(w.narrow(1, cs, target.in_channels() - cs).abs().max().item<double>(), 0.0);

    // The published model sees only the noisy latent (T2V) or also the condition (I2V); the loaded one gets random
    // tracks and image tokens, and a zero condition when the published model had none.
    const at::Tensor theirs = run(source, x);
    const at::Tensor ours = run(loaded, x, /*zero_condition=*/from_t2v);
    EXPECT_LT(test::max_abs_diff(ours, theirs), 1e-5) << published.name;
    EXPECT_GT(theirs.abs().max().item<double>(), 1e-2);
  }
}

TEST(DitCheckpoint, RefusalsNameTheFirstOffendingTensor) {
  test::ScopedTempDir dir("dit_ckpt");
  const DitConfig c = tiny_i2v();
  WanDiT source(c);
  test::randomize(source, 41);

  // Another model's file (a umT5 encoder's names).
  const float one = 1.0f;
  io::write_safetensors(dir.file("umt5.safetensors"), {{"encoder.block.0.layer.0.SelfAttention.q.weight",
                                                         io::DType::F32, {1}, &one}});
  std::string error = load_error(c, dir.file("umt5.safetensors"));
  EXPECT_NE(error.find("not a Wan2.1 DiT checkpoint of any known layout"), std::string::npos) << error;
  EXPECT_NE(error.find("encoder.block.0.layer.0.SelfAttention.q.weight"), std::string::npos) << error;

  // One tensor of the wrong shape, in diffusers' names: the message gives the stored name and both shapes.
  Stored misshapen;
  for (const auto& p : source->named_parameters())
    misshapen.add(diffusers_name(p.key()), p.key() == "blocks.1.ffn.0.weight" ? p.value().t() : p.value());
  io::write_safetensors(dir.file("misshapen.safetensors"), misshapen.entries);
  error = load_error(c, dir.file("misshapen.safetensors"));
  EXPECT_NE(error.find("tensor 'blocks.1.ffn.net.0.proj.weight' has shape [48, 96] but the model expects [96, 48]"),
            std::string::npos) << error;

  // One tensor missing (Self-Forcing names): named as the file would hold it.
  Stored short_of_one;
  for (const auto& p : source->named_parameters())
    if (p.key() != "blocks.1.cross_attn.norm_k.weight") short_of_one.add("generator.model." + p.key(), p.value());
  io::write_torch_state_dict(dir.file("short.pt"), short_of_one.entries);
  error = load_error(c, dir.file("short.pt"));
  EXPECT_NE(error.find("tensor 'generator.model.blocks.1.cross_attn.norm_k.weight' is missing"), std::string::npos)
      << error;
  // A part the file does not have.
  error = load_error(c, dir.file("short.pt"), "critic");
  EXPECT_NE(error.find("no tensor under 'critic.model.'"), std::string::npos) << error;
  EXPECT_NE(error.find("generator"), std::string::npos) << error;

  // Half a CLIP branch is not a new branch: the first absent tensor is named.
  Stored half_clip;
  for (const auto& p : source->named_parameters())
    if (p.key().rfind("img_emb.", 0) != 0) half_clip.add(p.key(), p.value());
  io::write_safetensors(dir.file("half_clip.safetensors"), half_clip.entries);
  error = load_error(c, dir.file("half_clip.safetensors"));
  EXPECT_NE(error.find("tensor 'img_emb.proj.0.weight' is missing"), std::string::npos) << error;

  // A truncated file: the last tensor (img_emb's last LayerNorm bias, last in file order) runs past the end.
  const std::string good = dir.file("good.safetensors"), cut = dir.file("cut.safetensors");
  io::write_safetensors(good, stored_as(source, [](const std::string& n) { return n; }).entries);
  std::filesystem::copy_file(good, cut);
  std::filesystem::resize_file(cut, std::filesystem::file_size(good) - 4);
  error = load_error(c, cut);
  EXPECT_NE(error.find("img_emb.proj.4.bias"), std::string::npos) << error;
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;
  EXPECT_EQ(load_error(c, good), "");
}

TEST(DitCheckpoint, PlansForPublishedSizesWithoutAllocating) {
  // What `motionstream inspect FILE --preset P` reports, from names and shapes alone.
  auto manifest = [](const DitConfig& c, auto rename) {
    std::vector<io::TensorInfo> out;
    for (const auto& [name, shape] : c.parameter_shapes()) out.push_back({rename(name), io::DType::BF16, shape, 0, 0});
    return out;
  };
  // Wan2.1-I2V-14B as diffusers publishes it, against our preset.
  auto i2v = manifest(dit_preset("wan-14b-i2v"), diffusers_name);
  for (int i = 0; i < 40; ++i) i2v.push_back({"blocks." + std::to_string(i) + ".attn2.norm_added_q.weight", io::DType::BF16, {5120}, 0, 0});
  DitCheckpointPlan plan = plan_dit_checkpoint(i2v, dit_preset("wan-14b-i2v"));
  EXPECT_TRUE(plan.problems.empty()) << plan.problems.front();
  EXPECT_EQ(plan.load.size(), dit_preset("wan-14b-i2v").parameter_shapes().size());
  EXPECT_EQ(plan.skipped.size(), 40u);

  // Wan2.1-T2V-1.3B (Self-Forcing's generator) into the MotionStream 1.3B: widened patch embedding, new track head,
  // new CLIP branch whose v_img starts at zero.
  auto t2v = manifest(dit_preset("wan-1.3b"), [](const std::string& n) { return "generator.model." + n; });
  plan = plan_dit_checkpoint(t2v, dit_preset("wan-1.3b-motion"));
  EXPECT_TRUE(plan.problems.empty()) << plan.problems.front();
  EXPECT_EQ(plan.stored_in_channels, 16);
  EXPECT_EQ(std::count_if(plan.load.begin(), plan.load.end(), [](const DitTensorPlan& t) { return t.widened; }), 1);
  EXPECT_EQ(plan.zeroed.size(), 60u);                       // 30 blocks x v_img.{weight, bias}
  EXPECT_EQ(plan.kept.size(), 2u + 8u + 30u * 3u);          // track head, img_emb, k_img.{w,b} + norm_k_img
  // The 14B I2V file against the 1.3B preset: shapes refused, first one named.
  plan = plan_dit_checkpoint(i2v, dit_preset("wan-1.3b-i2v"));
  ASSERT_FALSE(plan.problems.empty());
  EXPECT_NE(plan.problems.front().find("'patch_embedding.weight' has shape [5120, 36, 1, 2, 2]"), std::string::npos)
      << plan.problems.front();
}
