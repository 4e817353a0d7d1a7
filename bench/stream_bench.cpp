// Streaming generator benchmark: per-chunk model time, decode time, FPS, latency, FLOPs and utilisation against this
// machine's measured matmul peak, peak memory and (CUDA) the allocator's new segments after warm-up, all in one run.
// Prints JSON lines; never fails on a number.
//
//   stream_bench --preset cpu-small --width 256 --height 256 --chunks 200 --report 5,200
//   stream_bench --preset wan-1.3b-motion --width 832 --height 480 --device cuda --dtype bf16 --chunks 30
//   stream_bench ... --device cuda --eager --cuda-graphs --codec taehv-wan   (both engines, one process, decode on its
//                                                                             own stream; random TAEHV-width decoder)
//   stream_bench --preset wan-1.3b-motion --width 832 --height 480 --single-pass --blocks 2   (CPU sanity figure)
//   stream_bench --preset cpu-small --width 128 --height 128 --codec models/tiny-vae-128      (decode included)
//   stream_bench ... --codec models/tiny-vae-128 --warp-hint     (a model that takes the warp hint: its cost included)
#include <torch/cuda.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "motionstream/model/dit.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/stream/overlapped_decoder.h"
#include "motionstream/stream/streaming_generator.h"
#include "motionstream/tracks/track_raster.h"
#include "motionstream/util/cli_args.h"
#include "motionstream/util/gpu.h"

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
                "threads", "report", "blocks", "seed", "codec", "warmup"},
               {"per-chunk", "single-pass", "eager", "cuda-graphs", "warp-hint"});
  DitConfig config = dit_preset(args.str("preset", "cpu-small"));
  config.track_warp_hint = args.has("warp-hint");  // the warp hint's per-chunk warp and encode are timed too
  if (config.track_warp_hint && !args.has("codec")) throw std::invalid_argument("--warp-hint needs --codec");
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

  // With an autoencoder, every chunk is also decoded to frames the way the live stream does it: a trained one from its
  // folder, or a preset name with random weights (e.g. taehv-wan, the public Wan widths 256/128/64) for timing.
  std::unique_ptr<LatentCodec> codec;
  if (args.has("codec")) {
    const std::string what = args.str("codec", "");
    if (std::filesystem::is_directory(what)) {
      codec = std::make_unique<LatentCodec>(what, device);
    } else {
      torch::manual_seed(0);
      TinyVae vae(tiny_vae_preset(what));
      vae->to(device);
      vae->eval();
      codec = std::make_unique<LatentCodec>(vae, std::vector<double>(vae->config().latent_channels, 0.0),
                                            std::vector<double>(vae->config().latent_channels, 1.0));
    }
    if (codec->channels() != config.latent_channels)
      throw std::invalid_argument("--codec has " + std::to_string(codec->channels()) + " latent channels, the model " +
                                  std::to_string(config.latent_channels));
    codec->vae()->to(dtype);
  }

  const int64_t passes = static_cast<int64_t>(sc.timesteps.size()) + 1;
  const int64_t frames_per_chunk = 4 * sc.layout.chunk_frames;  // pixel frames per steady-state chunk
  auto chunk_flops = [&](int64_t chunk) {  // keys = cached chunks + itself
    const int64_t cached = std::min(chunk, sc.layout.sink_chunks + sc.layout.window_chunks);
    return passes * config.forward_flops(tokens, (cached + 1) * tokens);
  };
  // Warm-up: sink and window filling, one eager chunk at the steady shape, the capture; allocator counts start after.
  const int64_t warmup = std::min(chunks, args.integer("warmup", sc.layout.sink_chunks + sc.layout.window_chunks + 2));
  // CUDA events time the device work without stalling it; elsewhere the clock synchronises (Clock::now).
  const bool events = device.is_cuda() && gpu::cuda_compiled();
  auto host_now = [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };

  std::vector<std::pair<std::string, bool>> modes;  // name, CUDA graphs
  if (args.has("eager") || !args.has("cuda-graphs")) modes.push_back({"eager", false});
  if (args.has("cuda-graphs")) modes.push_back({"cuda_graphs", true});
  at::Tensor eager_last;  // the eager run's last chunk, to check the graph run against

  for (const auto& [mode, graphs] : modes) {
    gpu::reset_peak_memory(device);
    StreamConfig msc = sc;
    msc.cuda_graphs = graphs;
    StreamingGenerator gen(model, msc, text, image_latent, lh, lw);
    if (config.image_branch()) gen.set_image_tokens(torch::randn({1, config.image_tokens, config.image_token_dim}));
    if (config.track_channels > 0) gen.set_tracks(tracks);
    if (config.track_warp_hint) gen.set_warp_hint_source(*codec, torch::rand({3, height, width}));
    std::unique_ptr<OverlappedDecoder> decoder;
    if (codec) decoder = std::make_unique<OverlappedDecoder>(*codec, device);

    // Per chunk: wall time of the loop (on a GPU with the decode overlapped, the period between chunks), device time
    // of the generation and of the decode, process CPU time.
    std::vector<double> seconds, model_ms(chunks, 0.0), decode_ms(chunks, 0.0), cpu_seconds;
    std::vector<gpu::Mark> begun, ended;
    gpu::MemoryStats after_warmup;
    at::Tensor last;
    for (int64_t i = 0; i < chunks; ++i) {
      const double t0 = events ? host_now() : clock.now(), c0 = process_cpu_seconds();
      begun.push_back(gpu::mark_current(device, true));
      last = gen.next_chunk();  // [1, C, chunk, h, w]; queued, not waited for, on a GPU
      ended.push_back(gpu::mark_current(device, true));
      if (!events) model_ms[i] = (clock.now() - t0) * 1e3;
      if (decoder) {
        if (decoder->pending()) decode_ms[i - 1] = decoder->collect().decode_ms;  // chunk i-1's frames are out
        decoder->submit(last);
      } else if (i > 0) {
        ended[i - 1].wait_host();  // a consumer of chunk i-1's latents: the host stays at most one chunk ahead
      }
      if (!events && decoder) {  // serial: this chunk's decode is part of this chunk's time
        decode_ms[i] = decoder->collect().decode_ms;
      }
      seconds.push_back((events ? host_now() : clock.now()) - t0);
      cpu_seconds.push_back(process_cpu_seconds() - c0);
      if (i + 1 == warmup) after_warmup = gpu::memory_stats(device);
      if (!args.has("per-chunk") && ((i + 1) % 10 == 0 || i + 1 == chunks))
        std::fprintf(stderr, "\r%s chunk %ld/%ld  %.1f ms  %.1f FPS   ", mode.c_str(), static_cast<long>(i + 1),
                     static_cast<long>(chunks), seconds.back() * 1e3, frames_per_chunk / seconds.back());
    }
    if (decoder && decoder->pending()) decode_ms[chunks - 1] = decoder->collect().decode_ms;
    if (device.is_cuda()) torch::cuda::synchronize();
    const gpu::MemoryStats at_end = gpu::memory_stats(device);
    if (events)
      for (int64_t i = 0; i < chunks; ++i) model_ms[i] = ended[i].ms_since(begun[i]);
    std::fprintf(stderr, "\n");
    if (args.has("per-chunk"))
      for (int64_t i = 0; i < chunks; ++i)
        std::cout << json{{"bench", "chunk"}, {"mode", mode}, {"chunk", i + 1}, {"ms", seconds[i] * 1e3},
                          {"model_ms", model_ms[i]}, {"decode_ms", decode_ms[i]}, {"cpu_ms", cpu_seconds[i] * 1e3},
                          {"fps", frames_per_chunk / seconds[i]},
                          {"latency_s", (model_ms[i] + decode_ms[i]) / 1e3}}
                         .dump()
                  << std::endl;

    // Median over a few chunks around each reported index: robust to a noisy shared machine.
    auto around = [&](int64_t chunk, const std::vector<double>& series) {
      std::vector<double> s;
      for (int64_t i = std::max<int64_t>(1, chunk - 2); i <= std::min(chunks, chunk + 2); ++i) s.push_back(series[i - 1]);
      std::nth_element(s.begin(), s.begin() + s.size() / 2, s.end());
      return s[s.size() / 2];
    };
    const EngineCounts& counts = gen.engine_counts();
    json summary{{"bench", "stream"},
                 {"mode", mode},
                 {"preset", config.name}, {"warp_hint", config.track_warp_hint},
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
                 {"warmup_chunks", warmup},
                 {"decode", codec ? "included: " + args.str("codec", "") : "not included (latents only)"},
                 {"decode_on_own_stream", events && decoder != nullptr},
                 {"eager_chunks", counts.eager_chunks},
                 {"graph_replays", counts.graph_replays},
                 {"graphs_captured", counts.graphs_captured},
                 {"peak_rss_mb", peak_rss_mb()},
                 {"matmul_peak_gflops", peak}};
    if (!gen.graph_error().empty()) summary["graph_error"] = gen.graph_error();
    if (at_end.available) {  // peaks since this mode began; reserved memory cached by an earlier mode counts in it
      summary["cuda_peak_allocated_mb"] = at_end.peak_allocated_bytes / 1048576.0;
      summary["cuda_peak_reserved_mb"] = at_end.peak_reserved_bytes / 1048576.0;
      summary["cuda_new_segments_after_warmup"] = at_end.segments_created - after_warmup.segments_created;
      summary["cuda_allocations_after_warmup"] = at_end.allocation_requests - after_warmup.allocation_requests;
      summary["cuda_allocations_per_chunk_after_warmup"] =
          chunks > warmup ? double(at_end.allocation_requests - after_warmup.allocation_requests) / double(chunks - warmup)
                          : 0.0;
    }
    for (int64_t r : report_at) {
      if (r < 1 || r > chunks) continue;
      const double s = around(r, seconds), m = around(r, model_ms), d = around(r, decode_ms);
      const double flops = chunk_flops(r - 1);
      // Latency (docs/PERFORMANCE.md): a track change that arrives just before a chunk starts shows in that chunk's
      // frames once it is generated and decoded; one that arrives just after waits up to one more chunk period.
      summary["at_chunk_" + std::to_string(r)] = {{"ms", s * 1e3},
                                                  {"model_ms", m},
                                                  {"decode_ms", d},
                                                  {"cpu_ms", around(r, cpu_seconds) * 1e3},
                                                  {"fps", frames_per_chunk / s},
                                                  {"latency_s", (m + d) / 1e3},
                                                  {"latency_max_s", s + (m + d) / 1e3},
                                                  {"gflop", flops / 1e9},
                                                  {"gflops", flops / (m / 1e3) / 1e9},
                                                  {"utilisation", flops / (m / 1e3) / 1e9 / peak}};
    }
    if (report_at.size() >= 2 && report_at.front() >= 1 && report_at.back() <= chunks) {
      summary["ratio_last_to_first"] = around(report_at.back(), seconds) / around(report_at.front(), seconds);
      summary["cpu_ratio_last_to_first"] = around(report_at.back(), cpu_seconds) / around(report_at.front(), cpu_seconds);
    }
    summary["cache_tokens_at_end"] = gen.cache().cached_tokens();
    const at::Tensor last_cpu = last.to(at::kCPU, at::kFloat);
    if (mode == "eager") eager_last = last_cpu;
    else if (eager_last.defined())  // same seed, same inputs: the graphs must give the eager stream
      summary["max_abs_diff_vs_eager_last_chunk"] = (last_cpu - eager_last).abs().max().item<double>();
    std::cout << summary.dump() << std::endl;
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "stream_bench: " << e.what() << std::endl;
  return 2;
}
