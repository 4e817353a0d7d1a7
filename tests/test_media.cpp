// Media: MP4/PNG I/O, the model-size fit mapping, Lucas-Kanade motion transfer and the evaluation metrics.
#ifdef MS_WITH_MEDIA

#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <vector>

#include "media/evaluation.h"
#include "media/motion_transfer.h"
#include "media/video_io.h"
#include "motionstream/tracks/camera.h"
#include "motionstream/tracks/track_io.h"
#include "test_util.h"

using namespace ms;
using namespace ms::media;

namespace {

// A grey texture with structure at several scales, so that every pyramid level of the tracker has something to
// lock onto. -> CV_32F in [0, 1]
cv::Mat texture(int width, int height, uint64_t seed) {
  cv::RNG rng(seed);
  cv::Mat sum(height, width, CV_32F, cv::Scalar(0));
  for (double sigma : {1.0, 3.0, 8.0}) {
    cv::Mat noise(height, width, CV_32F);
    rng.fill(noise, cv::RNG::UNIFORM, 0.0, 1.0);
    cv::GaussianBlur(noise, noise, cv::Size(0, 0), sigma);
    cv::normalize(noise, noise, 0.0, 1.0, cv::NORM_MINMAX);
    sum += noise;
  }
  sum /= 3.0;
  return sum;
}

at::Tensor grey_to_frame(const cv::Mat& grey) {
  auto t = at::from_blob(grey.data, {grey.rows, grey.cols}, at::kFloat).clone().clamp(0.0, 1.0);
  return t.unsqueeze(0).repeat({3, 1, 1});
}

// Frame t is the texture moved by (vx t + ox, vy t + oy) for t >= 1 (offset only after frame 0), sub-pixel
// accurate (bilinear), reflecting at the borders. -> [T, 3, H, W]
at::Tensor translated_video(const cv::Mat& base, int64_t frames, double vx, double vy, double ox = 0, double oy = 0) {
  std::vector<at::Tensor> out;
  for (int64_t t = 0; t < frames; ++t) {
    const double dx = vx * t + (t > 0 ? ox : 0.0), dy = vy * t + (t > 0 ? oy : 0.0);
    const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, dx, 0, 1, dy);
    cv::Mat moved;
    cv::warpAffine(base, moved, m, base.size(), cv::INTER_LINEAR, cv::BORDER_REFLECT_101);
    out.push_back(grey_to_frame(moved));
  }
  return at::stack(out);
}

// The true tracks of query points under that motion (no offset), visible while inside the image.
TrackSet true_tracks(const at::Tensor& query, int64_t frames, double vx, double vy, int64_t width, int64_t height) {
  const int64_t N = query.size(0);
  auto t = at::arange(frames, at::kFloat).view({frames, 1});
  auto x = query.select(1, 0).view({1, N}) + vx * t;
  auto y = query.select(1, 1).view({1, N}) + vy * t;
  TrackSet tracks;
  tracks.xy = at::stack({x, y}, 2);
  tracks.visible = (x >= 0) & (x < static_cast<double>(width)) & (y >= 0) & (y < static_cast<double>(height));
  tracks.fps = 16.0;
  tracks.width = width;
  tracks.height = height;
  return tracks;
}

at::Tensor moving_square(int64_t frames, int64_t width, int64_t height) {
  std::vector<at::Tensor> out;
  auto xs = at::linspace(0.0, 1.0, width).view({1, 1, width});
  auto ys = at::linspace(0.0, 1.0, height).view({1, height, 1});
  for (int64_t t = 0; t < frames; ++t) {
    auto f = at::cat({0.2 + 0.3 * xs.expand({1, height, width}), 0.3 + 0.2 * ys.expand({1, height, width}),
                      at::full({1, height, width}, 0.4)});
    f.narrow(1, 10, 16).narrow(2, 4 + 2 * t, 16).fill_(0.9);
    out.push_back(f);
  }
  return at::stack(out);
}

}  // namespace

