// generate, tracks and eval: the motionstream commands that read and write images, videos and track files.
// Usage and examples: docs/USAGE.md.
#include "media_commands.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "media/evaluation.h"
#include "media/motion_transfer.h"
#include "media/validation_report.h"
#include "media/video_io.h"
#include "motionstream/diffusion/flow_schedule.h"
#include "motionstream/io/npy.h"
#include "motionstream/model/motion_model.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/model/vae/tiny_vae.h"
#include "motionstream/stream/streaming_generator.h"
#include "motionstream/tracks/camera.h"
#include "motionstream/tracks/track_generators.h"
#include "motionstream/tracks/track_io.h"
#include "motionstream/train/training_run.h"
#include "motionstream/train/world.h"
#include "motionstream/util/cli_args.h"
#include "motionstream/util/progress.h"

namespace fs = std::filesystem;
using namespace ms;
using namespace ms::media;

namespace {

// ---- Ctrl-C: the first one asks the generation loop to stop (the writers then close and the files play); a second
// one ends the process at once.
volatile std::sig_atomic_t g_stop = 0;

void on_interrupt(int) {
  g_stop = 1;
  std::signal(SIGINT, SIG_DFL);
}

// Runs a command body; every error becomes one line on stderr and exit code 2.
template <class Body>
int guarded(const char* name, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "motionstream %s: %s\n", name, e.what());
    return 2;
  }
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  const std::string l = lower(s);
  return l.size() >= suffix.size() && l.compare(l.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(item);
  return out;
}

double parse_number(const std::string& text, const std::string& option) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    while (used < text.size() && std::isspace(static_cast<unsigned char>(text[used]))) ++used;
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("option --" + option + ": '" + text + "' is not a finite number");
}

// "x,y;x,y;..." -> points
std::vector<Point2> parse_points(const std::string& text, const std::string& option) {
  std::vector<Point2> out;
  for (const auto& item : split(text, ';')) {
    if (item.find_first_not_of(" \t") == std::string::npos) continue;
    const auto xy = split(item, ',');
    if (xy.size() != 2) throw std::invalid_argument("option --" + option + ": '" + item + "' is not 'x,y'");
    out.push_back({parse_number(xy[0], option), parse_number(xy[1], option)});
  }
  if (out.empty()) throw std::invalid_argument("option --" + option + ": no point given (expected 'x,y;x,y;...')");
  return out;
}

// "x,y;x,y|x,y;..." -> one polyline per '|'-separated part
std::vector<Polyline> parse_polylines(const std::string& text, const std::string& option) {
  std::vector<Polyline> out;
  for (const auto& part : split(text, '|')) {
    Polyline p;
    p.vertices = parse_points(part, option);
    out.push_back(std::move(p));
  }
  if (out.empty()) throw std::invalid_argument("option --" + option + ": no path given");
  return out;
}

void require(const CliArgs& args, const std::string& key, const std::string& what) {
  if (!args.positional().empty())
    throw std::invalid_argument("unexpected argument '" + args.positional().front() + "' (options start with --)");
  if (!args.has(key)) throw std::invalid_argument("--" + key + " is required (" + what + ")");
}

// Any track file read_tracks reads. Formats that do not record the image size (.npy, .pth) take the given one.
TrackSet load_tracks(const std::string& path, const std::string& visibility_path, int64_t width, int64_t height) {
  TrackReadOptions options;
  options.visibility_path = visibility_path;
  if (track_format_of(path) != TrackFormat::Json) {
    options.source_width = width;
    options.source_height = height;
  }
  if (!fs::exists(path)) throw std::runtime_error(path + ": cannot read the track file (no such file)");
  TrackSet tracks;
  try {
    tracks = read_tracks(path, options);
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw std::runtime_error(what.find(path) == std::string::npos ? path + ": " + what : what);
  }
  if (tracks.points() == 0) throw std::runtime_error(path + ": holds no tracks (zero points)");
  if (tracks.frames() == 0) throw std::runtime_error(path + ": holds no frames");
  if (!at::isfinite(tracks.xy).all().item<bool>())
    throw std::runtime_error(path + ": holds NaN or infinite coordinates");
  return tracks;
}

