// Data-parallel training (teacher, causal init, DMD): two processes on loopback follow the one-process run with the
// doubled batch.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "motionstream/train/causal_init.h"
#include "motionstream/train/data_parallel.h"
#include "motionstream/train/dmd.h"
#include "motionstream/train/teacher_trainer.h"
#include "motionstream/train/vae_trainer.h"
#include "test_util.h"
#include "train_fixtures.h"

using namespace ms;
namespace fs = std::filesystem;

namespace {

// Runs `motionstream train STAGE` as ranks 0 and 1 of a 2-process group on loopback, with the config as a file.
// Both run in the background of one shell, each bounded in time; false if either fails (logs in run_dir).
bool train_two_ranks(const std::string& stage, nlohmann::json config, const fs::path& run_dir) {
  fs::create_directories(run_dir);
  config["world_size"] = 2;
  config["master_port"] = 20000 + static_cast<int>(std::random_device{}() % 20000);
  config.erase("rank");
  const fs::path file = run_dir.parent_path() / (run_dir.filename().string() + ".config.json");
  std::ofstream(file) << config.dump();
  const std::string common = std::string(MS_CLI_PATH) + " train " + stage + " --run " + run_dir.string() +
                             " --config " + file.string();
  const std::string both = "timeout 300 " + common + " --rank 1 > " + (run_dir / "rank1.log").string() +
                           " 2>&1 & r1=$!; timeout 300 " + common + " --rank 0 > " + (run_dir / "rank0.log").string() +
                           " 2>&1; r0=$?; wait $r1; r1=$?; exit $((r0 + r1))";
  const int status = std::system(("bash -c '" + both + "'").c_str());
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int log_lines(const fs::path& run_dir) {
  std::ifstream log(run_dir / "log.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line);) ++lines;
  return lines;
}

// The raw weights of the last checkpoint (an exported EMA moves too slowly to tell runs apart). Gradient averaging
// reorders float sums: equal up to rounding, while each rank's half batch alone lands measurably elsewhere.
void expect_same_weights(const fs::path& single, const fs::path& pair, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  const auto last = fs::path("checkpoints") / name / "model.safetensors";
  EXPECT_LT(test::max_safetensors_diff(single / last, pair / last), 1e-5);
  EXPECT_TRUE(fs::exists(pair / "model" / "dit.safetensors"));
  EXPECT_EQ(log_lines(pair), step) << "rank 0 alone writes the log, one line per step";
}

}  // namespace

TEST(DataParallel, TwoProcessesMatchOneProcessWithTheDoubledBatch) {
  const std::string codec = test::random_codec_folder("parallel_codec");
  const auto single = test::temp_dir("parallel_single"), pair = test::temp_dir("parallel_pair");
  TeacherTrainConfig c = test::tiny_teacher_config(codec, 3);
  c.batch = 4;
  train_teacher(c, single.string());
  ASSERT_TRUE(train_two_ranks("teacher", c, pair)) << "ranks failed; see " << pair;
  expect_same_weights(single, pair, 3);
}

TEST(DataParallel, CausalInitTwoProcessesMatchOneProcess) {
  const std::string teacher = test::tiny_teacher_folder("parallel_causal");
  const auto single = test::temp_dir("parallel_causal_single"), pair = test::temp_dir("parallel_causal_pair");
  CausalInitConfig c = test::tiny_causal_config(teacher, 2);
  c.batch = 4;
  train_causal_init(c, single.string());
  ASSERT_TRUE(train_two_ranks("causal", c, pair)) << "ranks failed; see " << pair;
  expect_same_weights(single, pair, 2);
}

TEST(DataParallel, DmdTwoProcessesMatchOneProcess) {
  const std::string teacher = test::tiny_teacher_folder("parallel_dmd");
  const auto single = test::temp_dir("parallel_dmd_single"), pair = test::temp_dir("parallel_dmd_pair");
  DmdConfig c = test::tiny_dmd_config(teacher, 2);
  c.batch = 2;
  train_dmd(c, single.string());
  ASSERT_TRUE(train_two_ranks("dmd", c, pair)) << "ranks failed; see " << pair;
  expect_same_weights(single, pair, 2);
}

TEST(DataParallel, AutoencoderTwoProcessesMatchOneProcess) {
  const auto single = test::temp_dir("parallel_vae_single"), pair = test::temp_dir("parallel_vae_pair");
  VaeTrainConfig c;
  c.width = c.height = 32;
  c.frames = 5;
  c.batch = 2;
  c.steps = 2;
  c.checkpoint_minutes = 0;
  c.validate_every = 1000;
  c.validation_clips = 1;
  c.photos = "none";
  train_vae(c, single.string());
  ASSERT_TRUE(train_two_ranks("vae", c, pair)) << "ranks failed; see " << pair;
  const auto last = fs::path("checkpoints") / "step-00000002" / "model.safetensors";
  EXPECT_LT(test::max_safetensors_diff(single / last, pair / last), 1e-5);
  EXPECT_TRUE(fs::exists(pair / "vae.json")) << "rank 0 exported";
  EXPECT_EQ(log_lines(pair), 2);
}

TEST(DataParallel, RefusesImpossibleLayouts) {
  EXPECT_THROW(DataParallel(DistributedConfig{2, 2}), std::invalid_argument);
  EXPECT_THROW(DataParallel(DistributedConfig{0, 2, "127.0.0.1", 70000}), std::invalid_argument);
  TeacherTrainConfig c;
  c.batch = 3;
  c.world_size = 2;
  EXPECT_THROW(c.validate(), std::invalid_argument);
}
