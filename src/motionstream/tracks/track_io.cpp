#include "motionstream/tracks/track_io.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "motionstream/io/npy.h"
#include "motionstream/io/torch_archive.h"

namespace ms {
namespace {

using nlohmann::json;

constexpr const char* kJsonFormatName = "motionstream-tracks";
constexpr int64_t kJsonVersion = 1;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

std::string number_text(double value) {
  std::string s = std::to_string(value);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

[[noreturn]] void fail(const std::string& path, const std::string& message) {
  throw std::runtime_error(path + ": " + message);
}

// validate() names the field but not the file; callers want both.
void validate_for(const TrackSet& tracks, const std::string& path) {
  try {
    tracks.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

void require_image_size(const std::string& path, int64_t width, int64_t height, const char* format) {
  if (width <= 0 || height <= 0)
    throw std::invalid_argument(path + ": " + format +
                                " tracks do not record the image they were drawn on; give its size (source_width, "
                                "source_height), got " +
                                std::to_string(width) + "x" + std::to_string(height));
}

// xy [T, N, 2]: names the first track and frame holding a NaN or infinite coordinate.
void check_finite(const at::Tensor& xy, const std::string& path) {
  const at::Tensor bad = at::isfinite(xy).logical_not().any(2).nonzero();  // [K, 2] = (frame, track)
  if (bad.size(0) == 0) return;
  fail(path, "track " + std::to_string(bad[0][1].item<int64_t>()) + ", frame " +
                 std::to_string(bad[0][0].item<int64_t>()) + ": coordinate is NaN or infinite");
}

void check_not_empty(int64_t frames, int64_t points, const std::string& path) {
  if (points == 0) fail(path, "holds no tracks");
  if (frames == 0) fail(path, "holds no frames");
}

// ---------------------------------------------------------------- npy

at::Tensor positions_from_npy(const io::NpyArray& array, const std::string& path) {
  if (array.dtype != "<f4" && array.dtype != "<f8")
    fail(path, "track positions must be float32 or float64, got dtype " + array.dtype);
  const auto& s = array.shape;
  const bool plain = s.size() == 3 && s[2] == 2;
  const bool batched = s.size() == 4 && s[3] == 2;
  if (!plain && !batched) fail(path, "track positions must be (T, N, 2) or (1, T, N, 2), got " + shape_text(s));
  if (batched && s[0] != 1)
    fail(path, "holds a batch of " + std::to_string(s[0]) + " track sets; only a batch of 1 can be read");
  at::Tensor xy = io::npy_to_tensor(array).to(at::kFloat);
  return batched ? xy[0] : xy;
}

at::Tensor visibility_from_npy(const io::NpyArray& array, const std::string& path, int64_t frames, int64_t points) {
  if (array.dtype != "|b1" && array.dtype != "|u1")
    fail(path, "visibility must be bool (or uint8), got dtype " + array.dtype);
  std::vector<int64_t> s = array.shape;
  if (s.size() >= 3 && s.front() == 1) s.erase(s.begin());  // the batch of 1
  if (s.size() == 3 && s.back() == 1) s.pop_back();         // CoTracker's trailing channel
  if (s != std::vector<int64_t>{frames, points})
    fail(path, "visibility shape " + shape_text(array.shape) + " does not fit the tracks' " + std::to_string(frames) +
                   " frames x " + std::to_string(points) +
                   " points (expected (T, N), (1, T, N), (T, N, 1) or (1, T, N, 1))");
  return io::npy_to_tensor(array).reshape({frames, points}).ne(0);
}

// ---------------------------------------------------------------- ATI

// The .npz "array": (N, T, 1, 3), or (T, N, 1, 3) when only its first dimension is 121, as ATI itself decides.
at::Tensor ati_array_as_time_major(const io::NpyArray& array, const std::string& path) {
  const auto& s = array.shape;
  if (s.size() != 4 || s[2] != 1 || s[3] != 3)
    fail(path, "ATI array must be (N, 121, 1, 3) = (x, y, visible), got " + shape_text(s));
  if (array.dtype == "|b1") fail(path, "ATI array must be numeric, got dtype |b1");
  at::Tensor values = io::npy_to_tensor(array).to(at::kFloat).squeeze(2);  // [A, B, 3]
  const bool time_major = s[0] == kAtiSourceFrames && s[1] != kAtiSourceFrames;
  return time_major ? values : values.transpose(0, 1).contiguous();  // [T, N, 3]
}

io::NpyArray ati_npz_array(const std::string& path) {
  const std::vector<uint8_t> npz = io::load_torch_saved_bytes(path);
  auto arrays = io::read_npz_bytes(npz, path + ":npz");
  const auto it = arrays.find("array");
  if (it == arrays.end()) {
    std::string keys;
    for (const auto& kv : arrays) keys += (keys.empty() ? "" : ", ") + kv.first;
    fail(path, "the saved .npz has no key 'array' (keys: " + (keys.empty() ? std::string("none") : keys) + ")");
  }
  return std::move(it->second);
}

// ---------------------------------------------------------------- JSON reading

// Walks a parsed document, every error naming the file and the field ("tracks[3].points[12]").
class JsonTrackReader {
 public:
  explicit JsonTrackReader(const std::string& path) : path_(path) {}

  TrackSet read(const json& doc) const {
    if (!doc.is_object()) fail("(top level)", "expected an object");
    check_header(doc);
    TrackSet tracks;
    tracks.fps = positive_number(member(doc, "fps"), "fps");
    tracks.width = positive_integer(member(doc, "width"), "width");
    tracks.height = positive_integer(member(doc, "height"), "height");
    const int64_t frames = positive_integer(member(doc, "frames"), "frames");
    const json& list = member(doc, "tracks");
    if (!list.is_array()) fail("tracks", "expected an array");
    if (list.empty()) ms::fail(path_, "holds no tracks");

    const auto points = static_cast<int64_t>(list.size());
    // Shapes first: "frames" is only trusted for the allocation once every track holds that many points.
    for (int64_t n = 0; n < points; ++n) points_of(list[n], n, frames);
    tracks.xy = at::empty({frames, points, 2}, at::kFloat);
    tracks.visible = at::empty({frames, points}, at::kBool);
    auto xy = tracks.xy.accessor<float, 3>();
    auto visible = tracks.visible.accessor<bool, 2>();
    for (int64_t n = 0; n < points; ++n) read_track(points_of(list[n], n, frames), n, xy, visible);
    return tracks;
  }

 private:
  [[noreturn]] void fail(const std::string& field, const std::string& message) const {
    ms::fail(path_, field + ": " + message);
  }

  const json& member(const json& object, const char* key) const {
    const auto it = object.find(key);
    if (it == object.end()) fail(key, "missing");
    return *it;
  }

  void check_header(const json& doc) const {
    const json& format = member(doc, "format");
    if (!format.is_string() || format.get<std::string>() != kJsonFormatName)
      fail("format", std::string("expected \"") + kJsonFormatName + "\", got " + format.dump());
    const json& version = member(doc, "version");
    if (!version.is_number_integer()) fail("version", "expected an integer, got " + version.dump());
    if (version.get<int64_t>() != kJsonVersion)
      fail("version", "version " + version.dump() + " is not supported (this reader knows version " +
                          std::to_string(kJsonVersion) + ")");
  }

  double positive_number(const json& v, const std::string& field) const {
    if (!v.is_number() || !(v.get<double>() > 0.0) || !std::isfinite(v.get<double>()))
      fail(field, "expected a positive number, got " + v.dump());
    return v.get<double>();
  }

  int64_t positive_integer(const json& v, const std::string& field) const {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) fail(field, "expected a positive integer, got " + v.dump());
    return v.get<int64_t>();
  }

  // The track's "points" array, once it is known to hold `frames` entries.
  const json& points_of(const json& track, int64_t n, int64_t frames) const {
    const std::string field = "tracks[" + std::to_string(n) + "]";
    if (!track.is_object()) fail(field, "expected an object {\"id\": ..., \"points\": [...]}");
    const auto id = track.find("id");
    if (id != track.end() && !id->is_number_integer() && !id->is_string())
      fail(field + ".id", "expected an integer or a string, got " + id->dump());
    const auto points = track.find("points");
    if (points == track.end()) fail(field + ".points", "missing");
    if (!points->is_array() || static_cast<int64_t>(points->size()) != frames)
      fail(field + ".points", "expected an array of " + std::to_string(frames) + " [x, y, visible] (\"frames\"), got " +
                                  (points->is_array() ? std::to_string(points->size()) + " entries" : points->dump()));
    return *points;
  }

  void read_track(const json& points, int64_t n, at::TensorAccessor<float, 3>& xy,
                  at::TensorAccessor<bool, 2>& visible) const {
    const std::string field = "tracks[" + std::to_string(n) + "].points[";
    for (int64_t t = 0; t < static_cast<int64_t>(points.size()); ++t)
      read_point(points[t], field + std::to_string(t) + "]", xy[t][n], visible[t][n]);
  }

  void read_point(const json& point, const std::string& field, at::TensorAccessor<float, 1> xy, bool& visible) const {
    if (!point.is_array() || point.size() != 3 || !point[0].is_number() || !point[1].is_number())
      fail(field, "expected [x, y, visible], got " + point.dump());
    for (int c = 0; c < 2; ++c) {
      const auto value = static_cast<float>(point[c].get<double>());
      if (!std::isfinite(value)) fail(field, "coordinate " + point[c].dump() + " is not a finite float32");
      xy[c] = value;
    }
    const json& flag = point[2];
    if (flag.is_boolean()) {
      visible = flag.get<bool>();
    } else if (flag.is_number() && (flag.get<double>() == 0.0 || flag.get<double>() == 1.0)) {
      visible = flag.get<double>() == 1.0;
    } else {
      fail(field, "visible must be 0, 1, true or false, got " + flag.dump());
    }
  }

  const std::string& path_;
};

// ---------------------------------------------------------------- JSON writing

// The shortest text that reads back as the same double; a float32 widened to double reads back bit-exact.
std::string exact_number(float value) { return json(static_cast<double>(value)).dump(); }

std::string track_json_line(const TrackSet& tracks, int64_t n) {
  auto xy = tracks.xy.accessor<float, 3>();
  auto visible = tracks.visible.accessor<bool, 2>();
  std::string line = "  {\"id\": " + std::to_string(n) + ", \"points\": [";
  for (int64_t t = 0; t < tracks.frames(); ++t) {
    line += (t ? ", [" : "[") + exact_number(xy[t][n][0]) + ", " + exact_number(xy[t][n][1]) + ", " +
            (visible[t][n] ? "1" : "0") + "]";
  }
  return line + "]}";
}

// ---------------------------------------------------------------- fitting

// Frames that fit in the source's duration at `fps`, the first on source frame 0.
int64_t frames_for_fps(const TrackSet& tracks, double fps) {
  constexpr double kMostFrames = 1e7;  // far beyond any video; keeps the cast below defined
  const double duration = static_cast<double>(tracks.frames() - 1) / tracks.fps;
  const double frames = std::floor(duration * fps + 1e-9) + 1;
  if (!(frames <= kMostFrames))
    throw std::invalid_argument("target fps " + number_text(fps) + " asks for more than 1e7 frames");
  return static_cast<int64_t>(frames);
}

int64_t target_frames(const TrackSet& tracks, const TrackTarget& target) {
  if (target.frames > 0) return target.frames;
  return target.fps > 0.0 ? frames_for_fps(tracks, target.fps) : 0;
}

bool takes_ati_pick(const TrackSet& tracks, const TrackTarget& target) {
  return tracks.frames() == kAtiSourceFrames && tracks.fps == kAtiSourceFps &&
         target_frames(tracks, target) == kAtiFrames && (target.fps <= 0.0 || target.fps == kAtiFps);
}

// The tracks at the given source frames, without interpolation.
TrackSet pick_frames(const TrackSet& tracks, const std::vector<int64_t>& source_frames, double fps) {
  const at::Tensor index = at::tensor(source_frames, at::kLong);
  TrackSet out = tracks;
  out.xy = tracks.xy.index_select(0, index).contiguous();
  out.visible = tracks.visible.index_select(0, index).contiguous();
  out.fps = fps;
  return out;
}

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

void check_matches_file(const TrackSet& tracks, const TrackReadOptions& options, const std::string& path) {
  if ((options.source_width > 0 && options.source_width != tracks.width) ||
      (options.source_height > 0 && options.source_height != tracks.height))
    throw std::invalid_argument(path + ": the file's tracks are for a " + std::to_string(tracks.width) + "x" +
                                std::to_string(tracks.height) + " image, the options say " +
                                std::to_string(options.source_width) + "x" + std::to_string(options.source_height));
  if (options.source_fps > 0.0 && options.source_fps != tracks.fps)
    throw std::invalid_argument(path + ": the file says fps " + number_text(tracks.fps) + ", the options say " +
                                number_text(options.source_fps));
}

}  // namespace

// ================================================================ public

TrackFormat track_format_of(const std::string& path) {
  const std::string ext = lower_extension(path);
  if (ext == ".json") return TrackFormat::Json;
  if (ext == ".npy") return TrackFormat::Npy;
  if (ext == ".pth" || ext == ".pt") return TrackFormat::Ati;
  throw std::invalid_argument(path + ": unknown track file extension '" + ext +
                              "' (expected .json, .npy, .pth or .pt)");
}

TrackSet read_tracks_json(const std::string& path) {
  const std::vector<uint8_t> bytes = io::read_file_bytes(path);
  json doc;
  try {
    doc = json::parse(bytes.begin(), bytes.end());
  } catch (const json::parse_error& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
  TrackSet tracks = JsonTrackReader(path).read(doc);
  validate_for(tracks, path);
  return tracks;
}

TrackSet read_tracks_npy(const std::string& path, const std::string& visibility_path, int64_t width, int64_t height,
                         double fps) {
  require_image_size(path, width, height, ".npy");
  TrackSet tracks;
  tracks.xy = positions_from_npy(io::read_npy(path), path);
  check_not_empty(tracks.frames(), tracks.points(), path);
  check_finite(tracks.xy, path);
  tracks.visible = visibility_path.empty() ? at::ones({tracks.frames(), tracks.points()}, at::kBool)
                                           : visibility_from_npy(io::read_npy(visibility_path), visibility_path,
                                                                 tracks.frames(), tracks.points());
  tracks.width = width;
  tracks.height = height;
  tracks.fps = fps > 0.0 ? fps : kNpyDefaultFps;
  validate_for(tracks, path);
  return tracks;
}

TrackSet read_tracks_ati(const std::string& path, int64_t width, int64_t height, double fps) {
  require_image_size(path, width, height, "ATI (.pth)");
  const at::Tensor values = ati_array_as_time_major(ati_npz_array(path), path) / kAtiQuantization;  // [T, N, 3]
  TrackSet tracks;
  tracks.xy = values.slice(2, 0, 2).contiguous();
  tracks.visible = values.select(2, 2).gt(0.5).contiguous();
  check_not_empty(tracks.frames(), tracks.points(), path);
  check_finite(tracks.xy, path);
  tracks.width = width;
  tracks.height = height;
  tracks.fps = fps > 0.0 ? fps : kAtiSourceFps;
  validate_for(tracks, path);
  return tracks;
}

TrackSet read_tracks(const std::string& path, const TrackReadOptions& options) {
  const TrackFormat format = track_format_of(path);
  if (format != TrackFormat::Npy && !options.visibility_path.empty())
    throw std::invalid_argument(path + ": a separate visibility file only goes with .npy tracks");
  TrackSet tracks;
  TrackTarget target = options.target;
  switch (format) {
    case TrackFormat::Json:
      tracks = read_tracks_json(path);
      check_matches_file(tracks, options, path);
      break;
    case TrackFormat::Npy:
      tracks = read_tracks_npy(path, options.visibility_path, options.source_width, options.source_height,
                               options.source_fps);
      break;
    case TrackFormat::Ati:
      tracks = read_tracks_ati(path, options.source_width, options.source_height, options.source_fps);
      if (options.ati_frame_pick && takes_ati_pick(tracks, target)) {
        tracks = ati_pick_frames(tracks);
        target.frames = 0, target.fps = 0.0;  // time is fitted; the image size may still be
      }
      break;
  }
  try {
    return fit_tracks(tracks, target);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

void write_tracks_json(const std::string& path, const TrackSet& tracks) {
  validate_for(tracks, path);
  const TrackSet cpu{tracks.xy.cpu().contiguous(), tracks.visible.cpu().contiguous(), tracks.fps, tracks.width,
                     tracks.height};
  std::string text = std::string("{\"format\": \"") + kJsonFormatName +
                     "\", \"version\": " + std::to_string(kJsonVersion) + ", \"fps\": " + json(cpu.fps).dump() +
                     ", \"width\": " + std::to_string(cpu.width) + ", \"height\": " + std::to_string(cpu.height) +
                     ", \"frames\": " + std::to_string(cpu.frames()) + ",\n \"tracks\": [\n";
  for (int64_t n = 0; n < cpu.points(); ++n) text += track_json_line(cpu, n) + (n + 1 < cpu.points() ? ",\n" : "\n");
  text += " ]}\n";
  io::write_file_atomically(path, text);
}

void write_tracks_npy(const std::string& tracks_path, const std::string& visibility_path, const TrackSet& tracks) {
  validate_for(tracks, tracks_path);
  io::write_npy(tracks_path, tracks.xy.unsqueeze(0));
  if (!visibility_path.empty()) io::write_npy(visibility_path, tracks.visible.unsqueeze(0));
}

TrackSet resample_tracks(const TrackSet& tracks, int64_t frames, double fps) {
  tracks.validate();
  if (frames < 1) throw std::invalid_argument("resample_tracks: frames must be >= 1, got " + std::to_string(frames));
  const int64_t source_frames = tracks.frames();
  const bool keep_duration = !(fps > 0.0);
  if (keep_duration)
    fps = frames > 1 && source_frames > 1 ? tracks.fps * (frames - 1) / (source_frames - 1) : tracks.fps;

  std::vector<int64_t> below(frames), above(frames);
  std::vector<double> weight(frames);
  for (int64_t i = 0; i < frames; ++i) {
    // The duration-keeping ratio is computed from integers so that matching frames land exactly on source frames.
    double s = keep_duration ? (frames > 1 ? static_cast<double>(i) * (source_frames - 1) / (frames - 1) : 0.0)
                             : static_cast<double>(i) * tracks.fps / fps;
    s = std::min(s, static_cast<double>(source_frames - 1));
    const double nearest = std::round(s);
    if (std::abs(s - nearest) < 1e-9) s = nearest;  // on a source frame: take it as it is
    below[i] = static_cast<int64_t>(std::floor(s));
    above[i] = std::min(below[i] + 1, source_frames - 1);
    weight[i] = s - static_cast<double>(below[i]);
  }
  const at::Tensor lo = at::tensor(below, at::kLong), hi = at::tensor(above, at::kLong);
  const at::Tensor w = at::tensor(weight, at::kDouble);
  const at::Tensor xy = tracks.xy.to(at::kDouble);
  const at::Tensor between = w.gt(0.0).unsqueeze(1);  // [F, 1]
  TrackSet out = tracks;
  out.xy = (xy.index_select(0, lo) * (1.0 - w).view({-1, 1, 1}) + xy.index_select(0, hi) * w.view({-1, 1, 1}))
               .to(at::kFloat)
               .contiguous();
  const at::Tensor vis_lo = tracks.visible.index_select(0, lo), vis_hi = tracks.visible.index_select(0, hi);
  out.visible = at::where(between, vis_lo.logical_and(vis_hi), vis_lo).contiguous();
  out.fps = fps;
  return out;
}

TrackSet scale_tracks(const TrackSet& tracks, int64_t width, int64_t height) {
  tracks.validate();
  if (width <= 0 || height <= 0)
    throw std::invalid_argument("scale_tracks: size must be positive, got " + std::to_string(width) + "x" +
                                std::to_string(height));
  TrackSet out = tracks;
  const at::Tensor factor = at::tensor({static_cast<double>(width) / static_cast<double>(tracks.width),
                                        static_cast<double>(height) / static_cast<double>(tracks.height)},
                                       at::kDouble);
  out.xy = (tracks.xy.to(at::kDouble) * factor).to(at::kFloat).contiguous();
  out.width = width;
  out.height = height;
  return out;
}

TrackSet ati_pick_frames(const TrackSet& tracks) {
  tracks.validate();
  if (tracks.frames() != kAtiSourceFrames)
    throw std::invalid_argument("ati_pick_frames: ATI's frame pick maps " + std::to_string(kAtiSourceFrames) +
                                " frames, got " + std::to_string(tracks.frames()));
  std::vector<int64_t> source(kAtiFrames);
  for (int64_t i = 0; i < kAtiFrames; ++i) source[i] = 3 * i / 2;
  return pick_frames(tracks, source, kAtiFps);
}

TrackSet fit_tracks(const TrackSet& tracks, const TrackTarget& target) {
  if ((target.width > 0) != (target.height > 0))
    throw std::invalid_argument("target size needs both width and height, got " + std::to_string(target.width) + "x" +
                                std::to_string(target.height));
  TrackSet out = tracks;
  const int64_t frames = target_frames(tracks, target);
  if (frames > 0) out = resample_tracks(out, frames, target.fps);
  if (target.width > 0) out = scale_tracks(out, target.width, target.height);
  return out;
}

}  // namespace ms