void save_tracks(const std::string& path, const TrackSet& tracks) {
  if (ends_with(path, ".npy")) {
    const std::string vis = path.substr(0, path.size() - 4) + "_visibility.npy";
    write_tracks_npy(path, vis, tracks);
    std::fprintf(stderr, "wrote %s and %s\n", path.c_str(), vis.c_str());
    return;
  }
  write_tracks_json(path, tracks);
}

// Depth for camera tracks: .npy float [H, W] metres (a leading 1 x is accepted), or a 16-bit PNG whose values are
// multiplied by `png_scale` (metres per unit; 0.001 = millimetres). Resized (bilinear) to width x height.
at::Tensor read_depth(const std::string& path, double png_scale, int64_t width, int64_t height) {
  if (!fs::exists(path)) throw std::runtime_error(path + ": cannot read the depth map (no such file)");
  at::Tensor depth;
  if (ends_with(path, ".npy")) {
    depth = io::npy_to_tensor(io::read_npy(path)).to(at::kFloat);
    while (depth.dim() > 2 && depth.size(0) == 1) depth = depth.squeeze(0);
    if (depth.dim() != 2) throw std::runtime_error(path + ": a depth map must be [H, W]");
  } else {
    const cv::Mat m = cv::imread(path, cv::IMREAD_ANYDEPTH | cv::IMREAD_GRAYSCALE);
    if (m.empty()) throw std::runtime_error(path + ": not a readable depth image (expected a 16-bit PNG)");
    cv::Mat f;
    m.convertTo(f, CV_32F, png_scale);
    depth = at::from_blob(f.data, {f.rows, f.cols}, at::kFloat).clone();
  }
  if (!at::isfinite(depth).all().item<bool>()) throw std::runtime_error(path + ": the depth map holds NaN or inf");
  if (!(depth > 0).all().item<bool>())
    throw std::runtime_error(path + ": the depth map holds values <= 0 (depth must be positive metres)");
  if (depth.size(0) != height || depth.size(1) != width) {
    cv::Mat src(static_cast<int>(depth.size(0)), static_cast<int>(depth.size(1)), CV_32F, depth.data_ptr());
    cv::Mat dst;
    cv::resize(src, dst, cv::Size(static_cast<int>(width), static_cast<int>(height)), 0, 0, cv::INTER_LINEAR);
    depth = at::from_blob(dst.data, {dst.rows, dst.cols}, at::kFloat).clone();
  }
  return depth;
}

// Frame count, frame rate and image size of generated tracks: --frames, or --duration seconds at --fps (the last
// frame at exactly `duration`); the size from --image or --width/--height.
TrackCanvas canvas_from(const CliArgs& args, int64_t default_width, int64_t default_height) {
  TrackCanvas c;
  c.fps = args.number("fps", 16.0);
  if (!(c.fps > 0) || !std::isfinite(c.fps)) throw std::invalid_argument("option --fps must be positive");
  if (args.has("frames")) {
    c.frames = args.integer("frames", 81);
  } else {
    const double duration = args.number("duration", 5.0);
    if (!(duration >= 0) || !std::isfinite(duration)) throw std::invalid_argument("option --duration must be >= 0");
    c.frames = std::llround(duration * c.fps) + 1;
  }
  if (c.frames < 1) throw std::invalid_argument("option --frames must be >= 1");
  if (args.has("image")) {
    const auto image = read_image(args.str("image", ""));
    c.width = image.size(2);
    c.height = image.size(1);
  } else {
    c.width = args.integer("width", default_width);
    c.height = args.integer("height", default_height);
  }
  if (c.width <= 0 || c.height <= 0) throw std::invalid_argument("options --width/--height must be positive");
  return c;
}

std::vector<CameraMove> camera_moves(const std::string& text) {
  try {
    return parse_camera_moves(text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("option --move/--camera: ") + e.what());
  }
}

