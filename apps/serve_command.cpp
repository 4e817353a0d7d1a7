// motionstream serve | demo: the live server (docs/PROTOCOL.md). `demo` is `serve` with the bundled model when it
// exists (random weights decoded by the bundled autoencoder until then), on port 8080.
#include "serve_command.h"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "motionstream/util/cli_args.h"
#include "serve/server.h"

namespace fs = std::filesystem;
using namespace ms;
using namespace ms::serve;

namespace {

// Bundled files live in the source tree; the binary knows where that is.
std::string source_path(const std::string& relative) { return (fs::path(MS_SOURCE_DIR) / relative).string(); }

const char* const kBundledModel = "models/motionstream-128";
const char* const kBundledCodec = "models/tiny-vae-128";

int run(int argc, char** argv, bool demo) {
  const CliArgs args(argc, argv, 2,
                     {"model", "backend", "codec", "preset", "host", "port", "web", "max-sessions", "max-upload-mb",
                      "max-messages", "idle-seconds", "width", "height", "fps", "steps", "chunk", "sink", "window",
                      "seed", "threads", "record-frames"});
  LiveModelOptions model;
  model.backend = args.str("backend", "model");
  model.model_dir = args.str("model", "");
  if (model.model_dir.empty() && demo && fs::exists(fs::path(source_path(kBundledModel)) / "model.json"))
    model.model_dir = source_path(kBundledModel);
  model.random_preset = args.str("preset", "cpu-small");
  model.random_codec = args.str("codec", source_path(kBundledCodec));
  model.width = args.integer("width", 128);
  model.height = args.integer("height", 128);
  model.fps = args.number("fps", 16.0);
  model.steps = args.integer("steps", 3);
  model.layout.chunk_frames = args.integer("chunk", 3);
  model.layout.sink_chunks = args.integer("sink", 1);
  model.layout.window_chunks = args.integer("window", 1);
  model.seed = static_cast<uint64_t>(args.integer("seed", 0));

  ServerOptions server;
  server.host = args.str("host", "127.0.0.1");
  const int64_t port = args.integer("port", 8080);
  if (port < 0 || port > 65535) throw std::invalid_argument("--port must be in [0, 65535], got " + std::to_string(port));
  server.port = static_cast<uint16_t>(port);
  server.web_dir = args.str("web", source_path("web"));
  server.max_sessions = static_cast<int>(args.integer("max-sessions", 4));
  server.idle_seconds = args.number("idle-seconds", 300.0);
  server.limits.max_upload_bytes = static_cast<size_t>(args.number("max-upload-mb", 10.0) * (1 << 20));
  server.limits.max_messages_per_second = static_cast<int>(args.integer("max-messages", 120));
  server.limits.record_frames = args.integer("record-frames", 4800);
  if (server.max_sessions < 1) throw std::invalid_argument("--max-sessions must be >= 1");

  // OpenBLAS threads the matmuls itself; a second layer of torch threads measured slower (docs/PERFORMANCE.md).
  torch::set_num_threads(static_cast<int>(args.integer("threads", 1)));
  // Refuse decompression bombs before OpenCV allocates them (the session checks the side length after decoding).
  setenv("OPENCV_IO_MAX_IMAGE_PIXELS", "67108864", 0);

  std::cerr << "motionstream: loading " << (model.backend == "warp" ? "the warp baseline" : model.model_dir.empty()
                                                                           ? "random weights (" + model.random_preset + ")"
                                                                           : model.model_dir)
            << std::endl;
  auto live = std::make_shared<const LiveModel>(model);
  Server s(live, server);
  s.start();
  std::cout << "motionstream: serving http://" << server.host << ":" << s.port() << "/  (" << live->describe().dump()
            << "; Ctrl-C stops)" << std::endl;
  s.wait(/*handle_signals=*/true);
  std::cerr << "motionstream: stopped" << std::endl;
  return 0;
}

}  // namespace

int serve_command(int argc, char** argv, bool demo) {
  try {
    return run(argc, argv, demo);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "motionstream %s: %s\n", demo ? "demo" : "serve", e.what());
    return 2;
  }
}
