// The model-card figures on the world's validation clips: the two baselines against each other.
#ifdef MS_WITH_MEDIA
#include <gtest/gtest.h>

#include "media/validation_report.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/train/training_run.h"
#include "motionstream/train/world.h"

using namespace ms;
using namespace ms::media;

TEST(ValidationReport, WarpBaselineFollowsTheTracksBetterThanTheStillFrame) {
  ValidationOptions o;
  o.clips = 3;
  o.width = o.height = 64;
  o.frames = 9;
  o.tracks = 16;
  o.method = "still";
  const nlohmann::json still = validation_report(o);
  o.method = "warp";
  const nlohmann::json warp = validation_report(o);
  ASSERT_EQ(still["clips"].size(), 3u);
  ASSERT_TRUE(still["mean"]["epe"].is_number());
  ASSERT_TRUE(warp["mean"]["epe"].is_number());
  // The still frame ignores the motion; the warp moves the tracked pixels with it.
  EXPECT_GT(still["mean"]["epe"].get<double>(), 1.0);
  EXPECT_LT(warp["mean"]["epe"].get<double>(), 0.8 * still["mean"]["epe"].get<double>());
  // Both are compared with the same clips: the first frames agree, so PSNR is finite and SSIM in (0, 1].
  EXPECT_GT(warp["mean"]["psnr"].get<double>(), 5.0);
  EXPECT_LE(warp["mean"]["ssim"].get<double>(), 1.0);
  o.method = "teacher";
  EXPECT_THROW(validation_report(o), std::invalid_argument) << "a learned method needs a model folder";
}

// `codec` is the real clip through a model folder's autoencoder: its PSNR equals a round trip computed here, and it
// follows the tracks better than the still frame. `hint` decodes a warp-hint model's condition, which moves with the
// tracks too; a model without the hint is refused by name.
TEST(ValidationReport, CodecRoundTripAndDecodedHint) {
#ifndef MS_SOURCE_DIR
  GTEST_SKIP() << "needs the shipped models (a build with the server)";
#else
  const std::string models = std::string(MS_SOURCE_DIR) + "/models/teacher-128";
  ValidationOptions o;
  o.clips = 2;
  o.method = "codec";
  o.model_dir = models + "/warp-hint/model";
  const nlohmann::json codec_report = validation_report(o);
  o.method = "hint";
  const nlohmann::json hint_report = validation_report(o);
  o.method = "still";
  const nlohmann::json still_report = validation_report(o);

  LatentCodec codec(std::string(MS_SOURCE_DIR) + "/models/tiny-vae-128");
  const auto photos = open_photo_bank("");
  const auto seeds = world::validation_seeds(o.clips);
  for (size_t i = 0; i < seeds.size(); ++i) {
    const world::Clip clip = world::render_clip(world_spec(o.width, o.height, o.frames), seeds[i], photos.get());
    const at::Tensor round_trip = codec.decode(codec.encode(clip.video.unsqueeze(0)))[0].narrow(0, 0, o.frames);
    const double mse = (round_trip.clamp(0.0, 1.0) - clip.video).pow(2).mean().item<double>();
    EXPECT_NEAR(codec_report["clips"][i]["psnr"].get<double>(), 10.0 * std::log10(1.0 / mse), 1e-3) << "clip " << i;
  }
  const auto mean = [](const nlohmann::json& r, const char* figure) { return r["mean"][figure].get<double>(); };
  EXPECT_LT(mean(codec_report, "epe"), mean(still_report, "epe"));
  EXPECT_LT(mean(hint_report, "epe"), mean(still_report, "epe"));
  EXPECT_GT(mean(codec_report, "psnr"), mean(still_report, "psnr"));

  o.method = "hint";
  o.model_dir = models + "/run/model";
  EXPECT_THROW(validation_report(o), std::invalid_argument) << "a model without the warp hint has no hint to decode";
  o.method = "codec";
  o.model_dir.clear();
  EXPECT_THROW(validation_report(o), std::invalid_argument) << "the codec method needs a model folder";
#endif
}
#endif
