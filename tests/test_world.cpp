// The synthetic world: determinism, ranges, caption grammar, and exact tracks checked against rendered pixels on
// hand-built scenes (a square moving 2 px per frame, a near object passing over a far one, an object leaving).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <regex>
#include <set>

#include "motionstream/io/safetensors.h"
#include "motionstream/train/photo_bank.h"
#include "motionstream/train/world.h"
#include "test_util.h"

using namespace ms;
using namespace ms::world;

namespace {

const std::vector<std::string> kEventPhrases = {"the light dims", "the light brightens", "fog rolls in", "fog clears",
                                                " turns "};

WorldSpec small_spec() {
  WorldSpec spec;
  spec.width = 64, spec.height = 48, spec.frames = 9, spec.grid = 8, spec.object_points = 4;
  return spec;
}

std::shared_ptr<PhotoBank> bundled_photos() {
  static std::shared_ptr<PhotoBank> bank = [] {
    const std::string path = find_photo_bank();
    return path.empty() ? nullptr : std::make_shared<PhotoBank>(path);
  }();
  return bank;
}

Layer flat_layer(Shape shape, double depth, at::Tensor motion, double r, double g, double b) {
  Layer layer;
  layer.shape = shape;
  layer.depth = depth;
  layer.motion = std::move(motion);
  layer.fill = Fill::flat(r, g, b);
  return layer;
}

Layer blue_background(int64_t frames, double cx, double cy) {
  return flat_layer({ShapeKind::kEverywhere}, 10.0, translating(frames, cx, cy, 0, 0), 0.1, 0.2, 0.9);
}

Scene empty_scene(int64_t width, int64_t height, int64_t frames) {
  Scene scene;
  scene.width = width, scene.height = height, scene.frames = frames;
  scene.query_xy = at::zeros({0, 2}, at::kDouble);
  scene.query_layer = at::zeros({0}, at::kLong);
  return scene;
}

void add_queries(Scene& scene, const std::vector<std::array<double, 2>>& points, int64_t layer) {
  std::vector<double> flat;
  for (const auto& p : points) flat.insert(flat.end(), {p[0], p[1]});
  const auto xy = at::tensor(flat, at::kDouble).view({-1, 2});
  scene.query_xy = at::cat({scene.query_xy, xy});
  scene.query_layer = at::cat({scene.query_layer, at::full({xy.size(0)}, layer, at::kLong)});
}

// Bilinear colour of frame t at pixel position (x, y) (pixel centres at i + 0.5). [3]
at::Tensor colour_at(const at::Tensor& video, int64_t t, double x, double y) {
  const int64_t H = video.size(2), W = video.size(3);
  const auto grid = at::tensor({2 * x / W - 1, 2 * y / H - 1}, at::kFloat).view({1, 1, 1, 2});
  return at::grid_sampler(video[t].unsqueeze(0), grid, 0, 1, false).view({3});
}

bool colour_near(const at::Tensor& c, double r, double g, double b, double tol = 1e-3) {
  return std::abs(c[0].item<double>() - r) < tol && std::abs(c[1].item<double>() - g) < tol &&
         std::abs(c[2].item<double>() - b) < tol;
}

at::Tensor local_positions(const at::Tensor& motion, const at::Tensor& screen) {  // [T,2,3], [T,N,2] -> [T,N,2]
  auto h = at::zeros({motion.size(0), 3, 3}, at::kDouble);
  h.narrow(1, 0, 2).copy_(motion);
  h.select(1, 2).select(1, 2).fill_(1.0);
  const auto inv = at::inverse(h).narrow(1, 0, 2);
  return at::matmul(screen, inv.narrow(2, 0, 2).transpose(1, 2)) + inv.select(2, 2).unsqueeze(1);
}

}  // namespace

