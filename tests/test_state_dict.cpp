// Loading and saving model weights as safetensors, with Wan2.1 names.
#include <gtest/gtest.h>

#include "motionstream/io/state_dict.h"
#include "motionstream/model/dit.h"
#include "test_util.h"

using namespace ms;

namespace {
bool same_weights(WanDiT& a, WanDiT& b, double tol = 0.0) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& item : pa)
    if (test::max_abs_diff(item.value(), pb[item.key()]) > tol) return false;
  return true;
}
std::string expect_refused(WanDiT& model, const std::string& path, const io::LoadOptions& opts = {}) {
  try {
    io::load_state_dict(*model, path, opts);
  } catch (const io::SafetensorsError& e) {
    return e.what();
  }
  ADD_FAILURE() << path << " was accepted";
  return "";
}
}  // namespace

TEST(StateDict, RoundTripF32AndBf16) {
  const auto dir = test::temp_dir("state_dict_round_trip");
  WanDiT a(dit_preset("tiny")), b(dit_preset("tiny"));
  test::randomize(a, 1);
  test::randomize(b, 2);
  ASSERT_FALSE(same_weights(a, b));
  io::save_state_dict(*a, (dir / "a.safetensors").string());
  auto report = io::load_state_dict(*b, (dir / "a.safetensors").string());
  EXPECT_EQ(report.loaded.size(), dit_preset("tiny").parameter_shapes().size());
  EXPECT_TRUE(same_weights(a, b));

  io::save_state_dict(*a, (dir / "a_bf16.safetensors").string(), io::DType::BF16);
  WanDiT c(dit_preset("tiny"));
  io::load_state_dict(*c, (dir / "a_bf16.safetensors").string());
  EXPECT_TRUE(same_weights(a, c, 0.02));  // bf16 keeps 8 bits of mantissa
  EXPECT_FALSE(same_weights(a, c, 0.0));
  io::SafetensorsFile f((dir / "a_bf16.safetensors").string());
  EXPECT_EQ(f.at("blocks.1.ffn.0.weight").dtype, io::DType::BF16);
}

TEST(StateDict, WanNamesWithAPrefixLoadAndNewTrackChannelsMayBeMissing) {
  // A checkpoint in published naming under "model." (Self-Forcing style), written tensor by tensor from the
  // layout manifest, without the track head: the MotionStream extension of a plain I2V file.
  const auto dir = test::temp_dir("state_dict_prefix");
  DitConfig i2v = dit_preset("tiny");
  i2v.track_channels = 0;
  std::vector<std::vector<float>> storage;
  std::vector<io::TensorToWrite> entries;
  for (const auto& [name, shape] : i2v.parameter_shapes()) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    storage.emplace_back(n, 0.5f);
    entries.push_back({"model." + name, io::DType::F32, shape, storage.back().data()});
  }
  // The file's patch embedding has the I2V input width; the track model's is wider.
  const std::string path = (dir / "i2v.safetensors").string();
  io::write_safetensors(path, entries);
  WanDiT plain_i2v(i2v);
  io::LoadOptions opts;
  opts.prefix = "model.";
  auto report = io::load_state_dict(*plain_i2v, path, opts);
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.unexpected.empty());
  EXPECT_EQ(plain_i2v->blocks[1]->as<DitBlock>()->ffn[0]->as<torch::nn::Linear>()->weight[0][0].item<float>(), 0.5f);

  WanDiT motion(dit_preset("tiny"));
  const std::string msg = expect_refused(motion, path, opts);
  EXPECT_NE(msg.find("i2v.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("patch_embedding.weight"), std::string::npos) << msg;
}

TEST(StateDict, RefusedFilesNameFileAndTensorAndLeaveTheModelUntouched) {
  const auto dir = test::temp_dir("state_dict_refused");
  WanDiT model(dit_preset("tiny"));
  test::randomize(model, 5);
  WanDiT before(dit_preset("tiny"));
  io::save_state_dict(*model, (dir / "before.safetensors").string());
  io::load_state_dict(*before, (dir / "before.safetensors").string());

  // A tensor whose shape differs from the model config. Written in name order, so the bad tensor is last and
  // every tensor before it would already have been copied by a loader that copies as it checks.
  DitConfig other = dit_preset("tiny");
  other.ffn_dim = 64;
  WanDiT wrong(other);
  test::randomize(wrong, 6);
  const std::string wrong_path = (dir / "wrong_ffn.safetensors").string();
  io::save_state_dict(*wrong, wrong_path);
  std::string msg = expect_refused(model, wrong_path);
  EXPECT_NE(msg.find("wrong_ffn.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ffn.0."), std::string::npos) << msg;
  EXPECT_NE(msg.find("[64"), std::string::npos) << msg;
  EXPECT_TRUE(same_weights(model, before));

  // A missing tensor, and an unexpected one.
  DitConfig deeper = dit_preset("tiny");
  deeper.num_layers = 3;
  WanDiT three(deeper);
  io::save_state_dict(*three, (dir / "three_blocks.safetensors").string());
  msg = expect_refused(model, (dir / "three_blocks.safetensors").string());
  EXPECT_NE(msg.find("blocks.2."), std::string::npos) << msg;
  WanDiT two_from_three(dit_preset("tiny"));
  io::LoadOptions lenient;
  lenient.allow_unexpected = true;
  EXPECT_NO_THROW(io::load_state_dict(*two_from_three, (dir / "three_blocks.safetensors").string(), lenient));
  msg = expect_refused(three, (dir / "before.safetensors").string());
  EXPECT_NE(msg.find("is missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("blocks.2."), std::string::npos) << msg;

  // A truncated file is refused by the reader before anything is loaded.
  const auto full = std::filesystem::file_size(dir / "before.safetensors");
  std::filesystem::copy_file(dir / "before.safetensors", dir / "cut.safetensors");
  std::filesystem::resize_file(dir / "cut.safetensors", full - 100);
  msg = expect_refused(model, (dir / "cut.safetensors").string());
  EXPECT_NE(msg.find("cut.safetensors"), std::string::npos) << msg;
  EXPECT_TRUE(same_weights(model, before));
}
