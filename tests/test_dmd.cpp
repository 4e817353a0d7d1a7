// Stage 3: Self-Forcing DMD. The plumbing: it steps, resumes exactly and exports a streaming student.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "motionstream/io/safetensors.h"
#include "motionstream/model/motion_model.h"
#include "motionstream/train/dmd.h"
#include "test_util.h"
#include "train_fixtures.h"

using namespace ms;
namespace fs = std::filesystem;


TEST(Dmd, StepsResumeExactlyAndExportAStudent) {
  const std::string teacher = test::tiny_teacher_folder("dmd");
  const auto a = test::temp_dir("dmd_straight"), b = test::temp_dir("dmd_resumed");
  EXPECT_EQ(train_dmd(test::tiny_dmd_config(teacher, 2), a.string()), 2);
  EXPECT_EQ(train_dmd(test::tiny_dmd_config(teacher, 2), b.string(), RunLimits{1, -1}), 1);
  ASSERT_TRUE(fs::exists(b / "checkpoints" / "step-00000001" / "critic_optimizer.pt"));
  EXPECT_EQ(train_dmd(test::tiny_dmd_config(teacher, 2), b.string()), 2);
  EXPECT_LT(test::max_safetensors_diff(a / "model" / "dit.safetensors", b / "model" / "dit.safetensors"), 1e-6);
  // The raw weights too (one step moves the exported EMA by little): student and critic.
  const fs::path last = fs::path("checkpoints") / "step-00000002";
  EXPECT_LT(test::max_safetensors_diff(a / last / "model.safetensors", b / last / "model.safetensors"), 1e-7);
  EXPECT_LT(test::max_safetensors_diff(a / last / "critic.safetensors", b / last / "critic.safetensors"), 1e-7);
  // The student moved away from where it started, and the log holds finite losses.
  EXPECT_GT(test::max_safetensors_diff(a / "model" / "dit.safetensors", fs::path(teacher) / "dit.safetensors"), 0.0);
  std::ifstream log(a / "log.jsonl");
  int rows = 0;
  for (std::string line; std::getline(log, line); ++rows) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(std::isfinite(j["dmd_loss"].get<double>()));
    EXPECT_TRUE(std::isfinite(j["critic_loss"].get<double>()));
  }
  EXPECT_EQ(rows, 2);
  EXPECT_EQ(load_motion_model((a / "model").string()).description.at("stage"), "dmd");
}
