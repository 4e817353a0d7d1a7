#include "serve/session.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "motionstream/tracks/track_io.h"
#include "serve/jpeg.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ms::serve {

namespace {

json error_message(const std::string& message) { return {{"type", "error"}, {"message", message}}; }

// Protocol errors: the message names the offending message type and field.
struct Refused : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

const json& field(const json& m, const std::string& type, const char* name) {
  if (!m.contains(name)) throw Refused(type + ": missing field '" + name + "'");
  return m[name];
}
double number(const json& m, const std::string& type, const char* name) {
  const json& v = field(m, type, name);
  if (!v.is_number()) throw Refused(type + ": field '" + name + "' must be a number, got " + v.dump());
  const double x = v.get<double>();
  if (!std::isfinite(x)) throw Refused(type + ": field '" + name + "' must be finite");
  return x;
}
int64_t integer(const json& m, const std::string& type, const char* name, std::optional<int64_t> fallback = {}) {
  if (fallback && !m.contains(name)) return *fallback;
  const json& v = field(m, type, name);
  if (!v.is_number_integer()) throw Refused(type + ": field '" + name + "' must be an integer, got " + v.dump());
  return v.get<int64_t>();
}

std::string read_whole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A file in the temporary folder, removed when this goes out of scope.
struct TempFile {
  explicit TempFile(const std::string& name) : path(fs::temp_directory_path() / name) {}
  ~TempFile() {
    std::error_code ignored;
    fs::remove(path, ignored);
  }
  fs::path path;
};

bool looks_like_image(const std::string& b) {
  const bool png = b.size() >= 8 && b.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
  const bool jpeg = b.size() >= 3 && static_cast<unsigned char>(b[0]) == 0xFF &&
                    static_cast<unsigned char>(b[1]) == 0xD8 && static_cast<unsigned char>(b[2]) == 0xFF;
  return png || jpeg;
}

}  // namespace

json SessionLimits::to_json() const {
  return {{"max_upload_bytes", max_upload_bytes},
          {"max_messages_per_second", max_messages_per_second},
          {"max_image_side", max_image_side},
          {"record_frames", record_frames},
          {"max_sessions", max_sessions}};
}

Session::Session(std::string id, std::shared_ptr<const LiveModel> model, SessionLimits limits)
    : id_(std::move(id)),
      model_(std::move(model)),
      limits_(limits),
      controls_(model_->width(), model_->height(), model_->fps()),
      last_message_(Clock::now()) {}

json Session::hello() const {
  return {{"type", "hello"}, {"session", id_}, {"model", model_->describe()}, {"limits", limits_.to_json()}};
}

Clock::time_point Session::last_message() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_message_;
}

bool Session::streaming() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_ == State::kRunning;
}

bool Session::over_rate(Clock::time_point now) {
  last_message_ = now;
  if (now - rate_window_start_ >= std::chrono::seconds(1)) {
    rate_window_start_ = now;
    rate_count_ = 0;
  }
  return ++rate_count_ > limits_.max_messages_per_second;
}

std::vector<json> Session::on_text(const std::string& text, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (over_rate(now))
    return rate_count_ == limits_.max_messages_per_second + 1
               ? Replies{error_message("more than " + std::to_string(limits_.max_messages_per_second) +
                                       " messages in a second: the rest of this second is dropped")}
               : Replies{};
  json message;
  try {
    message = json::parse(text);
  } catch (const json::parse_error&) {
    return {error_message("message is not JSON: " + text.substr(0, 80))};
  }
  if (!message.is_object() || !message.contains("type") || !message["type"].is_string())
    return {error_message("message must be a JSON object with a string 'type', got " + text.substr(0, 80))};
  try {
    return handle(message);
  } catch (const std::exception& e) {  // the messages name the message type or field at fault
    return {error_message(e.what())};
  }
}

std::vector<json> Session::on_binary(const std::string& bytes, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (over_rate(now)) return {};
  try {
    return upload(bytes);
  } catch (const std::exception& e) {
    return {error_message(e.what())};
  }
}