TEST(World, SameSeedSameClipDifferentSeedDifferentClip) {
  const auto spec = small_spec();
  const auto photos = bundled_photos();
  const Clip a = render_clip(spec, 1234, photos.get());
  const Clip b = render_clip(spec, 1234, photos.get());
  const Clip c = render_clip(spec, 1235, photos.get());
  EXPECT_TRUE(at::equal(a.video, b.video));
  EXPECT_TRUE(at::equal(a.tracks.xy, b.tracks.xy));
  EXPECT_TRUE(at::equal(a.tracks.visible, b.tracks.visible));
  EXPECT_EQ(a.caption, b.caption);
  EXPECT_EQ(a.seed, 1234u);
  EXPECT_FALSE(a.video.sizes() == c.video.sizes() && at::equal(a.video, c.video));
}

TEST(World, ShapesRangesAndCaptions) {
  WorldSpec spec;  // 128 x 128, 49 frames
  const auto photos = bundled_photos();
  const std::string colour = "(red|orange|yellow|green|cyan|blue|purple|pink|brown|white|grey|black)";
  const std::string shape = "(circle|ellipse|square|rectangle|triangle|pentagon|hexagon|star)";
  const std::string motion =
      "(moves (right|left|up|down|(up|down) and to the (left|right))|stays still|spins in place)";
  const std::string object = "an? " + colour + " " + shape + " " + motion;
  const std::regex grammar("^" + object + "(, " + object + ")* over [a-z ]+; [a-z ]+\\.$");
  for (uint64_t seed : {1u, 2u, 3u, 4u, 5u, 6u}) {
    const Clip clip = render_clip(spec, seed, seed % 2 ? photos.get() : nullptr);
    SCOPED_TRACE("seed " + std::to_string(seed) + ": " + clip.caption);
    ASSERT_EQ(clip.video.sizes(), (std::vector<int64_t>{49, 3, 128, 128}));
    EXPECT_TRUE(at::isfinite(clip.video).all().item<bool>());
    EXPECT_GE(clip.video.min().item<float>(), 0.0f);
    EXPECT_LE(clip.video.max().item<float>(), 1.0f);
    EXPECT_GT(clip.video.std().item<float>(), 0.01f);  // something is drawn
    EXPECT_NO_THROW(clip.tracks.validate());
    EXPECT_EQ(clip.tracks.frames(), 49);
    EXPECT_EQ(clip.tracks.width, 128);
    EXPECT_DOUBLE_EQ(clip.tracks.fps, 16.0);
    // N = grid^2 + object_points per object; objects are the layers nearer than depth 3.
    int64_t object_layers = 0;
    for (double d : clip.layer_depth) object_layers += d <= 3.0;
    EXPECT_EQ(clip.tracks.points(), 16 * 16 + 8 * object_layers);
    EXPECT_GE(object_layers, 1);
    EXPECT_LE(object_layers, 4);
    for (size_t i = 1; i < clip.layer_depth.size(); ++i) EXPECT_LT(clip.layer_depth[i], clip.layer_depth[i - 1]);
    EXPECT_GE(clip.track_layer.min().item<int64_t>(), 0);
    EXPECT_LT(clip.track_layer.max().item<int64_t>(), static_cast<int64_t>(clip.layer_depth.size()));
    EXPECT_GT(clip.tracks.visible.to(at::kFloat).mean().item<float>(), 0.2f);
    EXPECT_TRUE(std::regex_match(clip.caption, grammar));
    int events = 0;
    for (const auto& phrase : kEventPhrases) events += clip.caption.find(phrase) != std::string::npos;
    EXPECT_EQ(events, 1);
  }
}

