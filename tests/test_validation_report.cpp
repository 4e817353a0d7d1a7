// The model-card figures on the world's validation clips: the two baselines against each other.
#ifdef MS_WITH_MEDIA
#include <gtest/gtest.h>

#include "media/validation_report.h"

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
#endif
