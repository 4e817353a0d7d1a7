// Live server benchmark: N concurrent sessions over loopback WebSockets, each streaming and dragging.
// Per session: frames per second received, chunk latency (from the frame headers), and the delay from a drag event
// to the first frame that reflects it. "Reflects" is measured, not assumed: a reference stream with the same seed,
// image and no drag is recorded first; the first frame that differs from it is the first one the drag changed
// (streams are deterministic until the tracks differ). Prints one JSON line per session count.
//   serve_bench [--model DIR | --codec DIR] [--sessions 1,2,4] [--seconds 12] [--drag-at 4] [--image PNG]
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <thread>

#include "motionstream/util/cli_args.h"
#include "serve/server.h"
#include "serve/ws_client.h"

using namespace ms;
using namespace ms::serve;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Frame {
  uint32_t index;
  float latency_ms;
  size_t hash;
  Clock::time_point received;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct SessionResult {
  std::vector<Frame> frames;
  int64_t drag_frame = -1;  // frame on screen when the drag was sent
  Clock::time_point drag_sent;
};

// One client: upload, start, stream for `seconds`; drag at `drag_at` seconds (when >= 0).
SessionResult run_session(uint16_t port, const std::string& image, double seconds, double drag_at) {
  WsClient c(port, 60);
  SessionResult r;
  c.next_of_type("hello");
  c.send_binary(image);
  c.next_of_type("image");
  c.send({{"type", "start"}});
  const Clock::time_point t0 = Clock::now();
  bool dragged = false;
  while (std::chrono::duration<double>(Clock::now() - t0).count() < seconds) {
    const json m = c.next();
    if (m["type"] == "error") throw std::runtime_error("server: " + m.dump());
    if (m["type"] != "frame") continue;
    const Frame f{m["index"].get<uint32_t>(), m["latency_ms"].get<float>(), std::hash<std::string>{}(c.last_jpeg()),
                  Clock::now()};
    r.frames.push_back(f);
    if (drag_at >= 0 && !dragged && std::chrono::duration<double>(Clock::now() - t0).count() >= drag_at) {
      r.drag_frame = f.index;
      r.drag_sent = Clock::now();
      c.send({{"type", "drag"}, {"phase", "down"}, {"x", 128}, {"y", 85}, {"frame", f.index}, {"grid", 3}});
      c.send({{"type", "drag"}, {"phase", "move"}, {"x", 160}, {"y", 85}, {"frame", f.index}});
      dragged = true;
    }
  }
  c.close();
  return r;
}

}  // namespace

int main(int argc, char** argv) try {
  const CliArgs args(argc, argv, 1, {"model", "codec", "sessions", "seconds", "drag-at", "image", "threads"});
  torch::set_num_threads(static_cast<int>(args.integer("threads", 1)));
  const std::string source_dir = MS_SOURCE_DIR;
  LiveModelOptions o;
  o.model_dir = args.str("model", "");
  o.random_codec = args.str("codec", source_dir + "/models/tiny-vae-128");
  const std::string image = read_file(args.str("image", source_dir + "/tests/e2e/fixtures/chelsea.png"));
  const double seconds = args.number("seconds", 12.0), drag_at = args.number("drag-at", 4.0);
  auto model = std::make_shared<const LiveModel>(o);

  ServerOptions so;
  so.port = 0;
  so.web_dir = source_dir + "/web";
  so.max_sessions = 16;

  // The reference: the same stream without the drag, as fast as the model goes.
  std::vector<size_t> reference;
  {
    LiveModelOptions fast = o;
    fast.fps = 1000.0;
    Server server(std::make_shared<const LiveModel>(fast), so);
    server.start();
    const SessionResult r = run_session(server.port(), image, seconds * 1.5, -1.0);
    for (const Frame& f : r.frames) {
      if (f.index != reference.size()) throw std::runtime_error("reference stream skipped a frame");
      reference.push_back(f.hash);
    }
    server.stop();
  }
  std::cout << json{{"bench", "serve_reference"}, {"frames", reference.size()}, {"model", model->describe()}}.dump()
            << std::endl;

  for (int64_t n : args.integers("sessions", {1, 2, 4})) {
    Server server(model, so);
    server.start();
    std::vector<SessionResult> results(n);
    std::vector<std::thread> clients;
    for (int64_t i = 0; i < n; ++i)
      clients.emplace_back([&, i] { results[i] = run_session(server.port(), image, seconds, drag_at); });
    for (auto& t : clients) t.join();
    server.stop();

    json per_session = json::array();
    for (const SessionResult& r : results) {
      if (r.frames.size() < 2) throw std::runtime_error("a session received fewer than 2 frames");
      const double span = std::chrono::duration<double>(r.frames.back().received - r.frames.front().received).count();
      double latency = 0;
      for (const Frame& f : r.frames) latency += f.latency_ms;
      json s = {{"frames", r.frames.size()},
                {"fps", (r.frames.size() - 1) / span},
                {"mean_chunk_latency_ms", latency / r.frames.size()}};
      // The first frame that differs from the reference.
      for (const Frame& f : r.frames) {
        if (f.index < reference.size() && f.hash == reference[f.index]) continue;
        if (f.index >= reference.size()) break;
        s["first_changed_frame"] = f.index;
        s["drag_frame"] = r.drag_frame;
        if (static_cast<int64_t>(f.index) <= r.drag_frame) {
          s["note"] = "stream differed from the reference before the drag (non-deterministic run)";
        } else {
          s["drag_to_frame_s"] = std::chrono::duration<double>(f.received - r.drag_sent).count();
        }
        break;
      }
      per_session.push_back(s);
    }
    std::cout << json{{"bench", "serve"}, {"sessions", n}, {"per_session", per_session}}.dump() << std::endl;
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "serve_bench: " << e.what() << std::endl;
  return 1;
}