Point2 Session::to_model(const json& m, const char* what) const {
  const std::string type = m["type"].get<std::string>();
  const double x = number(m, type, "x"), y = number(m, type, "y");
  if (x < 0 || y < 0 || x >= mapping_->source_width || y >= mapping_->source_height)
    throw Refused(std::string(what) + ": (" + std::to_string(x) + ", " + std::to_string(y) + ") is outside the " +
                  std::to_string(mapping_->source_width) + "x" + std::to_string(mapping_->source_height) + " image");
  return {mapping_->to_model_x(x), mapping_->to_model_y(y)};
}

json Session::state_message() const {
  static const char* names[] = {"idle", "running", "paused"};
  return {{"type", "state"}, {"state", names[static_cast<int>(state_)]}, {"frame", frames_generated_}};
}

void Session::begin_stream() {
  ++epoch_;
  source_stale_ = true;
  frames_generated_ = 0;
  waiting_.clear();
  recorded_.clear();
  recorded_tracks_.clear();
  fps_ = 0.0;
  last_chunk_end_ = {};
  state_ = State::kRunning;
}

std::vector<json> Session::handle(const json& m) {
  const std::string type = m["type"].get<std::string>();
  auto need_image = [&] {
    if (!image_.defined()) throw Refused(type + ": upload an image first");
  };
  if (type == "prompt") {
    const json& text = field(m, type, "text");
    if (!text.is_string()) throw Refused("prompt: field 'text' must be a string");
    if (text.get<std::string>().size() > 2000) throw Refused("prompt: text is longer than 2000 bytes");
    prompt_ = text.get<std::string>();
    prompt_stale_ = true;
    return {};
  }
  if (type == "start" || type == "restart") {
    need_image();
    begin_stream();
    return {state_message()};
  }
  if (type == "stop") {
    ++epoch_;  // a chunk in flight is not sent
    waiting_.clear();
    state_ = State::kIdle;
    return {state_message()};
  }
  if (type == "pause" || type == "resume") {
    if (state_ == State::kIdle) throw Refused(type + ": the stream is not running");
    state_ = type == "pause" ? State::kPaused : State::kRunning;
    return {state_message()};
  }
  if (type == "clear") {
    controls_.clear();
    return {};
  }
  if (type == "drag") {
    need_image();
    const json& phase = field(m, type, "phase");
    const int64_t frame = integer(m, type, "frame");
    if (phase == "down") {
      const int64_t grid = integer(m, type, "grid", 3);
      const double spacing = m.contains("spacing") ? number(m, type, "spacing") : 8.0;
      controls_.drag_down(frame, to_model(m, "drag"), grid, spacing * mapping_->scale_x);
    } else if (phase == "move" || phase == "up") {
      // The cursor may leave the image while a drag is held: no range check, the points just go out of view.
      const Point2 p{mapping_->to_model_x(number(m, type, "x")), mapping_->to_model_y(number(m, type, "y"))};
      phase == "move" ? controls_.drag_move(frame, p) : controls_.drag_up(frame, p);
    } else {
      throw Refused("drag: field 'phase' must be \"down\", \"move\" or \"up\", got " + phase.dump());
    }
    return {};
  }
  if (type == "pin") {
    need_image();
    controls_.pin(integer(m, type, "frame"), to_model(m, "pin"));
    return {};
  }
  if (type == "path") {
    need_image();
    const json& points = field(m, type, "points");
    if (!points.is_array() || points.empty()) throw Refused("path: field 'points' must be a non-empty array of [x, y]");
    std::vector<Point2> vertices;
    for (const json& p : points) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_number() || !p[1].is_number())
        throw Refused("path: every point must be [x, y] numbers, got " + p.dump());
      vertices.push_back(to_model({{"type", "path"}, {"x", p[0]}, {"y", p[1]}}, "path point"));
    }
    controls_.path(integer(m, type, "frame"), std::move(vertices), integer(m, type, "frames", 48));
    return {};
  }
  throw Refused("unknown message type '" + type + "'");
}