TrackSet camera_tracks_for(const CliArgs& args, const std::string& moves, const TrackCanvas& canvas) {
  const at::Tensor depth = args.has("depth")
                               ? read_depth(args.str("depth", ""), args.number("depth-scale", 0.001), canvas.width,
                                            canvas.height)
                               : default_ground_plane_depth(canvas.width, canvas.height);
  const int64_t cols = args.integer("grid", 16);
  const int64_t rows = args.integer("rows", std::max<int64_t>(1, std::llround(cols * static_cast<double>(canvas.height) /
                                                                              canvas.width)));
  if (cols < 1 || rows < 1) throw std::invalid_argument("options --grid/--rows must be >= 1");
  CameraOptions options;
  options.fov_deg = args.number("fov", 60.0);
  options.occlusion = !args.has("no-occlusion");
  return camera_tracks(depth, grid_query_points(canvas.width, canvas.height, cols, rows), camera_moves(moves),
                       canvas.frames, canvas.fps, options);
}

// Several track sources made into one set on a common canvas (time first, then size).
TrackSet combine(const std::vector<TrackSet>& parts, const TrackCanvas& canvas) {
  if (parts.size() == 1) return parts.front();
  TrackSet all;
  for (const auto& p : parts) {
    TrackSet fitted = fit_tracks(p, TrackTarget{canvas.frames, canvas.fps, canvas.width, canvas.height});
    all = all.xy.defined() ? concat_points(all, fitted) : fitted;
  }
  return all;
}

nlohmann::json track_summary(const TrackSet& t) {
  return {{"frames", t.frames()}, {"points", t.points()}, {"fps", t.fps}, {"width", t.width}, {"height", t.height},
          {"visible_last_frame", t.frames() ? t.visible[t.frames() - 1].sum().item<int64_t>() : 0}};
}

// ================================ generate ================================

