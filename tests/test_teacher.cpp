// The teacher stage, guidance and the prompt encoder.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "motionstream/diffusion/guidance.h"
#include "motionstream/io/safetensors.h"
#include "motionstream/io/state_dict.h"
#include "motionstream/model/motion_model.h"
#include "motionstream/train/teacher_trainer.h"
#include "test_util.h"
#include "train_fixtures.h"

using namespace ms;
namespace fs = std::filesystem;

namespace {
using test::random_codec_folder;
TeacherTrainConfig tiny_teacher(const std::string& codec, int64_t steps) { return test::tiny_teacher_config(codec, steps); }
}  // namespace

TEST(Guidance, JointFormulaByHand) {
  auto both = torch::full({1}, 1.0), motion = torch::full({1}, 0.4), text = torch::full({1}, 0.7);
  Guidance g;  // w_t 3, w_m 1.5, a = 2/3
  const double base = (2.0 / 3) * 0.4 + (1.0 / 3) * 0.7;
  EXPECT_NEAR(guided_velocity(g, both, motion, text).item<double>(), base + 3 * 0.6 + 1.5 * 0.3, 1e-6);
  g.mode = GuidanceMode::kTextOnly;
  EXPECT_NEAR(guided_velocity(g, both, motion, text).item<double>(), 0.4 + 3 * 0.6, 1e-6);
  g.mode = GuidanceMode::kMotionOnly;
  EXPECT_NEAR(guided_velocity(g, both, motion, text).item<double>(), 0.7 + 1.5 * 0.3, 1e-6);
  g.mode = GuidanceMode::kJoint;
  EXPECT_NEAR(guided_velocity(g, both, both, both).item<double>(), 1.0, 1e-6);  // agreement leaves v alone
  EXPECT_EQ(g.evaluations(), 3);
  EXPECT_THROW(parse_guidance_mode("loud"), std::invalid_argument);
}

TEST(TextEncoder, TokenizesKnownUnknownAndPadding) {
  WordTextEncoder enc(build_vocabulary({"A red circle moves left.", "the light dims"}), 8, 4);
  EXPECT_EQ(enc->vocabulary(), (std::vector<std::string>{"a", "circle", "dims", "left", "light", "moves", "red", "the"}));
  EXPECT_EQ(enc->tokenize("Red   circle, purple!"), (std::vector<int64_t>{2 + 6, 2 + 1, 1, 0, 0, 0, 0, 0}));
  EXPECT_EQ(enc->tokenize("").size(), 8u);
  EXPECT_EQ(enc->encode({"a red circle", ""}).sizes(), (at::IntArrayRef{2, 8, 4}));
}

TEST(DitForward, NoTracksEqualsAnAllZeroRaster) {
  const DitConfig c = dit_preset("tiny");
  WanDiT model(c);
  test::randomize(model, 8);
  torch::NoGradGuard no_grad;
  DitInput in;
  in.noisy = torch::randn({1, c.latent_channels, 2, 4, 4});
  in.condition = image_condition(torch::randn({1, c.latent_channels, 4, 4}), 0, 2);
  in.timesteps = torch::full({1, 2}, 400.0);
  auto text = model->encode_text(torch::randn({1, 3, c.text_dim}));
  auto attn = MaskedSelfAttention::bidirectional({2, 2, 2}, c.head_dim());
  auto none = model->forward(in, text, attn);
  in.tracks = torch::zeros({1, c.packed_track_channels(), 2, 4, 4});
  EXPECT_LT(test::max_abs_diff(none, model->forward(in, text, attn)), 1e-6);
}

