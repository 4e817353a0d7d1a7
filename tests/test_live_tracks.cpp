// Live controls -> whole-stream tracks (the alignment of events to frames), and the warp baseline.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <string>

#include "motionstream/tracks/live_tracks.h"
#include "motionstream/tracks/track_warp.h"
#include "test_util.h"

using namespace ms;

namespace {

void expect_at(const TrackSet& t, int64_t frame, int64_t point, double x, double y) {
  EXPECT_NEAR(t.xy[frame][point][0].item<float>(), x, 1e-4) << "frame " << frame << " point " << point;
  EXPECT_NEAR(t.xy[frame][point][1].item<float>(), y, 1e-4) << "frame " << frame << " point " << point;
}

bool visible(const TrackSet& t, int64_t frame, int64_t point) { return t.visible[frame][point].item<bool>(); }

}  // namespace

TEST(LiveTracks, DragDrawnOnFrameKSteersFramesAfterK) {
  LiveTracks live(128, 128, 16.0);
  live.drag_down(4, {50, 50}, 1, 8.0);
  live.drag_move(6, {60, 50});
  live.drag_move(9, {70, 55});
  live.drag_up(12, {70, 55});
  const TrackSet t = live.tracks(20);
  ASSERT_EQ(t.points(), 1);
  for (int64_t f = 0; f <= 6; ++f) expect_at(t, f, 0, 50, 50);  // before the grab and up to the first move's frame
  for (int64_t f = 7; f <= 9; ++f) expect_at(t, f, 0, 60, 50);
  for (int64_t f = 10; f < 20; ++f) expect_at(t, f, 0, 70, 55);
  EXPECT_TRUE(visible(t, 12, 0));
  EXPECT_FALSE(visible(t, 13, 0)) << "released after the frame it was let go on";
  EXPECT_FALSE(live.dragging());
}

TEST(LiveTracks, EventsThatArriveAfterTheirFramesWereGeneratedSteerTheNextChunk) {
  // The generator is at frame 21 when moves drawn on frames 10 and 11 arrive: every frame from 21 on shows the
  // newest position, the past is rewritten consistently.
  LiveTracks live(128, 128, 16.0);
  live.drag_down(8, {40, 40}, 3, 8.0);
  live.drag_move(10, {50, 40});
  live.drag_move(11, {60, 40});
  const TrackSet t = live.tracks(33);
  ASSERT_EQ(t.points(), 9);
  for (int64_t f = 21; f < 33; ++f) expect_at(t, f, 4, 60, 40);  // point 4: the grid centre
  expect_at(t, 21, 0, 52, 32);                                   // top-left grid point, spacing 8
  // A move that arrives with an older frame than the previous one counts from the newest frame seen.
  live.drag_move(3, {70, 40});
  const TrackSet u = live.tracks(33);
  expect_at(u, 11, 4, 50, 40);
  expect_at(u, 12, 4, 70, 40);
}

TEST(LiveTracks, PinsHoldPathsPlayAndTrackOrderIsStable) {
  LiveTracks live(64, 64, 16.0);
  live.pin(0, {5, 5});
  live.path(10, {{10, 10}, {30, 10}}, 10);
  live.drag_down(2, {32, 32}, 2, 4.0);
  const TrackSet t = live.tracks(25);
  ASSERT_EQ(t.points(), 1 + 1 + 4);
  for (int64_t f : {0, 12, 24}) expect_at(t, f, 0, 5, 5);
  expect_at(t, 10, 1, 10, 10);
  expect_at(t, 15, 1, 20, 10);
  expect_at(t, 20, 1, 30, 10);
  expect_at(t, 24, 1, 30, 10);
  expect_at(t, 24, 2, 30, 30);  // 2x2 grid centred on the cursor
  // A new control appends: earlier points keep their indices (the generator keys random IDs by index).
  live.pin(3, {60, 60});
  const TrackSet u = live.tracks(25);
  ASSERT_EQ(u.points(), 7);
  EXPECT_TRUE(at::equal(u.xy.narrow(1, 0, 6), t.xy));
  expect_at(u, 0, 6, 60, 60);
  live.clear();
  EXPECT_TRUE(live.empty());
  test::expect_invalid_argument([&] { live.tracks(5); }, "no controls");
}