TEST(Media, Mp4RoundTrip) {
  const auto dir = test::temp_dir("media_mp4");
  const auto path = (dir / "square.mp4").string();
  const auto frames = moving_square(20, 96, 64);
  {
    VideoWriter writer(path, 96, 64, 16.0);
    for (int64_t t = 0; t < 20; ++t) writer.write(frames[t]);
    EXPECT_EQ(writer.frames_written(), 20);
  }  // the destructor closes the file
  const Video video = read_video(path);
  ASSERT_EQ(video.frames.size(0), 20);
  EXPECT_EQ(video.frames.size(2), 64);
  EXPECT_EQ(video.frames.size(3), 96);
  EXPECT_NEAR(video.fps, 16.0, 1e-3);
  EXPECT_GT(psnr(video.frames, frames), 30.0);
}

TEST(Media, OddSizeAndPngFrames) {
  const auto dir = test::temp_dir("media_odd");
  const auto frames = moving_square(3, 45, 33);
  {
    VideoWriter writer((dir / "odd.mp4").string(), 45, 33, 10.0);
    writer.write(frames);
  }
  const Video video = read_video((dir / "odd.mp4").string());
  EXPECT_EQ(video.frames.size(0), 3);
  write_png_frames((dir / "png").string(), frames);
  const auto back = read_image((dir / "png" / "frame_000002.png").string());
  ASSERT_EQ(back.sizes(), frames[2].sizes());
  EXPECT_LT(test::max_abs_diff(back, frames[2]), 0.5 / 255.0 + 1e-6);
}

TEST(Media, FitMappingRoundTripsPixelCoordinates) {
  for (auto mode : {FitMode::kStretch, FitMode::kPad, FitMode::kCrop}) {
    const FrameMapping m = fit_mapping(200, 100, 128, 96, mode);
    for (double x : {0.0, 13.25, 99.5, 199.9})
      for (double y : {0.0, 47.5, 99.0}) {
        EXPECT_NEAR(m.to_source_x(m.to_model_x(x)), x, 1e-9);
        EXPECT_NEAR(m.to_source_y(m.to_model_y(y)), y, 1e-9);
      }
    // A bright block in the source lands where the mapping says, in the fitted image.
    auto image = at::zeros({3, 100, 200});
    image.narrow(1, 40, 20).narrow(2, 90, 20).fill_(1.0);  // x in [90, 110), y in [40, 60): centre (100, 50)
    const FittedImage fitted = fit_image(image, 128, 96, mode);
    ASSERT_EQ(fitted.image.sizes(), at::IntArrayRef({3, 96, 128}));
    const auto w = fitted.image[0].to(at::kDouble);
    const double mass = w.sum().item<double>();
    const double cx = (w.sum(0) * (at::arange(128, at::kDouble) + 0.5)).sum().item<double>() / mass;
    const double cy = (w.sum(1) * (at::arange(96, at::kDouble) + 0.5)).sum().item<double>() / mass;
    EXPECT_NEAR(cx, m.to_model_x(100.0), 0.5) << static_cast<int>(mode);
    EXPECT_NEAR(cy, m.to_model_y(50.0), 0.5) << static_cast<int>(mode);
    // Tracks go to the model and back unchanged; a point cropped away becomes invisible.
    const TrackSet tracks = TrackSet::still(at::tensor({3.0f, 50.0f, 100.0f, 50.0f}).view({2, 2}), 4, 200, 100);
    const TrackSet model = m.tracks_to_model(tracks);
    EXPECT_EQ(model.width, 128);
    EXPECT_TRUE(model.visible[0][1].item<bool>());
    EXPECT_EQ(model.visible[0][0].item<bool>(), mode != FitMode::kCrop);
    EXPECT_LT(test::max_abs_diff(m.tracks_to_source(model).xy, tracks.xy), 1e-4);
  }
}

