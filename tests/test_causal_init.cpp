// Stage 2: the causal student learns the teacher's ODE results through the streaming cache.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "motionstream/diffusion/sampler.h"
#include "motionstream/io/safetensors.h"
#include "motionstream/io/state_dict.h"
#include "motionstream/model/motion_model.h"
#include "motionstream/train/causal_init.h"
#include "motionstream/train/teacher_trainer.h"
#include "test_util.h"
#include "train_fixtures.h"

using namespace ms;
namespace fs = std::filesystem;

namespace {
using test::tiny_teacher_folder;
}  // namespace

TEST(Sampler, EulerStepsFollowTheVelocity) {
  // With a model whose velocity is known, the integrator must land where the ODE goes: check one step by hand.
  const std::string folder = tiny_teacher_folder("sampler");
  auto m = load_motion_model(folder).model;
  test::randomize(m->dit, 12);  // every input path live, so that guidance branches differ
  ClipConditions c{image_condition(torch::randn({1, 16, 2, 2}), 0, 2), torch::randn({1, 32, 2, 2, 2}), {"a red circle"}};
  auto noise = torch::randn({1, 16, 2, 2, 2});
  std::vector<at::Tensor> trajectory;
  Guidance none{GuidanceMode::kNone};
  auto x0 = sample_clip(m, c, noise, {1000.0, 400.0}, none, &trajectory);
  ASSERT_EQ(trajectory.size(), 3u);
  torch::NoGradGuard no_grad;
  auto v0 = guided_clip_velocity(m, c, noise, 1000.0, none);
  EXPECT_LT(test::max_abs_diff(trajectory[1], noise - 0.6 * v0), 1e-5);
  auto v1 = guided_clip_velocity(m, c, trajectory[1], 400.0, none);
  EXPECT_LT(test::max_abs_diff(x0, trajectory[1] - 0.4 * v1), 1e-5);
  // Joint guidance with three identical branches would equal the plain velocity; here the branches differ.
  auto joint = guided_clip_velocity(m, c, noise, 1000.0, Guidance{});
  EXPECT_GT(test::max_abs_diff(joint, v0), 1e-6);
}

// Motion guidance contrasts "with the tracks" against a branch with no motion at all: no tracks and no hint in the
// later frames' condition (what a training sample with its tracks dropped looks like), worked out by hand.
TEST(Sampler, MotionFreeBranchHasNoHint) {
  const std::string folder = tiny_teacher_folder("sampler_hint");
  auto m = load_motion_model(folder).model;
  test::randomize(m->dit, 13);
  at::Tensor condition = image_condition(torch::randn({1, 16, 2, 2}), 0, 3);
  condition.narrow(1, 4, 16).narrow(2, 1, 2).normal_();  // a hint on the later frames
  const ClipConditions c{condition, torch::randn({1, 32, 3, 2, 2}), {"a red circle"}};
  const at::Tensor x = torch::randn({1, 16, 3, 2, 2});
  torch::NoGradGuard no_grad;
  auto velocity = [&](const at::Tensor& cond, const at::Tensor& tracks) {
    DitInput in;
    in.noisy = x;
    in.timesteps = at::full({1, 3}, 700.0);
    in.condition = cond;
    in.tracks = tracks;
    auto attn = MaskedSelfAttention::bidirectional({3, 1, 1}, m->dit->config().head_dim());
    return m->dit->forward(in, m->encode_prompts(c.prompts), attn);
  };
  const at::Tensor both = velocity(condition, c.tracks);
  const at::Tensor no_motion = velocity(image_condition(condition.narrow(1, 4, 16).select(2, 0), 0, 3),
                                        at::zeros_like(c.tracks));
  const Guidance motion_only{GuidanceMode::kMotionOnly, 3.0, 1.5};
  const at::Tensor guided = guided_clip_velocity(m, c, x, 700.0, motion_only);
  EXPECT_LT(test::max_abs_diff(guided, no_motion + 1.5 * (both - no_motion)), 1e-4);
  // The hint does matter to this model, so keeping it in the motion-free branch would give another result.
  const at::Tensor with_hint = velocity(condition, at::zeros_like(c.tracks));
  EXPECT_GT(test::max_abs_diff(guided, with_hint + 1.5 * (both - with_hint)), 1e-3);
}