int run_generate(int argc, char** argv) {
  const CliArgs args(argc, argv, 2,
                     {"model", "image", "prompt", "tracks", "visibility", "drag", "drag-k", "drag-spacing",
                      "drag-release", "pins", "camera", "depth", "depth-scale", "grid", "rows", "fov", "frames", "fps",
                      "seed", "steps", "shift", "chunk", "sink", "window", "out", "png-dir", "side-by-side", "width",
                      "height", "fit", "device", "save-tracks"},
                     {"raw", "no-occlusion"});
  require(args, "model", "a model folder");
  require(args, "image", "the first frame");
  const bool raw = args.has("raw");
  if (!args.has("out") && !args.has("png-dir") && !args.has("side-by-side") && !raw)
    throw std::invalid_argument("nothing to write: give --out video.mp4, --png-dir DIR, --side-by-side FILE or --raw");
  if (raw && isatty(fileno(stdout)))
    throw std::invalid_argument("--raw writes binary frames to stdout: pipe it (e.g. | ffplay -f rawvideo ...)");

  const int64_t W = args.integer("width", 128), H = args.integer("height", 128);
  if (W <= 0 || H <= 0 || W % 16 || H % 16)
    throw std::invalid_argument("--width/--height must be positive multiples of 16 (the latent grid is 8x smaller "
                                "and patched by 2), got " + std::to_string(W) + "x" + std::to_string(H));
  const at::Device device(args.str("device", "cpu"));
  if (!fs::exists(fs::path(args.str("model", "")) / "model.json"))
    throw std::runtime_error(args.str("model", "") + ": not a model folder (no model.json)");

  // The first frame, fitted to the model's size; tracks follow the same mapping.
  const std::string image_path = args.str("image", "");
  const at::Tensor source = read_image(image_path);
  const int64_t SW = source.size(2), SH = source.size(1);
  const FittedImage fitted = fit_image(source, W, H, parse_fit_mode(args.str("fit", "crop")));

  // Tracks, in pixels of the source image.
  std::vector<TrackSet> parts;
  std::optional<TrackSet> file_tracks;
  if (args.has("tracks")) {
    file_tracks = load_tracks(args.str("tracks", ""), args.str("visibility", ""), SW, SH);
    parts.push_back(*file_tracks);
  }
  TrackCanvas canvas;
  canvas.fps = args.number("fps", file_tracks ? file_tracks->fps : 16.0);
  canvas.frames = args.integer("frames", file_tracks ? file_tracks->frames() : 81);
  canvas.width = SW;
  canvas.height = SH;
  if (!(canvas.fps > 0) || !std::isfinite(canvas.fps)) throw std::invalid_argument("option --fps must be positive");
  if (canvas.frames < 1) throw std::invalid_argument("option --frames must be >= 1");
  if (file_tracks && std::abs(file_tracks->fps - canvas.fps) > 1e-9) {
    // Keep the file's timing: its duration played at the output frame rate.
    const double duration = (file_tracks->frames() - 1) / file_tracks->fps;
    parts.front() = resample_tracks(*file_tracks, std::llround(duration * canvas.fps) + 1, canvas.fps);
  }
  if (args.has("drag")) {
    GridDrag drag;
    drag.path.vertices = parse_points(args.str("drag", ""), "drag");
    drag.k = args.integer("drag-k", 3);
    drag.spacing = args.number("drag-spacing", 8.0 / fitted.mapping.scale_x);  // 8 model pixels
    drag.release_s = args.number("drag-release", -1.0);
    parts.push_back(grid_drag(drag, canvas));
  }
  if (args.has("pins")) parts.push_back(pins(parse_points(args.str("pins", ""), "pins"), canvas));
  std::string prompt = args.str("prompt", "");
  if (args.has("camera")) {
    parts.push_back(camera_tracks_for(args, args.str("camera", ""), canvas));
    prompt += (prompt.empty() ? "" : ", ") + std::string(kCameraPromptSuffix);
  }
  std::optional<TrackSet> tracks;
  if (!parts.empty()) {
    tracks = fitted.mapping.tracks_to_model(combine(parts, canvas));
    tracks->validate();
    if (args.has("save-tracks")) save_tracks(args.str("save-tracks", ""), *tracks);
  } else {
    std::fprintf(stderr, "note: no --tracks/--drag/--pins/--camera: generating without motion control\n");
  }

  // Model, codec, prompt and first-frame latent.
  torch::NoGradGuard no_grad;
  LoadedMotionModel loaded = load_motion_model(args.str("model", ""), device);
  LatentCodec codec(loaded.codec_folder, device);
  const auto& dit_config = loaded.model->dit->config();
  if (codec.channels() != dit_config.latent_channels)
    throw std::runtime_error(loaded.codec_folder + ": the codec has " + std::to_string(codec.channels()) +
                             " latent channels, the model " + std::to_string(dit_config.latent_channels));
  const at::Tensor text = loaded.model->prompt_context({prompt});                                   // [1, Lt, D]
  const at::Tensor image_latent = codec.encode(fitted.image.view({1, 1, 3, H, W}).to(device)).select(2, 0);  // [1, C, h, w]

  StreamConfig config;
  config.layout.chunk_frames = args.integer("chunk", 3);
  config.layout.sink_chunks = args.integer("sink", 1);
  config.layout.window_chunks = args.integer("window", 1);
  config.layout.validate();
  const int64_t steps = args.integer("steps", 3);
  if (steps < 1) throw std::invalid_argument("option --steps must be >= 1");
  // The timestep shift the model was trained with, when its model.json records one.
  const double model_shift = loaded.description.contains("shift") && loaded.description["shift"].is_number()
                                 ? loaded.description["shift"].get<double>()
                                 : 5.0;
  config.timesteps = FlowSchedule{args.number("shift", model_shift)}.denoising_steps(steps);
  config.seed = static_cast<uint64_t>(args.integer("seed", 0));
  StreamingGenerator generator(loaded.model->dit, config, text, image_latent, H / 8, W / 8);
  if (dit_config.image_branch())  // Wan I2V: the first frame through CLIP as well
    generator.set_image_tokens(loaded.model->image_tokens(fitted.image.view({1, 3, H, W}).to(device)));
  if (dit_config.track_warp_hint) generator.set_warp_hint_source(codec, fitted.image.view({3, H, W}));
  if (tracks) generator.set_tracks(*tracks);
  StreamingDecoder decoder(codec.vae());

  // Outputs.
  std::unique_ptr<VideoWriter> out, side;
  if (args.has("out")) out = std::make_unique<VideoWriter>(args.str("out", ""), W, H, canvas.fps);
  if (args.has("side-by-side")) side = std::make_unique<VideoWriter>(args.str("side-by-side", ""), 2 * W, H, canvas.fps);
  const std::string png_dir = args.str("png-dir", "");
  if (raw) std::signal(SIGPIPE, SIG_IGN);  // a closed pipe ends the loop through fwrite's error instead

  g_stop = 0;
  auto previous = std::signal(SIGINT, on_interrupt);
  const int64_t total = canvas.frames;
  int64_t done = 0;
  bool pipe_closed = false;
  Progress progress("generate", total);
  TrackDrawStyle style;
  style.radius = std::max(2, static_cast<int>(W / 128));
  auto emit = [&](const at::Tensor& frame_device) {
    const at::Tensor frame = frame_device.to(at::kCPU, at::kFloat).contiguous();  // [3, H, W]
    if (out) out->write(frame);
    if (side) side->write(at::cat({frame, tracks ? draw_tracks(frame, *tracks, done, style) : frame}, 2));
    if (!png_dir.empty()) write_png_frames(png_dir, frame.unsqueeze(0), done);
    if (raw) {
      const std::string bytes = frame_to_rgb24(frame);
      if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size() || std::fflush(stdout) != 0)
        pipe_closed = true;
    }
    ++done;
  };
  try {
    while (done < total && !g_stop && !pipe_closed) {
      const at::Tensor chunk = generator.next_chunk();  // [1, C, chunk_frames, h, w]
      for (int64_t f = 0; f < chunk.size(2) && done < total; ++f) {
        const at::Tensor frames = decoder.push(codec.denormalize_frame(chunk.select(2, f)))[0];  // [n, 3, H, W]
        for (int64_t i = 0; i < frames.size(0) && done < total && !pipe_closed; ++i) emit(frames[i]);
      }
      char figures[64];
      std::snprintf(figures, sizeof(figures), "%.2f frames/s", progress.steps_per_second());
      progress.update(done, figures);
    }
  } catch (...) {
    std::signal(SIGINT, previous);
    throw;  // the writers' destructors still close the files
  }
  std::signal(SIGINT, previous);
  char figures[64];
  std::snprintf(figures, sizeof(figures), "%.2f frames/s", progress.steps_per_second());
  progress.finish(figures);
  if (out) out->close();
  if (side) side->close();

  nlohmann::json summary = {{"frames", done},
                            {"requested_frames", total},
                            {"fps", canvas.fps},
                            {"generation_fps", progress.steps_per_second()},
                            {"width", W},
                            {"height", H},
                            {"chunks", generator.chunks_done()},
                            {"track_points", tracks ? tracks->points() : 0},
                            {"interrupted", static_cast<bool>(g_stop)}};
  if (out) {
    summary["out"] = out->path();
    summary["codec"] = out->codec();
  }
  if (side) summary["side_by_side"] = side->path();
  if (pipe_closed) summary["pipe_closed"] = true;
  if (g_stop)
    std::fprintf(stderr, "interrupted: %lld of %lld frames written; the files are closed and playable\n",
                 static_cast<long long>(done), static_cast<long long>(total));
  (raw ? std::cerr : std::cout) << summary.dump() << std::endl;
  return g_stop ? 130 : 0;
}

