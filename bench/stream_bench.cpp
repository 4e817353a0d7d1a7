// Streaming generator benchmark: per-chunk time, FPS, FLOPs and utilisation against this machine's measured matmul
// peak, all in one run. Prints JSON lines; never fails on a number.
//
//   stream_bench --preset cpu-small --width 256 --height 256 --chunks 200 --report 5,200
//   stream_bench --preset wan-1.3b-motion --width 832 --height 480 --device cuda --dtype bf16 --chunks 30
//   stream_bench --preset wan-1.3b-motion --width 832 --height 480 --single-pass --blocks 2   (CPU sanity figure)
//   stream_bench --preset cpu-small --width 128 --height 128 --codec models/tiny-vae-128      (decode included)
#include <torch/cuda.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "motionstream/model/dit.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/stream/streaming_generator.h"
#include "motionstream/tracks/track_raster.h"
#include "motionstream/util/cli_args.h"

using namespace ms;
using json = nlohmann::json;

namespace {

struct Clock {
  at::Device device;
  double now() const {  // seconds, after the device has finished its queued work
    if (device.is_cuda()) torch::cuda::synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
};

// Best-of-n matmul throughput at a given shape, in GFLOP/s.
double matmul_gflops(int64_t m, int64_t k, int64_t n, const at::TensorOptions& opts, const Clock& clock, int reps) {
  auto a = torch::randn({m, k}, opts), b = torch::randn({k, n}, opts);
  auto c = at::matmul(a, b);  // warm-up
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t0 = clock.now();
    c = at::matmul(a, b);
    best = std::min(best, clock.now() - t0);
  }
  return 2.0 * m * k * n / best / 1e9;
}

// CPU seconds used by this process (all threads): unlike wall time, barely moved by other load on a shared machine.
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0.0;
}

at::ScalarType parse_dtype(const std::string& s) {
  if (s == "fp32" || s == "f32") return at::kFloat;
  if (s == "bf16") return at::kBFloat16;
  if (s == "fp16" || s == "f16") return at::kHalf;
  throw std::invalid_argument("--dtype must be fp32, bf16 or fp16, got '" + s + "'");
}

}  // namespace