TEST(CausalInit, TeacherGridPassesThroughStudentSteps) {
  CausalInitConfig c;
  c.teacher_substeps = 4;
  const auto student = c.student_timesteps(), teacher = c.teacher_timesteps();
  ASSERT_EQ(teacher.size(), 12u);
  for (size_t k = 0; k < student.size(); ++k) EXPECT_DOUBLE_EQ(teacher[k * 4], student[k]);
  c.frames = 17;  // 5 latent frames: not whole chunks of 3
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

TEST(CausalInit, ResumedRunEqualsUninterruptedRunAndExportsAStudent) {
  const std::string teacher = tiny_teacher_folder("causal");
  const auto a = test::temp_dir("causal_straight"), b = test::temp_dir("causal_resumed");
  EXPECT_EQ(train_causal_init(test::tiny_causal_config(teacher, 3), a.string()), 3);
  EXPECT_EQ(train_causal_init(test::tiny_causal_config(teacher, 3), b.string(), RunLimits{2, -1}), 2);
  EXPECT_EQ(train_causal_init(test::tiny_causal_config(teacher, 3), b.string()), 3);
  EXPECT_LT(test::max_safetensors_diff(a / "model" / "dit.safetensors", b / "model" / "dit.safetensors"), 1e-6);
  const fs::path raw = fs::path("checkpoints") / "step-00000003" / "model.safetensors";  // the EMA moves too little
  EXPECT_LT(test::max_safetensors_diff(a / raw, b / raw), 1e-7);
  auto student = load_motion_model((a / "model").string());
  EXPECT_EQ(student.description.at("stage"), "causal-init");
  EXPECT_EQ(student.description.at("stream").at("timesteps").size(), 3u);
}

// A further phase (longer clips, other layouts) starts its student and EMA from an exported student, not the teacher.
TEST(CausalInit, StudentInitStartsFromAnotherModelFolder) {
  const std::string teacher = tiny_teacher_folder("causal_phase");
  const auto first = test::temp_dir("causal_phase_first"), second = test::temp_dir("causal_phase_second");
  EXPECT_EQ(train_causal_init(test::tiny_causal_config(teacher, 2), first.string()), 2);
  CausalInitConfig c = test::tiny_causal_config(teacher, 2);
  c.student_init = (first / "model").string();
  EXPECT_EQ(train_causal_init(c, second.string(), RunLimits{0, -1, true}), 0);  // no step: export what it started from
  const fs::path dit = fs::path("model") / "dit.safetensors";
  EXPECT_EQ(test::max_safetensors_diff(first / dit, second / dit), 0.0);
  EXPECT_GT(test::max_safetensors_diff(fs::path(teacher) / "dit.safetensors", second / dit), 0.0);
}

// Each teacher rollout serves rollout_reuse steps; a run resumed inside such a block rebuilds the block's rollout.
TEST(CausalInit, ReusedRolloutsResumeInsideABlock) {
  const std::string teacher = tiny_teacher_folder("causal_reuse");
  auto config = [&] {
    CausalInitConfig c = test::tiny_causal_config(teacher, 4);
    c.rollout_reuse = 2;
    return c;
  };
  const auto a = test::temp_dir("causal_reuse_straight"), b = test::temp_dir("causal_reuse_resumed"),
             fresh = test::temp_dir("causal_reuse_none");
  EXPECT_EQ(train_causal_init(config(), a.string()), 4);
  EXPECT_EQ(train_causal_init(config(), b.string(), RunLimits{3, -1}), 3);  // stops inside the block of steps 2-3
  EXPECT_EQ(train_causal_init(config(), b.string()), 4);
  // The raw weights: one step moves the exported EMA by too little to tell a wrong rollout apart.
  const fs::path last = fs::path("checkpoints") / "step-00000004" / "model.safetensors";
  EXPECT_LT(test::max_safetensors_diff(a / last, b / last), 1e-7);
  // Reuse does change what is learnt (steps 1 and 3 train on other rollouts than without it).
  EXPECT_EQ(train_causal_init(test::tiny_causal_config(teacher, 4), fresh.string()), 4);
  EXPECT_GT(test::max_safetensors_diff(a / last, fresh / last), 1e-6);
  CausalInitConfig bad = config();
  bad.rollout_reuse = 0;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
}