// ================================ tracks ================================

int tracks_draw(int argc, char** argv) {
  const CliArgs args(argc, argv, 3, {"paths", "path", "duration", "fps", "frames", "image", "width", "height", "out"});
  require(args, "out", "the track file to write");
  if (!args.has("paths") && !args.has("path")) throw std::invalid_argument("--paths \"x,y;x,y|x,y;...\" is required");
  const TrackCanvas canvas = canvas_from(args, 832, 480);
  const TrackSet tracks = polyline_tracks(parse_polylines(args.str("paths", args.str("path", "")), "paths"), canvas);
  save_tracks(args.str("out", ""), tracks);
  std::cout << track_summary(tracks).dump() << std::endl;
  return 0;
}

int tracks_grid(int argc, char** argv) {
  const CliArgs args(argc, argv, 3,
                     {"path", "k", "spacing", "release", "duration", "fps", "frames", "image", "width", "height", "out"});
  require(args, "out", "the track file to write");
  require(args, "path", "the drag path \"x,y;x,y;...\" of the grid centre");
  const TrackCanvas canvas = canvas_from(args, 832, 480);
  GridDrag drag;
  drag.path.vertices = parse_points(args.str("path", ""), "path");
  drag.k = args.integer("k", 3);
  drag.spacing = args.number("spacing", 8.0);
  drag.release_s = args.number("release", -1.0);
  const TrackSet tracks = grid_drag(drag, canvas);
  save_tracks(args.str("out", ""), tracks);
  std::cout << track_summary(tracks).dump() << std::endl;
  return 0;
}