TEST(World, SquareMovingTwoPixelsPerFrameIsTrackedExactly) {
  const int64_t T = 17;
  Scene scene = empty_scene(128, 128, T);
  scene.layers.push_back(blue_background(T, 64, 64));
  scene.layers.push_back(
      flat_layer({ShapeKind::kRectangle, 8, 8}, 2.0, translating(T, 40, 64, 2, 0), 0.9, 0.1, 0.1));  // x in [32, 48]
  add_grid_queries(scene, 16);  // points at 4, 12, 20, ... -> 36 and 44 lie on the square
  const Clip clip = render_scene(scene);
  const auto& xy = clip.tracks.xy;
  const auto& vis = clip.tracks.visible;

  int64_t on_square = 0, background_hidden = 0;
  for (int64_t n = 0; n < clip.tracks.points(); ++n) {
    const double x0 = xy[0][n][0].item<double>(), y0 = xy[0][n][1].item<double>();
    const bool square = std::abs(x0 - 40) < 8 && std::abs(y0 - 64) < 8;
    ASSERT_EQ(clip.track_layer[n].item<int64_t>(), square ? 1 : 0) << x0 << "," << y0;
    for (int64_t t = 0; t < T; ++t) {
      const double x = xy[t][n][0].item<double>(), y = xy[t][n][1].item<double>();
      const bool visible = vis[t][n].item<bool>();
      if (square) {
        EXPECT_NEAR(x, x0 + 2.0 * t, 1e-4);
        EXPECT_NEAR(y, y0, 1e-4);
        EXPECT_TRUE(visible);
        EXPECT_TRUE(colour_near(colour_at(clip.video, t, x, y), 0.9, 0.1, 0.1)) << "square pixel at t=" << t;
      } else {
        EXPECT_NEAR(x, x0, 1e-4);
        const bool covered = std::abs(x - (40 + 2.0 * t)) < 8 && std::abs(y - 64) < 8;
        EXPECT_EQ(visible, !covered) << "background point " << x << "," << y << " t=" << t;
        background_hidden += covered;
        const bool clear = std::abs(x - (40 + 2.0 * t)) > 9 || std::abs(y - 64) > 9;
        if (clear) {
          EXPECT_TRUE(colour_near(colour_at(clip.video, t, x, y), 0.1, 0.2, 0.9));
        }
      }
    }
    on_square += square;
  }
  EXPECT_EQ(on_square, 4);
  EXPECT_GT(background_hidden, 0);
}

TEST(World, FarObjectTracksHideExactlyWhileANearObjectCoversThem) {
  const int64_t T = 25;
  Scene scene = empty_scene(128, 96, T);
  scene.layers.push_back(blue_background(T, 64, 48));
  scene.layers.push_back(flat_layer({ShapeKind::kCircle, 14, 14}, 3.0, translating(T, 64, 48, 0, 0), 0.1, 0.8, 0.2));
  scene.layers.push_back(
      flat_layer({ShapeKind::kRectangle, 10, 10}, 2.0, translating(T, 10.25, 50, 4, 0), 0.9, 0.1, 0.1));
  add_queries(scene, {{58.5, 47.0}, {64.0, 44.5}, {70.5, 52.0}}, 1);  // on the green circle
  const Clip clip = render_scene(scene);
  for (int64_t n = 0; n < 3; ++n) {
    int64_t hidden = 0;
    for (int64_t t = 0; t < T; ++t) {
      const double x = clip.tracks.xy[t][n][0].item<double>(), y = clip.tracks.xy[t][n][1].item<double>();
      const double square_x = 10.25 + 4.0 * t;
      const bool covered = std::abs(x - square_x) < 10 && std::abs(y - 50) < 10;
      EXPECT_EQ(clip.tracks.visible[t][n].item<bool>(), !covered) << "track " << n << " t=" << t;
      hidden += covered;
      const double margin = std::min(std::abs(std::abs(x - square_x) - 10), std::abs(std::abs(y - 50) - 10));
      if (margin > 1.5) {  // clear of the square's edge: the pixel shows whichever object is in front
        EXPECT_TRUE(covered ? colour_near(colour_at(clip.video, t, x, y), 0.9, 0.1, 0.1)
                            : colour_near(colour_at(clip.video, t, x, y), 0.1, 0.8, 0.2))
            << "track " << n << " t=" << t;
      }
    }
    EXPECT_GT(hidden, 0);
    EXPECT_LT(hidden, T);
  }
  EXPECT_EQ(clip.track_layer[0].item<int64_t>(), 1);
}

