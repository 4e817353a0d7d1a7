// Long-horizon stream: thousands of frames with drags that keep changing, through the same StreamingGenerator,
// decoder and LiveTracks the live server uses. Per window of frames it reports the chunk time (flat when the cache
// works), the mean intensity and contrast of the frames (a collapse drifts to grey or noise) and how well the
// window follows its tracks (EPE, re-tracked from the window's first frame). Prints JSON lines.
//   long_stream [--model DIR | --codec DIR] [--frames 2000] [--window 200] [--image PNG] [--prompt TEXT]
//               [--drag-every 96] [--chunk 3 --sink 1 --window-chunks 1] [--steps 3] [--seed 0]
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <random>

#include "media/evaluation.h"
#include "media/video_io.h"
#include "motionstream/diffusion/flow_schedule.h"
#include "motionstream/model/dit_config.h"
#include "motionstream/model/motion_model.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/stream/streaming_generator.h"
#include "motionstream/tracks/live_tracks.h"
#include "motionstream/util/cli_args.h"

using namespace ms;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// A new drag every `every` frames: grabbed at a random point, pulled along a straight line for half the period
// (one cursor event every 4 frames), then let go.
void schedule_drags(LiveTracks& live, int64_t frame, int64_t every, int64_t W, int64_t H, std::mt19937_64& rng) {
  if (frame % every != 0) return;
  std::uniform_real_distribution<double> u(0.2, 0.8), angle(0.0, 2.0 * M_PI), length(0.15, 0.3);
  const double x = u(rng) * W, y = u(rng) * H, a = angle(rng), d = length(rng) * std::min(W, H);
  live.drag_down(frame, {x, y}, 3, W / 16.0);
  const int64_t moves = every / 8;
  for (int64_t i = 1; i <= moves; ++i) {
    const double s = static_cast<double>(i) / moves;
    live.drag_move(frame + 4 * i, {x + s * d * std::cos(a), y + s * d * std::sin(a)});
  }
  live.drag_up(frame + 4 * moves, {x + d * std::cos(a), y + d * std::sin(a)});
}

}  // namespace

int main(int argc, char** argv) try {
  const CliArgs args(argc, argv, 1,
                     {"model", "codec", "frames", "window", "image", "prompt", "drag-every", "chunk", "sink",
                      "window-chunks", "steps", "seed", "threads", "width", "height"});
  torch::set_num_threads(static_cast<int>(args.integer("threads", 1)));
  torch::NoGradGuard no_grad;
  const std::string source_dir = MS_SOURCE_DIR;
  const int64_t total = args.integer("frames", 2000), window = args.integer("window", 200);
  const int64_t every = args.integer("drag-every", 96);

  // Model: a folder, or random weights of the bundled shape (the machinery runs; the figures mean little).
  MotionModel model{nullptr};
  std::string codec_dir, name;
  double shift = 5.0;
  if (args.has("model")) {
    LoadedMotionModel loaded = load_motion_model(args.str("model", ""));
    model = loaded.model;
    codec_dir = loaded.codec_folder;
    if (loaded.description.contains("shift")) shift = loaded.description["shift"].get<double>();
    name = args.str("model", "");
  } else {
    model = MotionModel(dit_preset("cpu-small"), std::vector<std::string>{});
    init_dit_weights(*model->dit, 0);
    codec_dir = args.str("codec", source_dir + "/models/tiny-vae-128");
    name = "cpu-small (random weights)";
  }
  model->eval();
  LatentCodec codec(codec_dir);
  const int64_t W = args.integer("width", 128), H = args.integer("height", 128);
  const auto fitted = media::fit_image(media::read_image(args.str("image", source_dir + "/tests/e2e/fixtures/chelsea.png")),
                                       W, H, media::FitMode::kCrop);

  StreamConfig config;
  config.layout.chunk_frames = args.integer("chunk", 3);
  config.layout.sink_chunks = args.integer("sink", 1);
  config.layout.window_chunks = args.integer("window-chunks", 1);
  config.timesteps = FlowSchedule{shift}.denoising_steps(args.integer("steps", 3));
  config.seed = static_cast<uint64_t>(args.integer("seed", 0));
  const at::Tensor latent = codec.encode(fitted.image.view({1, 1, 3, H, W})).select(2, 0);
  StreamingGenerator generator(model->dit, config, model->prompt_context({args.str("prompt", "")}), latent, H / 8, W / 8);
  if (model->dit->config().image_branch()) generator.set_image_tokens(model->image_tokens(fitted.image.view({1, 3, H, W})));
  if (model->dit->config().track_warp_hint) generator.set_warp_hint_source(codec, fitted.image.view({3, H, W}));
  StreamingDecoder decoder(codec.vae());
  LiveTracks live(W, H, 16.0);
  std::mt19937_64 rng(config.seed + 1);

  std::vector<at::Tensor> pending;  // frames of the window being filled, [n, 3, H, W] each
  std::vector<double> chunk_ms;
  int64_t frames = 0, window_start = 0;
  std::vector<double> window_means;
  TrackSet tracks;
  while (frames < total) {
    const int64_t needed = 4 * (generator.frames_done() + config.layout.chunk_frames) - 3;
    for (int64_t f = frames; f < needed; ++f) schedule_drags(live, f, every, W, H, rng);
    tracks = live.tracks(needed);
    generator.set_tracks(tracks);
    const Clock::time_point t0 = Clock::now();
    const at::Tensor latents = generator.next_chunk();  // [1, C, chunk, h, w]
    for (int64_t f = 0; f < latents.size(2); ++f) {
      const at::Tensor out = decoder.push(codec.denormalize_frame(latents.select(2, f)))[0];  // [n, 3, H, W]
      pending.push_back(out);
      frames += out.size(0);
    }
    chunk_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());

    // Report every full window.
    int64_t have = 0;
    for (const auto& p : pending) have += p.size(0);
    while (have >= window) {
      const at::Tensor all = at::cat(pending);
      const at::Tensor video = all.narrow(0, 0, window);  // [window, 3, H, W]
      TrackSet part = tracks;
      part.xy = tracks.xy.narrow(0, window_start, window);
      part.visible = tracks.visible.narrow(0, window_start, window);
      const media::MotionFollowing follow = media::motion_epe(video, part);
      double ms_sum = 0;
      for (double m : chunk_ms) ms_sum += m;
      const double mean = video.mean().item<double>();
      window_means.push_back(mean);
      std::cout << json{{"bench", "long_stream"},
                        {"window_first_frame", window_start},
                        {"mean_chunk_ms", ms_sum / chunk_ms.size()},
                        {"chunks", chunk_ms.size()},
                        {"mean_intensity", mean},
                        {"contrast", video.std().item<double>()},
                        {"epe", std::isfinite(follow.epe) ? json(follow.epe) : json()},
                        {"epe_points", follow.points}}
                       .dump()
                << std::endl;
      chunk_ms.clear();
      window_start += window;
      pending = {all.narrow(0, window, all.size(0) - window)};
      have -= window;
    }
  }
  std::cout << json{{"bench", "long_stream_summary"},
                    {"model", name},
                    {"frames", frames},
                    {"cache_chunks", generator.cache().chunks_committed()},
                    {"intensity_first_window", window_means.empty() ? json() : json(window_means.front())},
                    {"intensity_last_window", window_means.empty() ? json() : json(window_means.back())}}
                   .dump()
            << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::cerr << "long_stream: " << e.what() << std::endl;
  return 1;
}