int tracks_pins(int argc, char** argv) {
  const CliArgs args(argc, argv, 3, {"points", "duration", "fps", "frames", "image", "width", "height", "out"});
  require(args, "out", "the track file to write");
  require(args, "points", "the pinned points \"x,y;x,y;...\"");
  const TrackCanvas canvas = canvas_from(args, 832, 480);
  const TrackSet tracks = pins(parse_points(args.str("points", ""), "points"), canvas);
  save_tracks(args.str("out", ""), tracks);
  std::cout << track_summary(tracks).dump() << std::endl;
  return 0;
}

int tracks_camera(int argc, char** argv) {
  const CliArgs args(argc, argv, 3,
                     {"move", "image", "width", "height", "depth", "depth-scale", "grid", "rows", "fov", "duration",
                      "fps", "frames", "out"},
                     {"no-occlusion"});
  require(args, "out", "the track file to write");
  require(args, "move", "camera moves, e.g. \"dolly:0.5,pan:10\"");
  const TrackCanvas canvas = canvas_from(args, 832, 480);
  const TrackSet tracks = camera_tracks_for(args, args.str("move", ""), canvas);
  save_tracks(args.str("out", ""), tracks);
  nlohmann::json j = track_summary(tracks);
  j["prompt_suffix"] = kCameraPromptSuffix;
  std::cout << j.dump() << std::endl;
  return 0;
}

int tracks_show(int argc, char** argv) {
  const CliArgs args(argc, argv, 3,
                     {"tracks", "visibility", "image", "video", "out", "fps", "trail", "radius", "max-frames"});
  require(args, "tracks", "the track file to draw");
  require(args, "out", "an .mp4 (every frame) or .png (the whole paths on the first frame)");
  if (args.has("image") == args.has("video")) throw std::invalid_argument("give exactly one of --image or --video");
  const std::string out_path = args.str("out", "");
  const bool png = ends_with(out_path, ".png") || ends_with(out_path, ".jpg") || ends_with(out_path, ".jpeg");
  if (!png && !ends_with(out_path, ".mp4")) throw std::invalid_argument(out_path + ": --out must end in .mp4 or .png");

  at::Tensor frames;  // [T, 3, H, W]; one frame for an image
  double fps = 0;
  if (args.has("image")) {
    frames = read_image(args.str("image", "")).unsqueeze(0);
  } else {
    Video v = read_video(args.str("video", ""), args.integer("max-frames", 0));
    frames = v.frames;
    fps = v.fps;
  }
  const TrackSet tracks =
      load_tracks(args.str("tracks", ""), args.str("visibility", ""), frames.size(3), frames.size(2));
  fps = args.number("fps", args.has("image") ? tracks.fps : fps);
  TrackDrawStyle style;
  style.trail = args.integer("trail", 12);
  style.radius = static_cast<int>(args.integer("radius", std::max<int64_t>(2, frames.size(3) / 160)));
  style.thickness = std::max(1, style.radius / 2);
  if (png) {
    style.all_frames = true;
    write_image(out_path, draw_tracks(frames[0], tracks, 0, style));
  } else {
    const int64_t T = args.has("image") ? tracks.frames() : frames.size(0);
    VideoWriter writer(out_path, frames.size(3), frames.size(2), fps);
    for (int64_t t = 0; t < T; ++t)
      writer.write(draw_tracks(frames[std::min<int64_t>(t, frames.size(0) - 1)], tracks, t, style));
    writer.close();
  }
  nlohmann::json j = track_summary(tracks);
  j["out"] = out_path;
  std::cout << j.dump() << std::endl;
  return 0;
}