TEST(Media, UnreadableFilesAreNamed) {
  const auto dir = test::temp_dir("media_bad");
  const auto missing = (dir / "missing.png").string();
  const auto corrupt = (dir / "corrupt.png").string();
  const auto bad_video = (dir / "corrupt.mp4").string();
  std::ofstream(corrupt) << "this is not a PNG";
  std::ofstream(bad_video) << "this is not an MP4 either";
  for (const auto& path : {missing, corrupt}) {
    try {
      read_image(path);
      FAIL() << "no error for " << path;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  for (const auto& path : {bad_video, (dir / "missing.mp4").string()}) {
    try {
      read_video(path);
      FAIL() << "no error for " << path;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(Media, DrawTracksMarksLiveAndHiddenPoints) {
  const auto frame = at::zeros({3, 40, 60});
  TrackSet tracks = TrackSet::still(at::tensor({10.5f, 10.5f, 40.5f, 20.5f}).view({2, 2}), 2, 60, 40);
  tracks.visible[1][1] = false;
  const auto drawn = draw_tracks(frame, tracks, 1);
  EXPECT_GT(drawn[1][10][10].item<float>(), 0.5f);  // a filled green disc on the live point
  EXPECT_LT(drawn[1][20][40].item<float>(), 0.1f);  // hollow: the centre of the hidden point stays dark
  EXPECT_GT(drawn[1].narrow(0, 16, 9).narrow(1, 36, 9).max().item<float>(), 0.5f);  // but its ring is drawn
}

TEST(MotionTransfer, TracksKnownTranslation) {
  const int W = 192, H = 144;
  const int64_t T = 16;
  const auto video = translated_video(texture(W, H, 7), T, 2.0, 1.0);
  const TrackSet tracks = track_grid(video, 8, 6, 16.0);
  ASSERT_EQ(tracks.frames(), T);
  const TrackSet truth = true_tracks(tracks.xy[0], T, 2.0, 1.0, W, H);
  const auto both = tracks.visible & truth.visible;
  const auto err = (tracks.xy - truth.xy).pow(2).sum(2).sqrt();
  const double mean = (err * both.to(at::kFloat)).sum().item<double>() / both.sum().item<double>();
  EXPECT_LT(mean, 0.5);
  EXPECT_GT(both.sum().item<int64_t>(), T * 30);  // most points stay tracked

  // A point near the right edge leaves the frame after a few frames and must be reported invisible from then on.
  const auto edge = at::tensor({static_cast<float>(W) - 6.5f, 70.5f}).view({1, 2});
  const TrackSet leaving = track_points(video, edge, 16.0);
  EXPECT_TRUE(leaving.visible[0][0].item<bool>());
  for (int64_t t = 4; t < T; ++t) EXPECT_FALSE(leaving.visible[t][0].item<bool>()) << "frame " << t;
  EXPECT_TRUE(std::isfinite(leaving.xy[T - 1][0][0].item<float>()));

  // Re-anchoring scales the tracks to the new image.
  const TrackSet moved = reanchor_tracks(tracks, W * 2, H * 2);
  EXPECT_EQ(moved.width, W * 2);
  EXPECT_LT(test::max_abs_diff(moved.xy, tracks.xy * 2), 1e-4);
}

TEST(Evaluation, EpeOfAFollowingAndAnOffsetVideo) {
  const int W = 192, H = 144;
  const int64_t T = 12;
  const auto base = texture(W, H, 11);
  const TrackSet tracks = true_tracks(grid_query_points(W, H, 8, 6), T, 2.0, 1.0, W, H);

  const MotionFollowing exact = motion_epe(translated_video(base, T, 2.0, 1.0), tracks);
  EXPECT_EQ(exact.points, 48);
  EXPECT_EQ(exact.frames, T);
  EXPECT_GT(exact.samples, 0);
  EXPECT_LT(exact.epe, 0.5);

  // Every frame after the first is 5 px (3 right, 4 down) away from where the tracks say.
  const MotionFollowing offset = motion_epe(translated_video(base, T, 2.0, 1.0, 3.0, 4.0), tracks);
  EXPECT_NEAR(offset.epe, 5.0, 1.0);

  // Tracks drawn on an image twice the size are scaled to the video first.
  const TrackSet doubled = scale_tracks(tracks, W * 2, H * 2);
  EXPECT_NEAR(motion_epe(translated_video(base, T, 2.0, 1.0), doubled).epe, exact.epe, 1e-3);

  const auto j = to_json(evaluate_video(translated_video(base, T, 2.0, 1.0), tracks, at::Tensor()));
  EXPECT_TRUE(j["psnr"].is_null());
  EXPECT_EQ(j["points"].get<int64_t>(), 48);
  EXPECT_LT(j["epe"].get<double>(), 0.5);
}

TEST(Evaluation, ReliablyTrackedKeepsThePointsTheTrackerFollowsOnTheRealVideo) {
  const int W = 192, H = 144;
  const int64_t T = 12;
  const auto base = texture(W, H, 11);
  const auto video = translated_video(base, T, 2.0, 1.0);
  TrackSet tracks = true_tracks(grid_query_points(W, H, 8, 6), T, 2.0, 1.0, W, H);
  // The first 10 tracks claim a motion the video does not have: 6 px further right on every later frame.
  tracks.xy.narrow(1, 0, 10).narrow(0, 1, T - 1).select(2, 0).add_(6.0);
  const at::Tensor keep = reliably_tracked(video, tracks);  // [48]
  ASSERT_EQ(keep.size(0), 48);
  EXPECT_FALSE(keep.narrow(0, 0, 10).any().item<bool>());
  EXPECT_GE(keep.narrow(0, 10, 38).sum().item<int64_t>(), 36);
  // A point hidden on the frames where it would be wrong still counts as followed.
  tracks.visible.narrow(1, 0, 1).narrow(0, 1, T - 1).fill_(false);
  EXPECT_TRUE(reliably_tracked(video, tracks)[0].item<bool>());

  const MotionFollowing counted = motion_epe(video, tracks, {}, keep);
  EXPECT_LT(counted.epe, 0.5);
  EXPECT_EQ(counted.points, 48) << "every track is re-tracked";
  EXPECT_GT(motion_epe(video, tracks).epe, 1.0) << "the lying tracks spoil the plain EPE";
  EXPECT_THROW(reliably_tracked(video, tracks, 0.0), std::invalid_argument);

  // evaluate_video gives both figures from one re-tracking, the reliable points read on its reference.
  const at::Tensor on_video = reliably_tracked(video, tracks);
  const EvalReport report = evaluate_video(video, tracks, video);
  EXPECT_NEAR(report.motion_reliable.epe, motion_epe(video, tracks, {}, on_video).epe, 1e-9);
  EXPECT_NEAR(report.motion.epe, motion_epe(video, tracks).epe, 1e-9);
  const auto j = to_json(report);
  EXPECT_EQ(j["reliable_points"].get<int64_t>(), on_video.sum().item<int64_t>());
  EXPECT_LT(j["epe_reliable"].get<double>(), 0.5);
  EXPECT_FALSE(to_json(evaluate_video(video, tracks, at::Tensor())).contains("epe_reliable")) << "no reference";
}

TEST(Evaluation, PsnrAndSsimKnownCases) {
  auto gen = at::detail::createCPUGenerator(3);
  const auto a = at::rand({4, 3, 32, 40}, gen) * 0.9;
  EXPECT_TRUE(std::isinf(psnr(a, a)));
  EXPECT_NEAR(ssim(a, a), 1.0, 1e-12);
  EXPECT_NEAR(psnr(a, a + 0.1), 20.0, 1e-5);
  EXPECT_LT(ssim(a, a + 0.1), 1.0);
  EXPECT_LT(ssim(a, at::rand({4, 3, 32, 40}, gen)), 0.2);  // unrelated noise

  EvalReport report;
  report.has_reference = true;
  report.psnr = psnr(a, a);
  report.ssim = 1.0;
  const auto j = to_json(report);
  EXPECT_TRUE(j["psnr"].is_null());
  EXPECT_TRUE(j["psnr_identical"].get<bool>());
  EXPECT_TRUE(j["epe"].is_null());
}

#endif  // MS_WITH_MEDIA
