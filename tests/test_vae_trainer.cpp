// Autoencoder training: it learns, it resumes to the same result, and it refuses what does not belong to the run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "motionstream/io/safetensors.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/train/vae_trainer.h"
#include "motionstream/train/world.h"
#include "test_util.h"

using namespace ms;
namespace fs = std::filesystem;

namespace {
VaeTrainConfig tiny_run(int64_t steps) {
  VaeTrainConfig c;
  c.width = 32;
  c.height = 32;
  c.frames = 5;
  c.batch = 1;
  c.steps = steps;
  c.checkpoint_minutes = 0;  // every step
  c.validate_every = 1000;
  c.validation_clips = 1;
  c.warmup_steps = 2;
  c.photos = "none";
  return c;
}
std::vector<nlohmann::json> read_log(const fs::path& p) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}
}  // namespace

void expect_resume_matches(const VaeTrainConfig& config, const std::string& name) {
  const auto a = test::temp_dir(name + "_straight"), b = test::temp_dir(name + "_resumed");
  train_vae(config, a.string());
  EXPECT_EQ(train_vae(config, b.string(), RunLimits{2, -1}), 2);  // a slice of 2 steps, as if killed there
  ASSERT_TRUE(fs::exists(b / "checkpoints" / "step-00000002" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(b / "model.safetensors"));
  EXPECT_EQ(train_vae(config, b.string()), 4);  // resumes from step 2
  EXPECT_LT(test::max_safetensors_diff(a / "model.safetensors", b / "model.safetensors"), 1e-6);
  EXPECT_EQ(read_log(b / "log.jsonl").size(), 4u);  // steps 1-2, then 3-4 after the resume
  auto stats = nlohmann::json::parse(std::ifstream(b / "vae.json"));
  EXPECT_EQ(stats["latent_std"].size(), 16u);
}

TEST(VaeTrainer, ResumedRunEqualsUninterruptedRun) { expect_resume_matches(tiny_run(4), "vae"); }

TEST(VaeTrainer, ResumedRunWithAClipPoolEqualsUninterruptedRun) {
  VaeTrainConfig c = tiny_run(4);
  c.batch = 2;
  c.pool_size = 3;
  c.fresh_per_step = 1;
  expect_resume_matches(c, "vae_pool");
}

TEST(VaeTrainer, RefusesCorruptCheckpointsAndForeignConfigs) {
  const auto dir = test::temp_dir("vae_refuse");
  train_vae(tiny_run(2), dir.string());
  VaeTrainConfig other = tiny_run(3);
  other.width = 48;
  test::expect_invalid_argument([&] { train_vae(other, dir.string()); }, "width");  // a run folder keeps its width
  const auto model = dir / "checkpoints" / "step-00000002" / "model.safetensors";
  fs::resize_file(model, fs::file_size(model) / 2);
  try {
    train_vae(tiny_run(3), dir.string());
    FAIL() << "a truncated checkpoint was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(model));  // the damaged file is left for inspection, nothing else is touched
  EXPECT_THROW(train_vae(VaeTrainConfig{[] { auto c = tiny_run(2); c.frames = 6; return c; }()}, dir.string()),
               std::invalid_argument);
}

TEST(VaeTrainer, ReconstructionLossFalls) {
  const auto dir = test::temp_dir("vae_learns");
  VaeTrainConfig c = tiny_run(40);
  c.checkpoint_minutes = 100;
  c.lr = 3e-3;
  train_vae(c, dir.string());
  auto rows = read_log(dir / "log.jsonl");
  ASSERT_EQ(rows.size(), 40u);
  double first = 0, last = 0;
  for (int i = 0; i < 8; ++i) {
    first += rows[i]["l1"].get<double>();
    last += rows[rows.size() - 1 - i]["l1"].get<double>();
  }
  EXPECT_LT(last, 0.8 * first) << "first " << first / 8 << " last " << last / 8;
}

TEST(VaeTrainer, DecoderFineTuningKeepsTheLatentSpace) {
  const auto base = test::temp_dir("vae_base"), tuned = test::temp_dir("vae_decoder_only");
  train_vae(tiny_run(2), base.string());
  VaeTrainConfig c = tiny_run(3);
  c.init = base.string();
  c.train_encoder = false;
  c.lr = 3e-3;
  train_vae(c, tuned.string());

  io::SafetensorsFile before((base / "model.safetensors").string()), after((tuned / "model.safetensors").string());
  int encoder_tensors = 0;
  double decoder_change = 0;
  for (const auto& t : before.tensors()) {
    const double change = test::max_tensor_diff(before, after, t.name);
    if (t.name.rfind("encoder.", 0) == 0) {
      EXPECT_EQ(change, 0.0) << t.name << " moved although the encoder is frozen";
      ++encoder_tensors;
    } else {
      decoder_change = std::max(decoder_change, change);
    }
  }
  EXPECT_GT(encoder_tensors, 0);
  EXPECT_GT(decoder_change, 1e-4) << "the decoder did not learn";
  auto base_json = nlohmann::json::parse(std::ifstream(base / "vae.json"));
  auto tuned_json = nlohmann::json::parse(std::ifstream(tuned / "vae.json"));
  EXPECT_EQ(tuned_json["latent_mean"], base_json["latent_mean"]);
  EXPECT_EQ(tuned_json["latent_std"], base_json["latent_std"]);

  // The same fine-tuning with a wider decoder: its first step sees the same clips and computes the same loss (the
  // widened decoder starts from the narrow one's output), and the export records the new widths.
  VaeTrainConfig grown = c;
  grown.decoder_widths = {64, 48, 24, 24};
  const auto grown_dir = test::temp_dir("vae_grown");
  train_vae(grown, grown_dir.string());
  EXPECT_NEAR(read_log(grown_dir / "log.jsonl").at(0)["loss"].get<double>(),
              read_log(tuned / "log.jsonl").at(0)["loss"].get<double>(), 1e-6);
  auto grown_json = nlohmann::json::parse(std::ifstream(grown_dir / "vae.json"));
  EXPECT_EQ(grown_json["config"]["decoder_widths"], nlohmann::json({64, 48, 24, 24}));
  EXPECT_EQ(grown_json["latent_std"], base_json["latent_std"]);

  VaeTrainConfig no_init = tiny_run(1);
  no_init.train_encoder = false;
  test::expect_invalid_argument([&] { train_vae(no_init, test::temp_dir("vae_no_init").string()); }, "init");
}

// The photo figure of the autoencoder: every bundled photo panned and zoomed, each PSNR the round trip's own, the
// mean their average, and the model left in the mode it was in.
TEST(VaeTrainer, PhotoReconstructionCoversEveryPhotoPannedAndZoomed) {
  const world::PhotoBank photos(world::find_photo_bank());
  torch::manual_seed(3);
  TinyVae vae(tiny_vae_preset("cpu"));
  vae->train();
  const auto report = photo_reconstruction(vae, photos, 32, 32, 5);
  EXPECT_TRUE(vae->is_training());
  ASSERT_EQ(report["photos"].size(), static_cast<size_t>(photos.size()));
  double sum = 0;
  for (const auto& [name, moves] : report["photos"].items()) sum += moves["pan"].get<double>() + moves["zoom"].get<double>();
  EXPECT_NEAR(report["mean"].get<double>(), sum / (2.0 * photos.size()), 1e-9);

  const auto& first = photos.photo(0);
  torch::NoGradGuard no_grad;
  vae->eval();
  const auto clip = world::render_scene(world::photo_camera_scene(first, 32, 32, 5, world::CameraMove::kZoom)).video.unsqueeze(0);
  const double mse = (vae->decode(vae->encode(clip)) - clip).pow(2).mean().item<double>();
  EXPECT_NEAR(report["photos"][first.name]["zoom"].get<double>(), -10.0 * std::log10(mse), 1e-3);
}

TEST(VaeTrainer, ValidationReconstructionNamesEachClipAndAveragesThem) {
  torch::manual_seed(4);
  TinyVae vae(tiny_vae_preset("cpu"));
  const int64_t clips = 3, W = 32, H = 32, F = 5;
  const auto report = validation_reconstruction(vae, nullptr, clips, W, H, F, at::kCPU);
  ASSERT_EQ(report["by_clip"].size(), static_cast<size_t>(clips));
  ASSERT_EQ(report["by_frame"].size(), static_cast<size_t>(F));

  // Each clip again, by hand: its seed, caption and round-trip PSNR; the mean is theirs averaged.
  const world::WorldSpec spec = world_spec(W, H, F);
  torch::NoGradGuard no_grad;
  vae->eval();
  double sum = 0;
  const auto seeds = world::validation_seeds(clips);
  for (int64_t i = 0; i < clips; ++i) {
    const auto sample = world::render_clip(spec, seeds[i]);
    const auto clip = sample.video.unsqueeze(0);
    const double mse = (vae->decode(vae->encode(clip)) - clip).pow(2).mean().item<double>();
    const auto& row = report["by_clip"][i];
    EXPECT_EQ(row["seed"].get<uint64_t>(), seeds[i]);
    EXPECT_EQ(row["caption"].get<std::string>(), sample.caption);
    EXPECT_NEAR(row["psnr"].get<double>(), -10.0 * std::log10(mse), 1e-3);
    sum += row["psnr"].get<double>();
  }
  EXPECT_NEAR(report["mean"].get<double>(), sum / clips, 1e-9);
}

// A run with a linear path fits it once, before its first step (a resumed run must not fit it again), starts far
// below a plain run's loss, and exports a config that says it has the path; a decoder-only run from it may enlarge the
// linear decoder.
TEST(VaeTrainer, LinearPathRunStartsFromItsFitAndResumes) {
  VaeTrainConfig c = tiny_run(4);
  c.linear_path = true;
  expect_resume_matches(c, "vae_linear");
  const auto linear = test::temp_dir("vae_linear"), plain = test::temp_dir("vae_plain");
  train_vae(c, linear.string());
  train_vae(tiny_run(1), plain.string());
  EXPECT_LT(read_log(linear / "log.jsonl").at(0)["l1"].get<double>(),
            0.5 * read_log(plain / "log.jsonl").at(0)["l1"].get<double>());
  const auto exported = nlohmann::json::parse(std::ifstream(linear / "vae.json"));
  EXPECT_EQ(exported["config"]["linear_path"], true);
  EXPECT_EQ(exported["train"]["linear_path"], true);

  // Decoder-only fine-tuning keeps a path the init has, and refuses to add one (that would change the encoder).
  VaeTrainConfig decoder_only = c;
  decoder_only.init = linear.string();
  decoder_only.train_encoder = false;
  decoder_only.steps = 1;
  const auto kept = test::temp_dir("vae_linear_decoder_only"), lapped = test::temp_dir("vae_linear_decoder_3x3");
  train_vae(decoder_only, kept.string());
  // A larger linear decoder kernel is fitted before the first step (the neighbours' taps start at zero, and the
  // frozen path keeps what the fit gives them), over the same encoder: the init's latent statistics, the kernel recorded.
  VaeTrainConfig wider = decoder_only;
  wider.linear_decoder_kernel = 3;
  train_vae(wider, lapped.string());
  const auto taps = LatentCodec(lapped.string(), at::kCPU).vae()->decoder_linear->weight;  // [768, C, 3, 3]
  EXPECT_EQ(taps.size(3), 3);
  EXPECT_GT(taps.select(3, 0).abs().max().item<double>(), 1e-3);
  const auto wider_json = nlohmann::json::parse(std::ifstream(lapped / "vae.json"));
  EXPECT_EQ(wider_json["config"]["linear_decoder_kernel"], 3);
  EXPECT_EQ(wider_json["latent_mean"], exported["latent_mean"]);
  wider.linear_decoder_kernel = 2;
  test::expect_invalid_argument([&] { wider.validate(); }, "linear_decoder_kernel must be odd");
  wider.linear_decoder_kernel = 3, wider.linear_path = false;
  test::expect_invalid_argument([&] { wider.validate(); }, "linear_decoder_kernel needs linear_path");
  decoder_only.init = plain.string();
  test::expect_invalid_argument([&] { train_vae(decoder_only, test::temp_dir("vae_linear_added_frozen").string()); },
                                "linear_path");
}

// The loss weights: L1 alone logs a loss equal to its L1; MSE alone, on the same first step (same weights, same
// clips, so the same L1), a loss between L1^2 (Jensen) and L1 (errors below 1); nonsense weights are refused.
TEST(VaeTrainer, LossWeightsChooseTheObjective) {
  VaeTrainConfig l1_only = tiny_run(1);
  l1_only.gradient_weight = 0, l1_only.latent_weight = 0;
  VaeTrainConfig mse_only = l1_only;
  mse_only.l1_weight = 0, mse_only.mse_weight = 1;
  const auto a = test::temp_dir("vae_l1_only"), b = test::temp_dir("vae_mse_only");
  train_vae(l1_only, a.string());
  train_vae(mse_only, b.string());
  const auto row_a = read_log(a / "log.jsonl").at(0), row_b = read_log(b / "log.jsonl").at(0);
  EXPECT_NEAR(row_a["loss"].get<double>(), row_a["l1"].get<double>(), 1e-9);
  const double l1 = row_b["l1"].get<double>(), mse = row_b["loss"].get<double>();
  EXPECT_NEAR(l1, row_a["l1"].get<double>(), 1e-9);
  EXPECT_GE(mse, l1 * l1);
  EXPECT_LT(mse, l1);

  for (auto [l1_weight, mse_weight] : {std::pair{0.0, 0.0}, std::pair{-1.0, 1.0}}) {
    VaeTrainConfig bad = tiny_run(1);
    bad.l1_weight = l1_weight, bad.mse_weight = mse_weight;
    test::expect_invalid_argument([&] { bad.validate(); }, "weight");
  }
}