int tracks_transfer(int argc, char** argv) {
  const CliArgs args(argc, argv, 3,
                     {"video", "image", "grid", "rows", "max-frames", "fb-threshold", "window", "levels", "out"});
  require(args, "video", "the source video whose motion is taken");
  require(args, "out", "the track file to write");
  const Video video = read_video(args.str("video", ""), args.integer("max-frames", 0));
  const int64_t W = video.frames.size(3), H = video.frames.size(2);
  const int64_t cols = args.integer("grid", 16);
  const int64_t rows =
      args.integer("rows", std::max<int64_t>(1, std::llround(cols * static_cast<double>(H) / static_cast<double>(W))));
  if (cols < 1 || rows < 1) throw std::invalid_argument("options --grid/--rows must be >= 1");
  LkOptions options;
  options.fb_threshold = args.number("fb-threshold", options.fb_threshold);
  options.window = static_cast<int>(args.integer("window", options.window));
  options.levels = static_cast<int>(args.integer("levels", options.levels));
  TrackSet tracks = track_grid(video.frames, cols, rows, video.fps, options);
  if (args.has("image")) {
    const auto image = read_image(args.str("image", ""));
    tracks = reanchor_tracks(tracks, image.size(2), image.size(1));
  }
  save_tracks(args.str("out", ""), tracks);
  nlohmann::json j = track_summary(tracks);
  j["source"] = args.str("video", "");
  std::cout << j.dump() << std::endl;
  return 0;
}

// ================================ eval ================================

int run_eval(int argc, char** argv) {
  const CliArgs args(argc, argv, 2,
                     {"video", "tracks", "visibility", "reference", "out", "max-frames", "fb-threshold", "window",
                      "levels"});
  require(args, "video", "the generated video");
  require(args, "tracks", "the tracks it was generated from");
  const Video video = read_video(args.str("video", ""), args.integer("max-frames", 0));
  const TrackSet tracks =
      load_tracks(args.str("tracks", ""), args.str("visibility", ""), video.frames.size(3), video.frames.size(2));
  at::Tensor reference;
  if (args.has("reference")) reference = read_video(args.str("reference", ""), args.integer("max-frames", 0)).frames;
  LkOptions options;
  options.fb_threshold = args.number("fb-threshold", options.fb_threshold);
  options.window = static_cast<int>(args.integer("window", options.window));
  options.levels = static_cast<int>(args.integer("levels", options.levels));
  const nlohmann::json j = to_json(evaluate_video(video.frames, tracks, reference, options));
  if (args.has("out")) {
    std::ofstream file(args.str("out", ""));
    if (!(file << j.dump(2) << "\n")) throw std::runtime_error(args.str("out", "") + ": cannot write the report");
  }
  std::cout << j.dump() << std::endl;
  return 0;
}