TEST(World, ObjectLeavingTheFrameLosesItsTracks) {
  const int64_t T = 13;
  Scene scene = empty_scene(96, 64, T);
  scene.layers.push_back(blue_background(T, 48, 32));
  scene.layers.push_back(flat_layer({ShapeKind::kCircle, 6, 6}, 1.5, translating(T, 70, 32, 5, 0), 1, 1, 0));
  add_queries(scene, {{70, 32}, {66, 30}, {74.5, 33}}, 1);
  const Clip clip = render_scene(scene);
  for (int64_t n = 0; n < 3; ++n) {
    bool seen_outside = false;
    for (int64_t t = 0; t < T; ++t) {
      const double x = clip.tracks.xy[t][n][0].item<double>();
      EXPECT_NEAR(x, clip.tracks.xy[0][n][0].item<double>() + 5.0 * t, 1e-4);
      EXPECT_EQ(clip.tracks.visible[t][n].item<bool>(), x < 96.0) << "track " << n << " t=" << t;
      seen_outside |= x >= 96.0;
      if (seen_outside) {
        EXPECT_FALSE(clip.tracks.visible[t][n].item<bool>());
      }
    }
    EXPECT_TRUE(seen_outside);
    EXPECT_TRUE(clip.tracks.visible[0][n].item<bool>());
  }
}

// Random scenes (camera moves, rotation, scaling, parallax, all shapes) with every layer repainted a distinct flat
// colour and no event: wherever a track is clear of every layer's edge by 1.5 px, the pixel under it shows its own
// layer's colour exactly when the track says it is visible.
TEST(World, RandomScenesAgreeWithTheirTracks) {
  const std::vector<std::array<double, 3>> colours = {{0.9, 0.1, 0.1}, {0.1, 0.8, 0.1}, {0.1, 0.1, 0.9},
                                                      {0.9, 0.9, 0.1}, {0.9, 0.1, 0.9}, {0.1, 0.9, 0.9},
                                                      {0.5, 0.5, 0.5}, {1.0, 0.6, 0.2}};
  WorldSpec spec;
  spec.width = 96, spec.height = 64, spec.frames = 17, spec.camera_motion = 1.0, spec.max_objects = 4;
  int64_t checked = 0, hidden_checked = 0;
  for (uint64_t seed = 10; seed < 16; ++seed) {
    Scene scene = make_scene(spec, seed);
    ASSERT_LE(scene.layers.size(), colours.size());
    for (size_t l = 0; l < scene.layers.size(); ++l)
      scene.layers[l].fill = Fill::flat(colours[l][0], colours[l][1], colours[l][2]);
    scene.event = Event{};
    const Clip clip = render_scene(scene);
    const auto& xy = clip.tracks.xy;  // [T, N, 2]
    const int64_t T = xy.size(0), N = xy.size(1);
    // Distance (screen pixels) from each track to every layer's edge, computed independently of the renderer.
    auto clearance = at::full({T, N}, 1e9, at::kDouble);
    for (const auto& layer : scene.layers) {
      if (layer.shape.kind == ShapeKind::kEverywhere) continue;
      const auto d = signed_distance(layer.shape, local_positions(layer.motion, xy.to(at::kDouble)));
      const auto lin = layer.motion.narrow(2, 0, 2);
      const auto scale = (lin.select(1, 0).select(1, 0) * lin.select(1, 1).select(1, 1) -
                          lin.select(1, 0).select(1, 1) * lin.select(1, 1).select(1, 0))
                             .abs()
                             .sqrt();
      clearance = at::minimum(clearance, d.abs() * scale.view({T, 1}));
    }
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t n = 0; n < N; ++n) {
        const double x = xy[t][n][0].item<double>(), y = xy[t][n][1].item<double>();
        if (x < 1.5 || y < 1.5 || x > spec.width - 1.5 || y > spec.height - 1.5) continue;
        if (clearance[t][n].item<double>() < 1.5) continue;
        const auto& own = colours[static_cast<size_t>(clip.track_layer[n].item<int64_t>())];
        const auto pixel = clip.video[t].select(1, static_cast<int64_t>(y)).select(1, static_cast<int64_t>(x));
        const bool shows_own = colour_near(pixel, own[0], own[1], own[2], 1e-4);
        EXPECT_EQ(clip.tracks.visible[t][n].item<bool>(), shows_own) << "seed " << seed << " t=" << t << " n=" << n;
        ++checked;
        hidden_checked += !shows_own;
      }
    }
  }
  EXPECT_GT(checked, 2000);
  EXPECT_GT(hidden_checked, 20);
}