std::vector<json> Session::upload(const std::string& bytes) {
  if (bytes.size() > limits_.max_upload_bytes)
    throw Refused("upload of " + std::to_string(bytes.size()) + " bytes is over the limit of " +
                  std::to_string(limits_.max_upload_bytes) + " bytes");
  if (!looks_like_image(bytes)) throw Refused("upload is not a PNG or JPEG image");
  const at::Tensor decoded = media::decode_image(bytes, "upload");  // [3, h, w]
  if (decoded.size(1) > limits_.max_image_side || decoded.size(2) > limits_.max_image_side)
    throw Refused("upload is " + std::to_string(decoded.size(2)) + "x" + std::to_string(decoded.size(1)) +
                  ", larger than " + std::to_string(limits_.max_image_side) + " pixels on a side");
  const media::FittedImage fitted =
      media::fit_image(decoded, model_->width(), model_->height(), media::FitMode::kCrop);
  image_ = fitted.image;
  mapping_ = fitted.mapping;
  controls_ = LiveTracks(model_->width(), model_->height(), model_->fps());  // old controls belong to the old image
  const media::FrameMapping& m = *mapping_;
  Replies replies{{{"type", "image"},
                   {"width", m.source_width},
                   {"height", m.source_height},
                   {"model_width", m.model_width},
                   {"model_height", m.model_height},
                   {"fit", "crop"},
                   {"scale_x", m.scale_x},
                   {"scale_y", m.scale_y},
                   {"offset_x", m.offset_x},
                   {"offset_y", m.offset_y}}};
  if (state_ != State::kIdle) {
    begin_stream();
    replies.push_back(state_message());
  }
  return replies;
}

bool Session::wants_chunk() const {
  std::lock_guard<std::mutex> lock(mutex_);
  // Just in time: a new chunk starts when the frames still waiting cover about 1.5 chunk-generation times, so that
  // a control reaches the screen as early as possible without the stream running dry.
  const int64_t chunk = 4 * model_->options().layout.chunk_frames;  // video frames of a steady chunk
  const int64_t enough = std::min<int64_t>(chunk, 1 + static_cast<int64_t>(std::ceil(model_->fps() * 1.5 * latency_s_)));
  return state_ == State::kRunning && image_.defined() && static_cast<int64_t>(waiting_.size()) < enough;
}

void Session::generate_chunk() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (state_ != State::kRunning || !image_.defined()) return;
  const uint64_t epoch = epoch_;
  const bool restart = source_stale_, new_prompt = prompt_stale_;
  source_stale_ = prompt_stale_ = false;
  const at::Tensor image = image_;
  const std::string prompt = prompt_;
  if (!source_) source_ = model_->new_source();
  lock.unlock();

  const Clock::time_point t0 = Clock::now();
  if (restart)
    source_->start(image, prompt);
  else if (new_prompt)
    source_->set_prompt(prompt);

  lock.lock();
  if (epoch != epoch_) return;  // restarted meanwhile: begin_stream marked the source stale again
  std::optional<TrackSet> tracks;
  if (!controls_.empty()) tracks = controls_.tracks(source_->tracks_needed());
  lock.unlock();

  const at::Tensor frames = source_->next_frames(tracks);  // [n, 3, H, W]
  std::vector<std::string> jpegs;
  for (int64_t i = 0; i < frames.size(0); ++i) jpegs.push_back(encode_jpeg(frames[i], limits_.jpeg_quality));
  const Clock::time_point t1 = Clock::now();

  lock.lock();
  if (epoch != epoch_) return;
  const int64_t n = frames.size(0), first = frames_generated_;
  const double latency_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  // Frames per second over the time since the previous chunk ended (waiting for the client included).
  const double since_last = last_chunk_end_ == Clock::time_point{}
                                ? latency_ms / 1000.0
                                : std::chrono::duration<double>(t1 - last_chunk_end_).count();
  const double now_fps = n / std::max(since_last, 1e-6);
  fps_ = fps_ == 0.0 ? now_fps : 0.7 * fps_ + 0.3 * now_fps;
  latency_s_ = latency_s_ == 0.0 ? latency_ms / 1000.0 : 0.7 * latency_s_ + 0.3 * latency_ms / 1000.0;
  last_chunk_end_ = t1;
  for (int64_t i = 0; i < n; ++i) {
    waiting_.push_back({first + i, jpegs[i], static_cast<float>(latency_ms), static_cast<float>(fps_)});
    if (static_cast<int64_t>(recorded_.size()) < limits_.record_frames) recorded_.push_back(std::move(jpegs[i]));
  }
  if (first < limits_.record_frames) {
    std::optional<TrackSet> used;
    if (tracks) {
      used = *tracks;
      used->xy = tracks->xy.narrow(0, first, n).clone();
      used->visible = tracks->visible.narrow(0, first, n).clone();
    }
    recorded_tracks_.push_back({first, n, std::move(used)});
  }
  frames_generated_ += n;
}

