// The first frame's latent copied along the tracks into the I2V condition (Wan-Move's latent trajectory guidance):
// by hand, and streaming's per-chunk condition against the whole-clip condition training uses.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "motionstream/model/dit.h"
#include "motionstream/model/dit_config.h"
#include "motionstream/stream/streaming_generator.h"
#include "motionstream/tracks/track_raster.h"
#include "motionstream/train/training_run.h"
#include "test_util.h"

using namespace ms;

namespace {

// Two tracks on a 32x32 image (4x4 cells of 8 px) over 9 pixel frames (3 latent frames).
TrackSet two_tracks() {
  TrackSet t = TrackSet::still(at::tensor({4.0f, 4.0f, 28.0f, 28.0f}).view({2, 2}), 9, 32, 32);
  t.xy[4][0] = at::tensor({20.0f, 12.0f});  // track 0: cell (x 0, y 0) -> on frame 4 cell (x 2, y 1)
  t.xy[8][0] = at::tensor({12.0f, 28.0f});  //          on frame 8 cell (x 1, y 3)
  t.visible[4][1] = false;                   // track 1 hidden on frame 4: nothing copied for latent frame 1
  return t;
}

}  // namespace

TEST(LatentCopy, CopiesFirstFrameFeaturesToWhereTheTracksGo) {
  const at::Tensor latent = at::arange(2 * 16, at::kFloat).view({1, 2, 4, 4});  // [B, C, h, w], distinct values
  at::Tensor condition = image_condition(latent, 0, 3);                           // [1, 6, 3, 4, 4]
  at::Tensor expected = condition.clone();
  copy_latents_along_tracks(condition, latent, {two_tracks()}, 0);
  // By hand. Latent frame 1 (pixel frame 4): track 0's first-frame features (cell y 0, x 0) land in cell (y 1, x 2);
  // track 1 is hidden there. Latent frame 2 (pixel frame 8): track 0 in cell (y 3, x 1); track 1 holds still in
  // (y 3, x 3) and copies its own features. Frame 0 and the mask channels stay as they were.
  auto features = expected[0].narrow(0, 4, 2);  // [C, F, h, w]
  features.select(1, 1).select(1, 1).select(1, 2).copy_(latent[0].select(1, 0).select(1, 0));
  features.select(1, 2).select(1, 3).select(1, 1).copy_(latent[0].select(1, 0).select(1, 0));
  features.select(1, 2).select(1, 3).select(1, 3).copy_(latent[0].select(1, 3).select(1, 3));
  EXPECT_TRUE(at::equal(condition, expected));
}

TEST(LatentCopy, StreamingChunkConditionEqualsTheWholeClipCondition) {
  DitConfig c = dit_preset("tiny-motion");
  c.track_latent_copy = true;
  const int64_t chunk = 2;
  const at::Tensor latent = at::randn({1, c.latent_channels, 4, 4});
  const auto stream = test::tiny_stream(c, latent, chunk);  // kept alive for the whole test
  StreamingGenerator& gen = *stream;
  TrackSet tracks = two_tracks();
  tracks = TrackSet::still(tracks.xy[0], 21, 32, 32);
  tracks.xy.select(2, 0).add_(at::arange(21, at::kFloat).unsqueeze(1));  // both drift right 1 px per frame
  gen.set_tracks(tracks);
  // The whole clip as training builds it: latent frames 0-5.
  at::Tensor whole = image_condition(latent, 0, 6);
  copy_latents_along_tracks(whole, latent, {tracks}, 0);
  for (int64_t k = 0; k < 3; ++k) {
    const at::Tensor part = gen.chunk_conditioning().condition;  // [1, 4 + C, chunk, h, w]
    EXPECT_TRUE(at::equal(part, whole.narrow(2, k * chunk, chunk))) << "chunk " << k;
    gen.next_chunk();
  }
  EXPECT_FALSE(at::equal(whole, image_condition(latent, 0, 6))) << "the tracks did copy something";
}

TEST(RunConfig, FieldsAddedLaterMatchTheirDefaults) {
  const auto dir = test::temp_dir("run_config_defaults");
  std::ofstream(dir / "config.json") << nlohmann::json{{"lr", 0.1}}.dump();
  const nlohmann::json defaults{{"lr", 0.1}, {"new_flag", false}};
  EXPECT_NO_THROW(record_run_config(dir.string(), {{"lr", 0.1}, {"new_flag", false}}, {}, defaults));
  std::ofstream(dir / "config.json") << nlohmann::json{{"lr", 0.1}}.dump();
  EXPECT_THROW(record_run_config(dir.string(), {{"lr", 0.1}, {"new_flag", true}}, {}, defaults), std::invalid_argument);
}
