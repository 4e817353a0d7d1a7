// Session: one user's live stream, apart from the network. Protocol messages in (docs/PROTOCOL.md), frames out.
//
// Three parties touch a session, each through its own door, all under one mutex:
//   the client's connection  on_text / on_binary (controls, uploads) and next_frame (paced sending)
//   the generation thread    wants_chunk / generate_chunk (the only caller of the FrameSource)
//   HTTP downloads           recording_mp4 / tracks_json / replay
// Starting, restarting and uploading bump an epoch: a chunk that was being generated across such a change is
// dropped instead of being sent as part of the new stream.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "media/video_io.h"
#include "motionstream/tracks/live_tracks.h"
#include "serve/live_model.h"

namespace ms::serve {

using Clock = std::chrono::steady_clock;

struct SessionLimits {
  size_t max_upload_bytes = 10u << 20;
  int max_messages_per_second = 120;
  int64_t max_image_side = 8192;
  int64_t record_frames = 4800;  // the recording keeps the first this many frames of a stream (5 min at 16 fps)
  int jpeg_quality = 85;
  int max_sessions = 4;  // the server's, told to clients
  nlohmann::json to_json() const;
};

struct OutFrame {
  int64_t index = 0;
  std::string jpeg;
  float chunk_latency_ms = 0.0f;
  float fps = 0.0f;
};

class Session {
 public:
  Session(std::string id, std::shared_ptr<const LiveModel> model, SessionLimits limits);

  const std::string& id() const { return id_; }
  nlohmann::json hello() const;

  // A client message -> the messages to send back, in order; anything refused becomes a {"type":"error"} message.
  std::vector<nlohmann::json> on_text(const std::string& text, Clock::time_point now = Clock::now());
  std::vector<nlohmann::json> on_binary(const std::string& bytes, Clock::time_point now = Clock::now());
  Clock::time_point last_message() const;
  bool streaming() const;  // started and not paused

  // Generation thread: a chunk is wanted while streaming with fewer frames waiting to be sent than cover the time
  // the next chunk takes (at most one chunk).
  bool wants_chunk() const;
  void generate_chunk();
  void fail(const std::string& why);  // generation threw: the stream stops and the client is told why
  // Messages the session has for its client outside of a reply (failures).
  std::vector<nlohmann::json> take_notices();
  // The connection: the next frame to send, in order.
  std::optional<OutFrame> next_frame();

  // Downloads; each throws std::runtime_error when there is nothing to give.
  std::string recording_mp4() const;
  std::string tracks_json() const;  // the tracks each recorded frame was generated with, in uploaded-image pixels
  nlohmann::json replay() const;

 private:
  using Replies = std::vector<nlohmann::json>;
  Replies handle(const nlohmann::json& message);  // under the lock
  Replies upload(const std::string& bytes);        // under the lock
  nlohmann::json state_message() const;
  void begin_stream();  // under the lock: from the first frame, with the current image, prompt and controls
  Point2 to_model(const nlohmann::json& message, const char* what) const;
  bool over_rate(Clock::time_point now);
  std::optional<TrackSet> recorded_tracks() const;  // under the lock

  const std::string id_;
  const std::shared_ptr<const LiveModel> model_;
  const SessionLimits limits_;
  mutable std::mutex mutex_;

  // What the user set.
  at::Tensor image_;                      // [3, H, W] at the model's size; undefined before an upload
  std::optional<media::FrameMapping> mapping_;
  std::string prompt_;
  LiveTracks controls_;
  enum class State { kIdle, kRunning, kPaused } state_ = State::kIdle;

  // The stream.
  std::unique_ptr<FrameSource> source_;  // touched by the generation thread only
  uint64_t epoch_ = 0;                   // bumped by every (re)start
  bool source_stale_ = true;             // the generation thread must start the source over
  bool prompt_stale_ = false;
  int64_t frames_generated_ = 0;
  std::deque<OutFrame> waiting_;         // generated, not yet sent
  Clock::time_point last_chunk_end_{};
  double fps_ = 0.0;                     // recent frames per second, smoothed
  double latency_s_ = 0.0;               // recent chunk generation time, smoothed (kept across restarts)

  // The recording: frames as JPEG and, per chunk, the tracks (model pixels) its frames were generated with.
  std::vector<std::string> recorded_;
  struct ChunkTracks {
    int64_t first_frame, frames;
    std::optional<TrackSet> tracks;  // [frames of the chunk, N_chunk]
  };
  std::vector<ChunkTracks> recorded_tracks_;

  std::vector<nlohmann::json> notices_;

  // Rate limiting and idleness.
  Clock::time_point last_message_;
  Clock::time_point rate_window_start_{};
  int rate_count_ = 0;
};

}  // namespace ms::serve