// motionstream world --out DIR [--count N] [--first-seed S | --validation] [--width --height --frames] [--photos P]
// Writes clip-NNNN.mp4 (the clip), clip-NNNN-tracks.mp4 (tracks drawn over it), clip-NNNN.json (tracks) and
// captions.jsonl, and reports clips per second of rendering.
int run_world(int argc, char** argv) {
  CliArgs args(argc, argv, 2, {"out", "count", "first-seed", "width", "height", "frames", "photos"}, {"validation"});
  if (!args.has("out")) throw std::invalid_argument("--out DIR is required");
  const fs::path out(args.str("out", ""));
  fs::create_directories(out);
  const world::WorldSpec spec = world_spec(args.integer("width", 128), args.integer("height", 128),
                                           args.integer("frames", 49));
  spec.validate();
  const int64_t count = args.integer("count", 8);
  const auto photos = open_photo_bank(args.str("photos", ""));
  std::vector<uint64_t> seeds = args.has("validation") ? world::validation_seeds(count) : std::vector<uint64_t>{};
  for (int64_t i = 0; !args.has("validation") && i < count; ++i)
    seeds.push_back(static_cast<uint64_t>(args.integer("first-seed", 0) + i));
  std::ofstream captions(out / "captions.jsonl");
  Progress progress("world", count);
  double render_seconds = 0;
  for (size_t i = 0; i < seeds.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const world::Clip clip = world::render_clip(spec, seeds[i], photos.get());
    render_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char name[32];
    std::snprintf(name, sizeof name, "clip-%04zu", i);
    VideoWriter video((out / (std::string(name) + ".mp4")).string(), spec.width, spec.height, spec.fps);
    VideoWriter overlay((out / (std::string(name) + "-tracks.mp4")).string(), spec.width, spec.height, spec.fps);
    for (int64_t t = 0; t < clip.video.size(0); ++t) {
      video.write(clip.video[t]);
      overlay.write(draw_tracks(clip.video[t], clip.tracks, t));
    }
    write_tracks_json((out / (std::string(name) + ".json")).string(), clip.tracks);
    captions << nlohmann::json{{"clip", name}, {"seed", seeds[i]}, {"caption", clip.caption}}.dump() << "\n";
    progress.update(static_cast<int64_t>(i + 1));
  }
  progress.finish();
  std::cout << nlohmann::json{{"clips", seeds.size()}, {"out", out.string()}, {"width", spec.width},
                              {"height", spec.height}, {"frames", spec.frames},
                              {"render_clips_per_second", static_cast<double>(seeds.size()) / render_seconds}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace

int world_command(int argc, char** argv) {
  return guarded("world", [&] { return run_world(argc, argv); });
}

int run_evaluate(int argc, char** argv) {
  const CliArgs args(argc, argv, 2,
                     {"method", "model", "clips", "width", "height", "frames", "tracks", "steps", "guidance",
                      "text-weight", "motion-weight", "chunk", "sink", "window", "seed", "videos", "out",
                      "hint-start"});
  ValidationOptions o;
  o.method = args.str("method", "still");
  o.model_dir = args.str("model", "");
  o.clips = args.integer("clips", 8);
  o.width = args.integer("width", 128);
  o.height = args.integer("height", 128);
  o.frames = args.integer("frames", 17);
  o.tracks = args.integer("tracks", 32);
  o.steps = args.integer("steps", 0);
  o.guidance.mode = parse_guidance_mode(args.str("guidance", "joint"));
  o.guidance.text_weight = args.number("text-weight", 3.0);
  o.guidance.motion_weight = args.number("motion-weight", 1.5);
  o.layout.chunk_frames = args.integer("chunk", 3);
  o.layout.sink_chunks = args.integer("sink", 1);
  o.layout.window_chunks = args.integer("window", 1);
  o.layout.validate();
  o.seed = static_cast<uint64_t>(args.integer("seed", 0));
  o.videos_dir = args.str("videos", "");
  o.hint_start = args.number("hint-start", 1000);
  const nlohmann::json report = validation_report(o);
  if (args.has("out")) std::ofstream(args.str("out", "")) << report.dump(2) << "\n";
  std::cout << report["mean"].dump() << std::endl;
  return 0;
}

int evaluate_command(int argc, char** argv) {
  return guarded("evaluate", [&] { return run_evaluate(argc, argv); });
}

int generate_command(int argc, char** argv) {
  return guarded("generate", [&] { return run_generate(argc, argv); });
}

int tracks_command(int argc, char** argv) {
  return guarded("tracks", [&] {
    const std::string sub = argc > 2 ? argv[2] : "";
    if (sub == "draw") return tracks_draw(argc, argv);
    if (sub == "grid") return tracks_grid(argc, argv);
    if (sub == "pins") return tracks_pins(argc, argv);
    if (sub == "camera") return tracks_camera(argc, argv);
    if (sub == "show") return tracks_show(argc, argv);
    if (sub == "transfer") return tracks_transfer(argc, argv);
    throw std::invalid_argument("usage: motionstream tracks draw|grid|pins|camera|show|transfer [options] "
                                "(see docs/USAGE.md)" +
                                (sub.empty() ? std::string() : "; unknown '" + sub + "'"));
  });
}

int eval_command(int argc, char** argv) {
  return guarded("eval", [&] { return run_eval(argc, argv); });
}
