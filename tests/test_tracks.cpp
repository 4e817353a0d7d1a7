// Track raster and ID embedding against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>

#include "motionstream/tracks/track_raster.h"
#include "test_util.h"

using namespace ms;

namespace {
std::vector<float> phi(int64_t id, int64_t dim) {  // the SPEC formula written out: [sin | cos] of id * 10000^(-i/half)
  std::vector<float> out(dim);
  const int64_t half = dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double w = std::pow(10000.0, -static_cast<double>(i) / half);
    out[i] = static_cast<float>(std::sin(id * w));
    out[half + i] = static_cast<float>(std::cos(id * w));
  }
  return out;
}
}  // namespace

TEST(TrackRaster, IdEmbeddingFormula) {
  auto e = track_id_embedding(torch::tensor({0L, 7L, 1234L}), 6);
  for (int64_t n = 0; n < 3; ++n) {
    const int64_t id = std::vector<int64_t>{0, 7, 1234}[n];
    auto want = phi(id, 6);
    for (int64_t c = 0; c < 6; ++c) EXPECT_NEAR(e[n][c].item<float>(), want[c], 1e-6) << id << " " << c;
  }
}

TEST(TrackRaster, HandComputedTwoTracksOcclusionAndCollision) {
  // Model image 32x16 at stride 8 -> grid 2 rows x 4 columns. TrackSet drawn on that same image.
  TrackSet t;
  t.width = 32;
  t.height = 16;
  t.xy = torch::tensor({{{9.5f, 3.0f}, {15.9f, 7.9f}, {40.0f, 3.0f}},     // frame 0: A (0,1), B (0,1), C outside
                        {{20.0f, 12.0f}, {31.0f, 15.0f}, {-1.0f, 3.0f}}}); // frame 1: A occluded, B (1,3), C outside
  t.visible = torch::tensor({{true, true, true}, {false, true, true}});
  auto ids = torch::tensor({3L, 50L, 9L});
  const int64_t dim = 4;
  auto r = rasterize_tracks(t, ids, {0, 1}, 2, 4, dim);
  ASSERT_EQ(r.sizes(), (at::IntArrayRef{2, 2, 4, dim}));
  auto expected = torch::zeros({2, 2, 4, dim});
  auto A = phi(3, dim), B = phi(50, dim);
  for (int64_t c = 0; c < dim; ++c) {
    expected[0][0][1][c] = A[c] + B[c];  // collision: sum
    expected[1][1][3][c] = B[c];         // A occluded in frame 1: nothing
  }
  EXPECT_LT(test::max_abs_diff(r, expected), 1e-6);

  // Tracks drawn on a 64x32 image land in the same cells once scaled to the model image.
  TrackSet big = t;
  big.width = 64;
  big.height = 32;
  big.xy = t.xy * 2;
  EXPECT_LT(test::max_abs_diff(rasterize_tracks(big, ids, {0, 1}, 2, 4, dim), expected), 1e-6);
  // Frames beyond the track's end hold the last frame.
  EXPECT_LT(test::max_abs_diff(rasterize_tracks(t, ids, {5}, 2, 4, dim)[0], expected[1]), 1e-6);
}

TEST(TrackRaster, PackingFollowsTheLatentFrameLayout) {
  EXPECT_EQ(latent_frame_pixels(0), (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(latent_frame_pixels(1), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(latent_frame_pixels(3), (std::vector<int64_t>{9, 10, 11, 12}));
  // One point moving one cell right per pixel frame on a 1 x 16 grid.
  TrackSet t;
  t.width = 128;
  t.height = 8;
  t.xy = torch::zeros({13, 1, 2});
  for (int64_t f = 0; f < 13; ++f) t.xy[f][0] = torch::tensor({8.0f * f + 1.0f, 4.0f});
  t.visible = torch::ones({13, 1}, torch::kBool);
  const int64_t dim = 2;
  auto packed = packed_track_input(t, torch::tensor({0L}), 0, 4, 1, 16, dim);  // latent frames 0..3
  ASSERT_EQ(packed.sizes(), (at::IntArrayRef{1, 4 * dim, 4, 1, 16}));
  // id 0 -> phi = [sin 0, cos 0] = [0, 1]: channel k*dim + 1 of latent frame f is 1 at column = k-th pixel frame.
  for (int64_t f = 0; f < 4; ++f)
    for (int64_t k = 0; k < 4; ++k) {
      const int64_t col = latent_frame_pixels(f)[k];
      EXPECT_EQ(packed[0][k * dim + 1][f][0][col].item<float>(), 1.0f) << f << " " << k;
      EXPECT_EQ(packed[0][k * dim + 1][f][0].sum().item<float>(), 1.0f);
    }
}

TEST(TrackSet, ValidationNamesTheProblem) {
  TrackSet t = TrackSet::still(torch::tensor({{1.0f, 2.0f}}), 4, 32, 16);
  t.xy[2][0][0] = NAN;
  try {
    t.validate();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos);
  }
  TrackSet u = TrackSet::still(torch::tensor({{1.0f, 2.0f}}), 4, 32, 16);
  u.visible = torch::ones({3, 1}, torch::kBool);
  EXPECT_THROW(u.validate(), std::invalid_argument);
  EXPECT_THROW(TrackSet::still(torch::tensor({{1.0f, 2.0f}}), 4, 0, 16), std::invalid_argument);
}