TEST(LiveTracks, PointsDraggedOutOfTheImageAreInvisibleAndBadInputIsNamed) {
  LiveTracks live(64, 64, 16.0);
  live.drag_down(0, {60, 30}, 1, 4.0);
  live.drag_move(0, {70, 30});  // the cursor may leave the image while held
  const TrackSet t = live.tracks(3);
  EXPECT_TRUE(visible(t, 0, 0));
  EXPECT_FALSE(visible(t, 1, 0));
  test::expect_invalid_argument([&] { live.pin(0, {64, 10}); }, "outside the 64x64 image");
  test::expect_invalid_argument([&] { live.pin(-2, {1, 1}); }, "pin.frame");
  test::expect_invalid_argument([&] { live.drag_down(0, {1, 1}, 0, 4.0); }, "drag.grid");
  test::expect_invalid_argument([&] { live.drag_down(0, {1, 1}, 3, -1.0); }, "drag.spacing");
  test::expect_invalid_argument([&] { live.path(0, {}, 10); }, "path.points");
  test::expect_invalid_argument([&] { live.drag_move(0, {NAN, 1}); }, "finite");
}

TEST(TrackWarp, ContentNearATrackMovesWithItAndFarContentHoldsStill) {
  at::manual_seed(0);
  // A smooth texture: random values blurred by upsampling.
  const at::Tensor image =
      at::upsample_bilinear2d(at::rand({1, 3, 16, 16}), {64, 64}, false).squeeze(0);  // [3, 64, 64]
  LiveTracks live(64, 64, 16.0);
  live.drag_down(0, {20, 32}, 3, 4.0);
  live.drag_move(0, {26, 32});  // 6 pixels right from frame 1 on
  live.pin(0, {56, 8});
  const TrackSet tracks = live.tracks(2);
  const at::Tensor frames = warp_along_tracks(image, tracks, 0, 2);  // [2, 3, 64, 64]
  ASSERT_EQ(frames.sizes(), (at::IntArrayRef{2, 3, 64, 64}));
  EXPECT_LT((frames[0] - image).abs().max().item<float>(), 1e-5) << "frame 0 is the image";
  // Around the drag's destination the content is the source shifted by ~6 px.
  const at::Tensor moved = frames[1].narrow(1, 28, 8).narrow(2, 22, 8);
  const at::Tensor shifted = image.narrow(1, 28, 8).narrow(2, 16, 8);
  const at::Tensor unshifted = image.narrow(1, 28, 8).narrow(2, 22, 8);
  const float error_shifted = (moved - shifted).abs().mean().item<float>();
  const float error_unshifted = (moved - unshifted).abs().mean().item<float>();
  EXPECT_LT(error_shifted, 0.25f * error_unshifted) << error_shifted << " vs " << error_unshifted;
  // Far corner (beside the pin) holds still.
  EXPECT_LT((frames[1] - image).narrow(1, 0, 16).narrow(2, 48, 16).abs().max().item<float>(), 1e-3);
}

TEST(TrackWarp, SeparableFieldMatchesTheDirectGaussianSum) {
  // The displacement field written out the slow way: every pixel against every visible track. [H*W, n] arrays.
  at::manual_seed(3);
  const int64_t H = 40, W = 56, N = 7;
  const at::Tensor image = at::rand({3, H, W});
  TrackSet tracks;
  tracks.width = 112, tracks.height = 80;  // drawn on an image twice the size: scaled to H x W
  tracks.fps = 16.0;
  tracks.xy = at::rand({3, N, 2}) * at::tensor({112.0f, 80.0f});
  tracks.visible = at::rand({3, N}) > 0.3;
  tracks.visible[0][0] = true, tracks.visible[2][0] = true;  // at least one track moves on frame 2
  const WarpOptions options;
  const at::Tensor frame = warp_along_tracks(image, tracks, 2, 1);  // [1, 3, H, W]

  const at::Tensor xy = tracks.xy * 0.5;
  const at::Tensor valid = tracks.visible[0] & tracks.visible[2];
  const at::Tensor p = xy[2].index({valid}), moved = p - xy[0].index({valid});  // [n, 2]
  const double sigma = options.reach * std::min(H, W);
  const auto mesh = at::meshgrid({at::arange(H, at::kFloat) + 0.5, at::arange(W, at::kFloat) + 0.5}, "ij");
  const at::Tensor q = at::stack({mesh[1].reshape(-1), mesh[0].reshape(-1)}, 1);  // [H*W, 2] as (x, y)
  const at::Tensor w = at::exp(-(q.unsqueeze(1) - p.unsqueeze(0)).pow(2).sum(-1) / (2 * sigma * sigma));
  const at::Tensor flow = w.matmul(moved) / (w.sum(1, true) + options.stillness);  // [H*W, 2]
  const at::Tensor from = q - flow;
  const at::Tensor grid = at::stack({from.select(1, 0) / W * 2 - 1, from.select(1, 1) / H * 2 - 1}, 1).view({1, H, W, 2});
  const at::Tensor expected = at::grid_sampler(image.unsqueeze(0), grid, 0, 1, false).clamp(0, 1);
  EXPECT_GT(flow.abs().max().item<float>(), 1.0f) << "the case must move something";
  EXPECT_LT((frame - expected).abs().max().item<float>(), 1e-4);
}