TEST(World, PhotoBackgroundsComeFromTheBank) {
  const auto photos = bundled_photos();
  ASSERT_TRUE(photos) << "data/photos.safetensors not found above " << std::filesystem::current_path();
  WorldSpec spec = small_spec();
  spec.photo_background = 1.0;
  for (uint64_t seed : {7u, 8u, 9u}) {
    const Clip clip = render_clip(spec, seed, photos.get());
    EXPECT_NE(clip.caption.find(" over a photo of "), std::string::npos) << clip.caption;
    EXPECT_LE(clip.video.max().item<float>(), 1.0f);
  }
}

// The autoencoder's real-photo clips: the photo fills the frame, the tracks follow the camera exactly (a pan moves
// every point by the same offset, a zoom pushes points away from the centre by 1.3x), and the pixels move with them.
TEST(World, PhotoCameraClipsMoveThePhotoWhereTheirTracksSay) {
  const auto photos = bundled_photos();
  ASSERT_TRUE(photos) << "data/photos.safetensors not found above " << std::filesystem::current_path();
  const Photo& photo = photos->photo(0);
  const int64_t T = 17;
  for (auto move : {CameraMove::kPan, CameraMove::kZoom}) {
    const Clip clip = render_scene(photo_camera_scene(photo, 128, 96, T, move));
    ASSERT_EQ(clip.video.sizes(), (at::IntArrayRef{T, 3, 96, 128}));
    const auto& xy = clip.tracks.xy;  // [T, 64, 2]
    const auto shift = xy[T - 1] - xy[0];  // [N, 2]
    if (move == CameraMove::kPan) {
      EXPECT_LT((shift - shift[0]).abs().max().item<double>(), 1e-4) << "a pan moves every point alike";
      EXPECT_GT(shift[0].norm().item<double>(), 10.0);
    } else {
      const auto centre = at::tensor({64.0, 48.0}, at::kDouble);
      const auto ratio = (xy[T - 1] - centre).norm(2, 1) / (xy[0] - centre).norm(2, 1);
      EXPECT_NEAR(ratio.min().item<double>(), 1.3, 1e-4);
      EXPECT_NEAR(ratio.max().item<double>(), 1.3, 1e-4);
    }
    // Colour at each visible track position against frame 0's colour at its start: small, and far smaller than
    // reading the same pixel positions (ignoring the camera) would give.
    double followed = 0, ignored = 0;
    int64_t samples = 0;
    for (int64_t t = 1; t < T; ++t)
      for (int64_t n = 0; n < clip.tracks.points(); ++n) {
        if (!clip.tracks.visible[t][n].item<bool>()) continue;
        const double x0 = xy[0][n][0].item<double>(), y0 = xy[0][n][1].item<double>();
        const auto start = colour_at(clip.video, 0, x0, y0);
        followed += (colour_at(clip.video, t, xy[t][n][0].item<double>(), xy[t][n][1].item<double>()) - start).abs().mean().item<double>();
        ignored += (colour_at(clip.video, t, x0, y0) - start).abs().mean().item<double>();
        ++samples;
      }
    ASSERT_GT(samples, 500);
    EXPECT_LT(followed / samples, 0.03);
    EXPECT_LT(followed, 0.3 * ignored);
    EXPECT_NE(clip.caption.find(photo.description), std::string::npos) << clip.caption;
  }
}

