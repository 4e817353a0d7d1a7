// Small training artefacts for the stage tests: an autoencoder folder with random weights and unit latent
// statistics, and a teacher trained for two steps in it. Enough for the plumbing of every stage.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "motionstream/io/state_dict.h"
#include "motionstream/train/causal_init.h"
#include "motionstream/train/dmd.h"
#include "motionstream/train/teacher_trainer.h"
#include "test_util.h"

namespace ms::test {

inline std::string random_codec_folder(const std::string& name) {
  const auto dir = temp_dir(name);
  torch::manual_seed(3);
  TinyVae vae(tiny_vae_preset("cpu"));
  io::save_state_dict(*vae, (dir / "model.safetensors").string());
  std::ofstream(dir / "vae.json") << nlohmann::json{{"config", vae->config()},
                                                    {"latent_mean", std::vector<double>(16, 0.0)},
                                                    {"latent_std", std::vector<double>(16, 1.0)}}
                                         .dump();
  return dir.string();
}

// What every tiny stage shares: 32x32 clips without photos, `steps` steps, a checkpoint after each.
template <typename Config>
Config tiny_stage_config(int64_t steps) {
  Config c;
  c.width = c.height = 32;
  c.steps = steps;
  c.checkpoint_minutes = 0;
  c.photos = "none";
  return c;
}

// Validation out of the way (one clip, rarely) and a one-step warm-up: for the stages that have both.
template <typename Config>
Config tiny_validated_stage_config(int64_t steps) {
  Config c = tiny_stage_config<Config>(steps);
  c.validate_every = 1000;
  c.validation_clips = 1;
  c.warmup_steps = 1;
  return c;
}

inline TeacherTrainConfig tiny_teacher_config(const std::string& codec, int64_t steps) {
  TeacherTrainConfig c = tiny_validated_stage_config<TeacherTrainConfig>(steps);
  c.dit_preset = "tiny-motion";
  c.codec = codec;
  c.frames = 5;
  c.batch = 2;
  return c;
}

// -> the exported teacher model folder
inline std::string tiny_teacher_folder(const std::string& name) {
  const auto run = temp_dir(name + "_teacher");
  train_teacher(tiny_teacher_config(random_codec_folder(name + "_codec"), 2), run.string());
  return (run / "model").string();
}

inline CausalInitConfig tiny_causal_config(const std::string& teacher, int64_t steps) {
  CausalInitConfig c = tiny_validated_stage_config<CausalInitConfig>(steps);
  c.teacher = teacher;
  c.frames = 21;  // 6 latent frames = 2 chunks
  c.windows = {1, 2};
  c.teacher_substeps = 2;
  c.batch = 2;
  return c;
}

inline DmdConfig tiny_dmd_config(const std::string& teacher, int64_t steps) {
  DmdConfig c = tiny_stage_config<DmdConfig>(steps);
  c.student = teacher;  // any motion model folder serves as the starting student for the plumbing
  c.teacher = teacher;
  c.frames = 21;
  c.windows = {1, 2};
  c.batch = 1;
  c.critic_steps = 2;
  return c;
}

}  // namespace ms::test
