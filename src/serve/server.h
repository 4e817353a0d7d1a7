// Server: the live demo over HTTP and WebSocket (Boost.Beast), docs/PROTOCOL.md.
//
// Threads: two network threads run every connection (each on its own strand), one generation thread serves the
// streaming sessions round robin, one chunk at a time, so every session advances and none can hold the model.
// Frames leave each connection at the stream's frame rate; a client that reads too slowly loses frames, never
// the others' generation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "serve/live_model.h"
#include "serve/session.h"

namespace ms::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;          // 0: any free port (see Server::port())
  std::string web_dir;           // the web app's files
  int max_sessions = 4;
  double idle_seconds = 300.0;   // a session that is not streaming and hears nothing for this long is closed
  // Kernel send buffer per WebSocket: small, so that a slow reader's frames are dropped here instead of piling up
  // (stale) in the kernel; a few frames' worth.
  int send_buffer_bytes = 128 * 1024;
  SessionLimits limits;
};

class Server {
 public:
  Server(std::shared_ptr<const LiveModel> model, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the threads; returns once connections are accepted.
  void start();
  uint16_t port() const;
  size_t sessions() const;
  // Blocks until stop() (or SIGINT/SIGTERM when handle_signals was set).
  void wait(bool handle_signals = false);
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ms::serve