TEST(World, BadSpecsNameTheField) {
  auto expect_error = [](WorldSpec spec, const std::string& field) {
    try {
      spec.validate();
      ADD_FAILURE() << "no error for " << field;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  WorldSpec spec;
  EXPECT_NO_THROW(spec.validate());
  spec.frames = 48;
  expect_error(spec, "frames");
  spec = WorldSpec{}, spec.width = 100;
  expect_error(spec, "width");
  spec = WorldSpec{}, spec.height = 0;
  expect_error(spec, "height");
  spec = WorldSpec{}, spec.min_objects = 3, spec.max_objects = 2;
  expect_error(spec, "max_objects");
  spec = WorldSpec{}, spec.camera_motion = -0.1;
  expect_error(spec, "camera_motion");
  spec = WorldSpec{}, spec.photo_background = 1.5;
  expect_error(spec, "photo_background");
  spec = WorldSpec{}, spec.grid = -1;
  expect_error(spec, "grid");
  spec = WorldSpec{}, spec.frames = 48;
  EXPECT_THROW(render_clip(spec, 1), std::invalid_argument);
}

TEST(World, BadScenesAreRefused) {
  Scene scene = empty_scene(64, 64, 5);
  scene.layers.push_back(blue_background(5, 32, 32));
  scene.layers.push_back(flat_layer({ShapeKind::kCircle, 5, 5}, 20.0, translating(5, 32, 32, 0, 0), 1, 0, 0));
  EXPECT_THROW(render_scene(scene), std::invalid_argument);  // nearer layer listed with a larger depth
  scene.layers[1].depth = 2.0;
  scene.layers[1].motion = translating(4, 32, 32, 0, 0);
  EXPECT_THROW(render_scene(scene), std::invalid_argument);  // motion for the wrong number of frames
}

TEST(World, ValidationSeedsAreFixed) {
  const auto seeds = validation_seeds();
  ASSERT_EQ(seeds.size(), 32u);
  EXPECT_EQ(std::set<uint64_t>(seeds.begin(), seeds.end()).size(), 32u);
  EXPECT_EQ(seeds, validation_seeds(32));
  EXPECT_EQ(seeds[0], 9000000000000ULL);
  EXPECT_EQ(validation_seeds(4).size(), 4u);
}

TEST(PhotoBank, LoadsTheBundledPhotos) {
  const std::string path = find_photo_bank();
  ASSERT_FALSE(path.empty()) << "data/photos.safetensors not found above " << std::filesystem::current_path();
  const PhotoBank bank(path);
  EXPECT_GE(bank.size(), 10);
  for (const auto& photo : bank.photos()) {
    SCOPED_TRACE(photo.name);
    ASSERT_EQ(photo.image.dim(), 3);
    EXPECT_EQ(photo.image.size(0), 3);
    EXPECT_EQ(std::max(photo.image.size(1), photo.image.size(2)), 256);
    EXPECT_EQ(photo.image.scalar_type(), at::kFloat);
    EXPECT_GE(photo.image.min().item<float>(), 0.0f);
    EXPECT_LE(photo.image.max().item<float>(), 1.0f);
    EXPECT_GT(photo.image.std().item<float>(), 0.02f);
    EXPECT_FALSE(photo.licence.empty());
    EXPECT_FALSE(photo.description.empty());
  }
  EXPECT_TRUE(bank.photo(1).name == "chelsea" && !bank.photo(1).grey);
}

TEST(PhotoBank, MissingOrCorruptFilesAreErrorsNamingTheFile) {
  const std::string missing = "/nonexistent/folder/photos.safetensors";
  try {
    PhotoBank bank(missing);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  const auto dir = test::temp_dir("photo_bank");
  const std::string corrupt = (dir / "corrupt.safetensors").string();
  std::ofstream(corrupt) << "this is not a safetensors file";
  try {
    PhotoBank bank(corrupt);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(corrupt), std::string::npos) << e.what();
  }
  const std::string wrong_dtype = (dir / "float.safetensors").string();
  const float values[3] = {0.1f, 0.2f, 0.3f};
  io::write_safetensors(wrong_dtype, {{"chelsea", io::DType::F32, {1, 1, 3}, values}});
  try {
    PhotoBank bank(wrong_dtype);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(wrong_dtype), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("chelsea"), std::string::npos) << e.what();
  }
}

TEST(PhotoBank, FoundByWalkingUpFromNestedFolders) {
  const auto root = test::temp_dir("photo_bank_walk");
  std::filesystem::create_directories(root / "data");
  std::filesystem::create_directories(root / "a" / "b");
  std::ofstream(root / "data" / "photos.safetensors") << "x";
  EXPECT_EQ(find_photo_bank((root / "a" / "b").string()), (root / "data" / "photos.safetensors").string());
}