void Session::fail(const std::string& why) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++epoch_;
  state_ = State::kIdle;
  source_stale_ = true;
  notices_.push_back(error_message("generation failed, the stream stopped: " + why));
  notices_.push_back(state_message());
}

std::vector<json> Session::take_notices() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<json> out;
  out.swap(notices_);
  return out;
}

std::optional<OutFrame> Session::next_frame() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (state_ != State::kRunning || waiting_.empty()) return std::nullopt;
  OutFrame frame = std::move(waiting_.front());
  waiting_.pop_front();
  return frame;
}

std::string Session::recording_mp4() const {
  std::vector<std::string> jpegs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jpegs = recorded_;
  }
  if (jpegs.empty()) throw std::runtime_error("session " + id_ + " has no recorded frames yet");
  TempFile file("motionstream-" + id_ + ".mp4");
  {
    media::VideoWriter writer(file.path.string(), model_->width(), model_->height(), model_->fps());
    for (size_t i = 0; i < jpegs.size(); ++i)
      writer.write(media::decode_image(jpegs[i], "recorded frame " + std::to_string(i)));
    writer.close();
  }
  return read_whole(file.path);
}

std::optional<TrackSet> Session::recorded_tracks() const {
  int64_t points = 0, frames = 0;
  for (const ChunkTracks& c : recorded_tracks_) {
    if (c.tracks) points = std::max(points, c.tracks->points());
    frames = c.first_frame + c.frames;
  }
  if (points == 0) return std::nullopt;
  TrackSet all;
  all.xy = at::zeros({frames, points, 2}, at::kFloat);          // [T, N, 2]
  all.visible = at::zeros({frames, points}, at::kBool);          // [T, N]: a point not yet drawn is invisible
  for (const ChunkTracks& c : recorded_tracks_) {
    if (!c.tracks) continue;
    const int64_t n = c.tracks->points();
    all.xy.narrow(0, c.first_frame, c.frames).narrow(1, 0, n).copy_(c.tracks->xy);
    all.visible.narrow(0, c.first_frame, c.frames).narrow(1, 0, n).copy_(c.tracks->visible);
  }
  all.fps = model_->fps();
  all.width = model_->width();
  all.height = model_->height();
  return all;
}

std::string Session::tracks_json() const {
  std::optional<TrackSet> tracks;
  media::FrameMapping mapping;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tracks = recorded_tracks();
    if (mapping_) mapping = *mapping_;
  }
  if (!tracks) throw std::runtime_error("session " + id_ + " has recorded no tracks");
  TempFile file("motionstream-" + id_ + "-tracks.json");
  write_tracks_json(file.path.string(), mapping.tracks_to_source(*tracks));
  return read_whole(file.path);
}

json Session::replay() const {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t frames = static_cast<int64_t>(recorded_.size());
  if (frames == 0) throw std::runtime_error("session " + id_ + " has no recorded frames yet");
  const LiveModelOptions& o = model_->options();
  const bool has_tracks = recorded_tracks().has_value();
  std::string quoted_prompt = "'";
  for (char c : prompt_) quoted_prompt += c == '\'' ? std::string("'\\''") : std::string(1, c);
  quoted_prompt += "'";
  std::ostringstream command;
  command << "motionstream generate --model " << (o.model_dir.empty() ? "MODEL_DIR" : o.model_dir)
          << " --image YOUR_IMAGE --prompt " << quoted_prompt << (has_tracks ? " --tracks tracks.json" : "")
          << " --frames " << frames << " --fps " << o.fps << " --width " << o.width << " --height " << o.height
          << " --fit crop --seed " << o.seed << " --steps " << o.steps << " --chunk " << o.layout.chunk_frames
          << " --sink " << o.layout.sink_chunks << " --window " << o.layout.window_chunks << " --out replay.mp4";
  return {{"session", id_},
          {"model", model_->describe()},
          {"prompt", prompt_},
          {"frames", frames},
          {"image_width", mapping_ ? mapping_->source_width : 0},
          {"image_height", mapping_ ? mapping_->source_height : 0},
          {"tracks", has_tracks ? "tracks.json" : ""},
          {"command", command.str()}};
}

}  // namespace ms::serve
