// Data-parallel teacher training: two processes on loopback follow the one-process run with the doubled batch.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "motionstream/train/data_parallel.h"
#include "motionstream/train/teacher_trainer.h"
#include "test_util.h"
#include "train_fixtures.h"

using namespace ms;
namespace fs = std::filesystem;

TEST(DataParallel, TwoProcessesMatchOneProcessWithTheDoubledBatch) {
  const std::string codec = test::random_codec_folder("parallel_codec");
  const auto single = test::temp_dir("parallel_single"), pair = test::temp_dir("parallel_pair");
  TeacherTrainConfig c = test::tiny_teacher_config(codec, 3);
  c.batch = 4;
  train_teacher(c, single.string());

  const int port = 20000 + static_cast<int>(std::random_device{}() % 20000);
  std::string common = std::string(MS_CLI_PATH) + " train teacher --run " + pair.string() +
                       " --dit_preset tiny-motion --codec " + codec +
                       " --width 32 --height 32 --frames 5 --batch 4 --steps 3 --checkpoint_minutes 0"
                       " --validate_every 1000 --validation_clips 1 --warmup_steps 1 --photos none"
                       " --world_size 2 --master_port " + std::to_string(port);
  // Both ranks in the background of one shell, each bounded in time; the shell fails if either does.
  const std::string both = "timeout 180 " + common + " --rank 1 > " + (pair / "rank1.log").string() + " 2>&1 & r1=$!; " +
                           "timeout 180 " + common + " --rank 0 > " + (pair / "rank0.log").string() + " 2>&1; r0=$?; " +
                           "wait $r1; r1=$?; exit $((r0 + r1))";
  const int status = std::system(("bash -c '" + both + "'").c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "ranks failed; see " << pair;
  // The raw weights (the exported EMA moves too slowly to tell runs apart). Gradient averaging reorders float sums:
  // equal up to rounding, while each rank's half batch alone lands measurably elsewhere.
  const auto last = fs::path("checkpoints") / "step-00000003" / "model.safetensors";
  EXPECT_LT(test::max_safetensors_diff(single / last, pair / last), 1e-6);
  EXPECT_TRUE(fs::exists(pair / "model" / "dit.safetensors"));
  // Rank 0 alone wrote the run: one log line per step.
  std::ifstream log(pair / "log.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line);) ++lines;
  EXPECT_EQ(lines, 3);
}

TEST(DataParallel, RefusesImpossibleLayouts) {
  EXPECT_THROW(DataParallel(DistributedConfig{2, 2}), std::invalid_argument);
  EXPECT_THROW(DataParallel(DistributedConfig{0, 2, "127.0.0.1", 70000}), std::invalid_argument);
  TeacherTrainConfig c;
  c.batch = 3;
  c.world_size = 2;
  EXPECT_THROW(c.validate(), std::invalid_argument);
}