int main(int argc, char** argv) try {
  CliArgs args(argc, argv, 1,
               {"preset", "width", "height", "chunks", "steps", "chunk-frames", "sink", "window", "device", "dtype",
                "threads", "report", "blocks", "seed", "codec"},
               {"per-chunk", "single-pass"});
  DitConfig config = dit_preset(args.str("preset", "cpu-small"));
  if (args.has("blocks")) config.num_layers = args.integer("blocks", config.num_layers);
  const int64_t width = args.integer("width", 256), height = args.integer("height", 256);
  if (width % 16 || height % 16) throw std::invalid_argument("--width and --height must be multiples of 16");
  const int64_t lh = height / 8, lw = width / 8;
  StreamConfig sc;
  sc.layout = {args.integer("chunk-frames", 3), args.integer("sink", 1), args.integer("window", 1)};
  sc.timesteps = FlowSchedule{5.0}.denoising_steps(args.integer("steps", 3));
  sc.seed = static_cast<uint64_t>(args.integer("seed", 0));
  const int64_t chunks = args.integer("chunks", 200);
  auto report_at = args.integers("report", {5, chunks});
  const at::Device device(args.str("device", "cpu"));
  const auto dtype = parse_dtype(args.str("dtype", "fp32"));
  // On CPU, OpenBLAS threads the matmuls itself; a second layer of torch threads measured slower (docs/PERFORMANCE.md).
  if (args.has("threads") || device.is_cpu()) torch::set_num_threads(static_cast<int>(args.integer("threads", 1)));
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  const Clock clock{device};
  torch::NoGradGuard no_grad;

  // The machine's own matmul peak, same process, same threads: utilisation is measured against this.
  const int64_t tokens = sc.layout.chunk_frames * (lh / 2) * (lw / 2);
  const int reps = device.is_cuda() ? 20 : 3;
  const double peak_square = matmul_gflops(device.is_cuda() ? 8192 : 1024, device.is_cuda() ? 8192 : 1024,
                                           device.is_cuda() ? 8192 : 1024, opts, clock, reps);
  const double peak_shaped = matmul_gflops(tokens, config.dim, config.ffn_dim, opts, clock, reps);
  const double peak = std::max(peak_square, peak_shaped);
  std::cout << json{{"bench", "matmul_peak"}, {"device", device.str()}, {"dtype", args.str("dtype", "fp32")},
                    {"threads", torch::get_num_threads()}, {"square_gflops", peak_square},
                    {"model_shaped_gflops", peak_shaped}, {"model_shape", {tokens, config.dim, config.ffn_dim}}}
                   .dump()
            << std::endl;

  WanDiT model(config);
  model->to(device, dtype);
  model->eval();
  auto text = torch::randn({1, config.text_len, config.text_dim});
  auto image_latent = config.image_condition ? torch::randn({1, config.latent_channels, lh, lw}) : at::Tensor();
  // A 5x5 grid of points drifting right: the rasteriser runs every chunk.
  auto grid_xy = torch::stack({torch::linspace(width * 0.2, width * 0.8, 5).repeat(5),
                               torch::linspace(height * 0.2, height * 0.8, 5).repeat_interleave(5)}, 1);
  TrackSet tracks = TrackSet::still(grid_xy.to(torch::kFloat), 16 * chunks * sc.layout.chunk_frames, width, height);
  tracks.xy.select(2, 0).add_(torch::arange(tracks.frames()).unsqueeze(1).to(torch::kFloat) * 0.5);

  if (args.has("single-pass")) {  // one denoising pass of the first chunk: a sanity figure for huge shapes on CPU
    const int64_t frames = sc.layout.chunk_frames;
    DitInput in;
    in.noisy = torch::randn({1, config.latent_channels, frames, lh, lw}, opts);
    in.timesteps = torch::full({1, frames}, 1000.0, opts.dtype(torch::kFloat));
    if (config.image_condition) in.condition = image_condition(image_latent.to(opts), 0, frames);
    if (config.track_channels > 0) {
      auto gen = at::detail::createCPUGenerator(0);
      in.tracks = packed_track_input(tracks, draw_track_ids(tracks.points(), gen), 0, frames, lh, lw,
                                     config.track_id_dim).to(opts);
    }
    KvCache cache(config, sc.layout, 1, {frames, lh / 2, lw / 2}, opts);
    auto text_kv = model->encode_text(text.to(opts));
    if (config.image_branch())
      text_kv.image = model->encode_image(torch::randn({1, config.image_tokens, config.image_token_dim}).to(opts));
    const double t0 = clock.now();
    model->forward(in, text_kv, cache);
    const double seconds = clock.now() - t0;
    const double flops = config.forward_flops(tokens, tokens);
    std::cout << json{{"bench", "single_pass"}, {"preset", config.name}, {"blocks", config.num_layers},
                      {"width", width}, {"height", height}, {"tokens", tokens}, {"seconds", seconds},
                      {"gflop", flops / 1e9}, {"gflops", flops / seconds / 1e9},
                      {"utilisation", flops / seconds / 1e9 / peak}, {"peak_rss_mb", peak_rss_mb()}}
                     .dump()
              << std::endl;
    return 0;
  }

  StreamingGenerator gen(model, sc, text, image_latent, lh, lw);
  if (config.image_branch()) gen.set_image_tokens(torch::randn({1, config.image_tokens, config.image_token_dim}));
  // With an autoencoder, every chunk is also decoded to frames the way the live stream does it.
  std::unique_ptr<LatentCodec> codec;
  std::unique_ptr<StreamingDecoder> decoder;
  if (args.has("codec")) {
    codec = std::make_unique<LatentCodec>(args.str("codec", ""), device);
    if (codec->channels() != config.latent_channels)
      throw std::invalid_argument("--codec has " + std::to_string(codec->channels()) + " latent channels, the model " +
                                  std::to_string(config.latent_channels));
    codec->vae()->to(dtype);
    decoder = std::make_unique<StreamingDecoder>(codec->vae());
  }
  if (config.track_channels > 0) gen.set_tracks(tracks);

  const int64_t passes = static_cast<int64_t>(sc.timesteps.size()) + 1;
  const int64_t frames_per_chunk = 4 * sc.layout.chunk_frames;  // pixel frames per steady-state chunk
  auto chunk_flops = [&](int64_t chunk) {  // keys = cached chunks + itself
    const int64_t cached = std::min(chunk, sc.layout.sink_chunks + sc.layout.window_chunks);
    return passes * config.forward_flops(tokens, (cached + 1) * tokens);
  };

  std::vector<double> seconds, cpu_seconds, decode_seconds;
  for (int64_t i = 0; i < chunks; ++i) {
    const double t0 = clock.now(), c0 = process_cpu_seconds();
    auto latents = gen.next_chunk();  // [1, C, chunk, h, w]
    const double t1 = clock.now();
    if (decoder)
      for (int64_t f = 0; f < latents.size(2); ++f) decoder->push(codec->denormalize_frame(latents.select(2, f)));
    const double t2 = clock.now();
    seconds.push_back(t2 - t0);
    decode_seconds.push_back(t2 - t1);
    cpu_seconds.push_back(process_cpu_seconds() - c0);
    if (args.has("per-chunk"))
      std::cout << json{{"bench", "chunk"}, {"chunk", i + 1}, {"ms", seconds.back() * 1e3},
                        {"cpu_ms", cpu_seconds.back() * 1e3},
                        {"fps", frames_per_chunk / seconds.back()}}
                       .dump()
                << std::endl;
    else if ((i + 1) % 10 == 0 || i + 1 == chunks)
      std::fprintf(stderr, "\rchunk %ld/%ld  %.1f ms  %.1f FPS   ", static_cast<long>(i + 1), static_cast<long>(chunks),
                   seconds.back() * 1e3, frames_per_chunk / seconds.back());
  }
  std::fprintf(stderr, "\n");

  // Median over a few chunks around each reported index: robust to a noisy shared machine.
  auto around = [&](int64_t chunk, const std::vector<double>& series) {
    std::vector<double> s;
    for (int64_t i = std::max<int64_t>(1, chunk - 2); i <= std::min(chunks, chunk + 2); ++i) s.push_back(series[i - 1]);
    std::nth_element(s.begin(), s.begin() + s.size() / 2, s.end());
    return s[s.size() / 2];
  };
  json summary{{"bench", "stream"},
               {"preset", config.name},
               {"parameters", config.parameter_count()},
               {"device", device.str()},
               {"dtype", args.str("dtype", "fp32")},
               {"threads", torch::get_num_threads()},
               {"width", width},
               {"height", height},
               {"chunk_frames", sc.layout.chunk_frames},
               {"sink", sc.layout.sink_chunks},
               {"window", sc.layout.window_chunks},
               {"steps", sc.timesteps.size()},
               {"tokens_per_chunk", tokens},
               {"chunks", chunks},
               {"decode", decoder ? "included: " + codec->folder() : "not included (latents only)"},
               {"peak_rss_mb", peak_rss_mb()},
               {"matmul_peak_gflops", peak}};
  for (int64_t r : report_at) {
    if (r < 1 || r > chunks) continue;
    const double s = around(r, seconds), flops = chunk_flops(r - 1);
    summary["at_chunk_" + std::to_string(r)] = {{"ms", s * 1e3},
                                                {"cpu_ms", around(r, cpu_seconds) * 1e3},
                                                {"decode_ms", around(r, decode_seconds) * 1e3},
                                                {"fps", frames_per_chunk / s},
                                                {"latency_s", s},
                                                {"gflop", flops / 1e9},
                                                {"gflops", flops / s / 1e9},
                                                {"utilisation", flops / s / 1e9 / peak}};
  }
  if (report_at.size() >= 2 && report_at.front() >= 1 && report_at.back() <= chunks)
  {
    summary["ratio_last_to_first"] = around(report_at.back(), seconds) / around(report_at.front(), seconds);
    summary["cpu_ratio_last_to_first"] = around(report_at.back(), cpu_seconds) / around(report_at.front(), cpu_seconds);
  }
  summary["cache_tokens_at_end"] = gen.cache().cached_tokens();
  std::cout << summary.dump() << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::cerr << "stream_bench: " << e.what() << std::endl;
  return 2;
}
