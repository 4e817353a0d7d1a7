// The warp hint (the first frame warped along the tracks in pixels, encoded image by image, in the later frames'
// I2V condition): what it writes, that it keeps the content's position where a latent copy cannot, streaming's
// per-chunk condition against the whole clip's, and the errors around it.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "motionstream/model/dit.h"
#include "motionstream/model/dit_config.h"
#include "motionstream/model/warp_hint.h"
#include "motionstream/stream/streaming_generator.h"
#include "test_util.h"

using namespace ms;

namespace {

LatentCodec small_codec(int64_t channels) {
  torch::manual_seed(3);
  TinyVaeConfig vc;
  vc.latent_channels = channels;
  vc.encoder_width = 8;
  vc.decoder_widths = {8, 8, 8, 8};
  TinyVae vae(vc);
  vae->eval();
  return LatentCodec(vae, std::vector<double>(channels, 0.1), std::vector<double>(channels, 0.5));
}

// A dense grid of tracks (every 4 px) over a size x size image, all moving right by `speed` px per frame.
TrackSet drifting_grid(int64_t size, int64_t frames, double speed) {
  std::vector<float> xy;
  for (int64_t y = 2; y < size; y += 4)
    for (int64_t x = 2; x < size; x += 4) xy.insert(xy.end(), {float(x), float(y)});
  TrackSet t = TrackSet::still(at::tensor(xy).view({-1, 2}), frames, size, size);
  t.xy.select(2, 0).add_(at::arange(frames, at::kFloat).unsqueeze(1) * speed);
  return t;
}

// A smooth random image [3, H, W] in [0, 1]: textured, but with little energy at the pixel scale.
at::Tensor smooth_image(int64_t size) {
  auto coarse = at::rand({1, 3, size / 4, size / 4});
  return at::upsample_bilinear2d(coarse, {size, size}, false)[0];
}

}  // namespace

TEST(WarpHint, WritesTheLaterFramesOnlyAndStillTracksGiveTheImagesOwnLatent) {
  LatentCodec codec = small_codec(4);
  const at::Tensor image = smooth_image(32);
  const at::Tensor image_latent = codec.encode(image.view({1, 1, 3, 32, 32})).select(2, 0);  // [1, 4, 4, 4]
  at::Tensor condition = image_condition(image_latent, 0, 3);                               // [1, 8, 3, 4, 4]
  const at::Tensor before = condition.clone();
  write_warp_hint(condition, codec, image, drifting_grid(32, 9, 0.0), 0);
  EXPECT_TRUE(at::equal(condition.narrow(1, 0, 4), before.narrow(1, 0, 4))) << "the mask is left alone";
  EXPECT_TRUE(at::equal(condition.select(2, 0), before.select(2, 0))) << "latent frame 0 is the given image";
  for (int64_t l = 1; l < 3; ++l)  // nothing moves: every later frame is the image itself again
    EXPECT_LT(test::max_abs_diff(condition.narrow(1, 4, 4).select(2, l), image_latent), 1e-5) << "latent frame " << l;

  at::Tensor untouched = before.clone();
  write_warp_hint(untouched, codec, image, TrackSet::still(at::zeros({0, 2}), 9, 32, 32), 0);
  EXPECT_TRUE(at::equal(untouched, before)) << "no tracks, no hint";
}

// Content moved by exactly one latent cell (8 px) comes out as the image's latent moved by one cell: the hint keeps
// the content's position, which is what the latent copy loses under sub-cell motion. A trained encoder (the shipped
// one): a random one hardly looks at its input.
TEST(WarpHint, ContentMovedByOneCellGivesTheLatentMovedByOneCell) {
#ifndef MS_SOURCE_DIR
  GTEST_SKIP() << "needs the shipped codec (a build with the server)";
#else
  const int64_t size = 128, cells = size / 8;
  LatentCodec codec(std::string(MS_SOURCE_DIR) + "/models/tiny-vae-128");
  torch::manual_seed(5);
  const at::Tensor image = smooth_image(size);
  const at::Tensor image_latent = codec.encode(image.view({1, 1, 3, size, size})).select(2, 0)[0];  // [C, 16, 16]
  // 2 px per frame: pixel frame 4 (latent frame 1) has moved 8 px, one cell.
  const at::Tensor hint = warp_hint_latents(codec, image, drifting_grid(size, 9, 2.0), 1, 1)[0].select(1, 0);
  // Interior cells only: the encoder's borders are not shift-equivariant.
  const auto inner = [&](const at::Tensor& t, int64_t dx) { return t.narrow(1, 3, cells - 6).narrow(2, 3 + dx, cells - 7); };
  const double moved = (inner(hint, 1) - inner(image_latent, 0)).abs().mean().item<double>();
  const double unmoved = (inner(hint, 1) - inner(image_latent, 1)).abs().mean().item<double>();
  EXPECT_LT(moved, 0.3 * unmoved) << "moved " << moved << " vs unmoved " << unmoved;
#endif
}

TEST(WarpHint, StreamingChunkConditionEqualsTheWholeClipCondition) {
  DitConfig c = dit_preset("tiny-motion");
  c.track_warp_hint = true;
  LatentCodec codec = small_codec(c.latent_channels);
  const int64_t chunk = 2, size = 32;
  const at::Tensor image = smooth_image(size);
  const at::Tensor latent = codec.encode(image.view({1, 1, 3, size, size})).select(2, 0);
  const auto stream = test::tiny_stream(c, latent, chunk);  // kept alive for the whole test
  StreamingGenerator& gen = *stream;
  const TrackSet tracks = drifting_grid(size, 21, 0.75);
  gen.set_tracks(tracks);
  EXPECT_THROW(gen.chunk_conditioning(), std::invalid_argument) << "the hint's source is missing";
  EXPECT_THROW(gen.set_warp_hint_source(codec, at::rand({3, size, size + 8})), std::invalid_argument);
  gen.set_warp_hint_source(codec, image);

  at::Tensor whole = image_condition(latent, 0, 6);  // latent frames 0-5, as training builds them
  write_warp_hint(whole, codec, image, tracks, 0);
  for (int64_t k = 0; k < 3; ++k) {
    const at::Tensor part = gen.chunk_conditioning().condition;  // [1, 4 + C, chunk, h, w]
    EXPECT_LT(test::max_abs_diff(part, whole.narrow(2, k * chunk, chunk)), 1e-5) << "chunk " << k;
    gen.next_chunk();
  }
  EXPECT_GT(test::max_abs_diff(whole, image_condition(latent, 0, 6)), 0.1) << "the tracks did write a hint";
}

TEST(WarpHint, ConfigRefusesTwoHintsOrAHintWithoutTracks) {
  DitConfig both = dit_preset("tiny-motion");
  both.track_latent_copy = both.track_warp_hint = true;
  EXPECT_THROW(both.validate(), std::invalid_argument);
  DitConfig plain = dit_preset("tiny");
  plain.image_condition = false;  // a text-to-video layout: no condition to write a hint into
  plain.track_warp_hint = true;
  try {
    plain.validate();
    FAIL() << "a hint without the I2V condition and a track head was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("track_warp_hint"), std::string::npos) << e.what();
  }
}