TEST(TeacherTrainer, ResumedRunEqualsUninterruptedRunAndExportsAModel) {
  const std::string codec = random_codec_folder("teacher_codec");
  const auto a = test::temp_dir("teacher_straight"), b = test::temp_dir("teacher_resumed");
  EXPECT_EQ(train_teacher(tiny_teacher(codec, 3), a.string()), 3);
  EXPECT_EQ(train_teacher(tiny_teacher(codec, 3), b.string(), RunLimits{2, -1}), 2);
  EXPECT_FALSE(fs::exists(b / "model" / "dit.safetensors"));
  // An export of the unfinished run, without training a step: the EMA model as of step 2.
  EXPECT_EQ(train_teacher(tiny_teacher(codec, 3), b.string(), RunLimits{0, -1, /*export_now=*/true}), 2);
  EXPECT_EQ(load_motion_model((b / "model").string()).description["steps"], 2);
  EXPECT_EQ(train_teacher(tiny_teacher(codec, 3), b.string()), 3);
  EXPECT_LT(test::max_safetensors_diff(a / "model" / "dit.safetensors", b / "model" / "dit.safetensors"), 1e-6);
  const fs::path raw = fs::path("checkpoints") / "step-00000003" / "model.safetensors";  // the EMA moves too little
  EXPECT_LT(test::max_safetensors_diff(a / raw, b / raw), 1e-7);
  auto loaded = load_motion_model((a / "model").string());
  EXPECT_EQ(loaded.model->dit->config().name, "tiny-motion");
  EXPECT_TRUE(fs::equivalent(loaded.codec_folder, codec));
  EXPECT_GT(loaded.model->text->vocabulary().size(), 20u);  // the world's caption words
}

TEST(TeacherTrainer, ANewRunStartsFromAModelFolderAndResumesWithoutIt) {
  const std::string codec = random_codec_folder("teacher_init_codec");
  const auto first = test::temp_dir("teacher_init_first"), second = test::temp_dir("teacher_init_second");
  train_teacher(tiny_teacher(codec, 2), first.string());
  const auto init = test::temp_dir("teacher_init_model");
  fs::copy(first / "model", init, fs::copy_options::recursive);
  TeacherTrainConfig c = tiny_teacher(codec, 5);
  c.init_from = init.string();
  c.uniform_fraction = 0.5;
  // No step taken: the exported EMA is the folder's weights.
  EXPECT_EQ(train_teacher(c, second.string(), RunLimits{0, -1, true}), 0);
  EXPECT_LT(test::max_safetensors_diff(init / "dit.safetensors", second / "model" / "dit.safetensors"), 1e-9);
  // One step, then the folder goes away: the run resumes from its own checkpoint.
  EXPECT_EQ(train_teacher(c, second.string(), RunLimits{1, -1}), 1);
  fs::remove_all(init);
  EXPECT_EQ(train_teacher(c, second.string(), RunLimits{1, -1}), 2);
}

TEST(TeacherTrainer, NoiseLevelsMixShiftedAndUniformDraws) {
  auto gen = at::detail::createCPUGenerator(7);
  auto share_below = [&](double fraction, double level) {
    return (training_noise_levels(20000, 6.0, fraction, gen) < level).to(at::kFloat).mean().item<double>();
  };
  // Shift 6 alone: P(s < 0.2) = P(u < 0.2 / (6 - 5 * 0.2)) = 0.04. Half uniform: 0.5 * 0.2 + 0.5 * 0.04 = 0.12.
  EXPECT_NEAR(share_below(0.0, 0.2), 0.04, 0.01);
  EXPECT_NEAR(share_below(0.5, 0.2), 0.12, 0.015);
  EXPECT_NEAR(share_below(1.0, 0.2), 0.20, 0.015);
  TeacherTrainConfig c;
  c.uniform_fraction = 1.5;
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

TEST(TeacherTrainer, LossFallsWhenClipsRepeat) {
  const std::string codec = random_codec_folder("teacher_codec_learn");
  const auto dir = test::temp_dir("teacher_learns");
  TeacherTrainConfig c = tiny_teacher(codec, 60);
  c.pool_size = 2;
  c.fresh_per_step = 1;
  c.checkpoint_minutes = 100;
  c.lr = 2e-3;
  c.warmup_steps = 5;
  train_teacher(c, dir.string());
  std::ifstream in(dir / "log.jsonl");
  std::vector<double> loss;
  for (std::string line; std::getline(in, line);) loss.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  ASSERT_EQ(loss.size(), 60u);
  double first = 0, last = 0;
  for (int i = 0; i < 15; ++i) first += loss[i], last += loss[loss.size() - 1 - i];
  EXPECT_LT(last, 0.8 * first) << "first " << first / 15 << " last " << last / 15;
}

TEST(TeacherTrainer, RefusesAPresetWithoutMotionInputs) {
  TeacherTrainConfig c = tiny_teacher("nowhere", 1);
  c.dit_preset = "wan-1.3b";
  EXPECT_THROW(c.validate(), std::invalid_argument);
}
