#include "serve/server.h"

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using nlohmann::json;
namespace fs = std::filesystem;

namespace ms::serve {

struct Server::Impl {
  Impl(std::shared_ptr<const LiveModel> m, ServerOptions o) : model(std::move(m)), options(std::move(o)) {}

  std::shared_ptr<const LiveModel> model;
  ServerOptions options;
  net::io_context ioc{2};
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> network;
  std::thread generation;
  std::atomic<bool> stopping{false};
  std::mutex stop_mutex;
  std::condition_variable stop_cv;

  mutable std::mutex sessions_mutex;
  std::map<std::string, std::shared_ptr<Session>> sessions;
  std::mt19937_64 ids{std::random_device{}()};

  std::shared_ptr<Session> open_session() {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    if (static_cast<int>(sessions.size()) >= options.max_sessions) return nullptr;
    char id[17];
    std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(ids()));
    auto session = std::make_shared<Session>(id, model, options.limits);
    sessions[id] = session;
    return session;
  }
  void close_session(const std::string& id) {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    sessions.erase(id);
  }
  size_t sessions_now() const {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    return sessions.size();
  }
  std::shared_ptr<Session> find_session(const std::string& id) const {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    auto it = sessions.find(id);
    return it == sessions.end() ? nullptr : it->second;
  }

  // Round robin over the streaming sessions, one chunk each.
  void generate_forever() {
    size_t turn = 0;
    while (!stopping) {
      std::vector<std::shared_ptr<Session>> live;
      {
        std::lock_guard<std::mutex> lock(sessions_mutex);
        for (auto& entry : sessions) live.push_back(entry.second);
      }
      bool worked = false;
      for (size_t k = 0; k < live.size() && !worked; ++k) {
        const size_t i = (turn + k) % live.size();
        if (!live[i]->wants_chunk()) continue;
        try {
          live[i]->generate_chunk();
        } catch (const std::exception& e) {
          std::cerr << "motionstream serve: session " << live[i]->id() << ": " << e.what() << std::endl;
          live[i]->fail(e.what());
        }
        turn = i + 1;
        worked = true;
      }
      if (!worked) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  void accept();
  http::response<http::string_body> answer(const http::request<http::string_body>& request);
};

namespace {

http::response<http::string_body> text_response(const http::request<http::string_body>& request, http::status status,
                                                std::string body, const std::string& type = "text/plain; charset=utf-8") {
  http::response<http::string_body> res{status, request.version()};
  res.set(http::field::server, "motionstream");
  res.set(http::field::content_type, type);
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(request.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

std::string content_type(const fs::path& path) {
  static const std::map<std::string, std::string> types = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
      {".json", "application/json"}, {".png", "image/png"}, {".jpg", "image/jpeg"},
      {".svg", "image/svg+xml"}, {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"}};
  auto it = types.find(path.extension().string());
  return it == types.end() ? "application/octet-stream" : it->second;
}

// One WebSocket: a session's messages in, its replies and paced frames out. Every handler runs on the socket's
// strand, so the members need no lock.
class WsConnection : public std::enable_shared_from_this<WsConnection> {
 public:
  WsConnection(Server::Impl& server, beast::tcp_stream&& stream)
      : server_(server), ws_(std::move(stream)), timer_(ws_.get_executor()) {}

  void run(http::request<http::string_body> request) {
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().set_option(
        net::socket_base::send_buffer_size(server_.options.send_buffer_bytes), ignored);
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    // Uploads up to twice the limit are read and refused with a message; larger ones end the connection (1009).
    ws_.read_message_max(2 * server_.options.limits.max_upload_bytes + 65536);
    ws_.async_accept(request, beast::bind_front_handler(&WsConnection::on_accept, shared_from_this()));
  }

 private:
  struct Outgoing {
    std::string data;
    bool binary;
  };

  void on_accept(beast::error_code ec) {
    if (ec) return;
    session_ = server_.open_session();
    if (!session_) {
      closing_ = true;
      send_text({{"type", "error"},
                 {"message", "the server is full (" + std::to_string(server_.options.max_sessions) +
                                 " sessions): try again later"}});
      return;
    }
    send_text(session_->hello());
    read();
    next_send_ = std::chrono::steady_clock::now();
    tick();
  }

  void read() { ws_.async_read(buffer_, beast::bind_front_handler(&WsConnection::on_read, shared_from_this())); }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) return finish();
    const std::string data = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    for (const json& reply : ws_.got_text() ? session_->on_text(data) : session_->on_binary(data)) send_text(reply);
    read();
  }

  // Every few milliseconds: failures to report, the next frame when its time has come, idleness.
  void tick() {
    timer_.expires_after(std::chrono::milliseconds(4));
    timer_.async_wait(beast::bind_front_handler(&WsConnection::on_tick, shared_from_this()));
  }

  void on_tick(beast::error_code ec) {
    if (ec || finished_) return;
    for (const json& notice : session_->take_notices()) send_text(notice);
    const auto now = std::chrono::steady_clock::now();
    const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(1.0 / server_.model->fps()));
    if (now >= next_send_) {
      if (std::optional<OutFrame> frame = session_->next_frame()) {
        // At most one frame may wait behind the one being written: a slow reader loses frames instead.
        if (frames_queued_ >= 2)
          ++dropped_;
        else
          send_frame(*frame);
        // Constant spacing; after a stall, catch up by at most one frame.
        next_send_ = std::max(next_send_ + period, now - period);
      }
    }
    if (!session_->streaming() &&
        now - session_->last_message() > std::chrono::duration<double>(server_.options.idle_seconds)) {
      closing_ = true;
      send_text({{"type", "error"}, {"message", "closing an idle session (no message for " +
                                                    std::to_string(server_.options.idle_seconds) + " s)"}});
      return;
    }
    tick();
  }

  void send_frame(const OutFrame& frame) {
    // 16-byte little-endian header (docs/PROTOCOL.md), then the JPEG. x86 and ARM hosts are little-endian.
    std::string data(16 + frame.jpeg.size(), '\0');
    const uint32_t index = static_cast<uint32_t>(frame.index), dropped = static_cast<uint32_t>(dropped_);
    std::memcpy(&data[0], &index, 4);
    std::memcpy(&data[4], &frame.chunk_latency_ms, 4);
    std::memcpy(&data[8], &frame.fps, 4);
    std::memcpy(&data[12], &dropped, 4);
    std::memcpy(&data[16], frame.jpeg.data(), frame.jpeg.size());
    ++frames_queued_;
    send({std::move(data), true});
  }

  void send_text(const json& message) { send({message.dump(), false}); }

  void send(Outgoing message) {
    if (finished_) return;
    queue_.push_back(std::move(message));
    if (!writing_) write_next();
  }

  void write_next() {
    writing_ = true;
    ws_.binary(queue_.front().binary);
    ws_.async_write(net::buffer(queue_.front().data),
                    beast::bind_front_handler(&WsConnection::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return finish();
    if (queue_.front().binary) --frames_queued_;
    queue_.pop_front();
    if (!queue_.empty()) return write_next();
    writing_ = false;
    if (closing_) {
      ws_.async_close(websocket::close_code::try_again_later,
                      beast::bind_front_handler(&WsConnection::on_close, shared_from_this()));
    }
  }

  void on_close(beast::error_code) { finish(); }

  void finish() {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    if (session_) server_.close_session(session_->id());
  }

  Server::Impl& server_;
  websocket::stream<beast::tcp_stream> ws_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::shared_ptr<Session> session_;
  std::deque<Outgoing> queue_;
  bool writing_ = false, closing_ = false, finished_ = false;
  int frames_queued_ = 0;
  int64_t dropped_ = 0;
  std::chrono::steady_clock::time_point next_send_{};
};

// One HTTP connection: requests answered in turn (keep-alive) until it upgrades to a WebSocket or ends.
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(Server::Impl& server, tcp::socket&& socket) : server_(server), stream_(std::move(socket)) {}

  void run() { net::dispatch(stream_.get_executor(), beast::bind_front_handler(&HttpConnection::read, shared_from_this())); }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(64 * 1024);
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpConnection::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    http::request<http::string_body> request = parser_->release();
    if (websocket::is_upgrade(request)) {
      if (request.target() == "/ws") {
        stream_.expires_never();
        std::make_shared<WsConnection>(server_, std::move(stream_))->run(std::move(request));
        return;
      }
      return respond(text_response(request, http::status::not_found, "WebSocket sessions live at /ws\n"));
    }
    respond(server_.answer(request));
  }

  void respond(http::response<http::string_body> response) {
    auto res = std::make_shared<http::response<http::string_body>>(std::move(response));
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (!ec && res->keep_alive()) return self->read();
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  Server::Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
};

}  // namespace

void Server::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (stopping) return;
    if (!ec) std::make_shared<HttpConnection>(*this, std::move(socket))->run();
    accept();
  });
}

http::response<http::string_body> Server::Impl::answer(const http::request<http::string_body>& request) {
  if (request.method() != http::verb::get && request.method() != http::verb::head)
    return text_response(request, http::status::method_not_allowed, "only GET is served\n");
  std::string target(request.target());
  target = target.substr(0, target.find('?'));

  if (target == "/api/info") {
    const json info = {{"model", model->describe()}, {"limits", options.limits.to_json()}, {"sessions", sessions_now()}};
    return text_response(request, http::status::ok, info.dump() + "\n", "application/json");
  }

  const std::string api = "/api/sessions/";
  if (target.rfind(api, 0) == 0) {
    const std::string rest = target.substr(api.size());
    const size_t slash = rest.find('/');
    const std::string id = rest.substr(0, slash), file = slash == std::string::npos ? "" : rest.substr(slash + 1);
    std::shared_ptr<Session> session = find_session(id);
    if (!session) return text_response(request, http::status::not_found, "no live session '" + id + "'\n");
    try {
      http::response<http::string_body> res;
      if (file == "recording.mp4")
        res = text_response(request, http::status::ok, session->recording_mp4(), "video/mp4");
      else if (file == "tracks.json")
        res = text_response(request, http::status::ok, session->tracks_json(), "application/json");
      else if (file == "replay.json")
        res = text_response(request, http::status::ok, session->replay().dump(2) + "\n", "application/json");
      else
        return text_response(request, http::status::not_found,
                             "a session offers recording.mp4, tracks.json and replay.json, not '" + file + "'\n");
      res.set(http::field::content_disposition, "attachment; filename=\"motionstream-" + id + "-" + file + "\"");
      return res;
    } catch (const std::exception& e) {
      return text_response(request, http::status::bad_request, std::string(e.what()) + "\n");
    }
  }

  // The web app: plain files, nothing outside web_dir.
  if (target.find("..") != std::string::npos || target.find('\\') != std::string::npos || target.empty() ||
      target[0] != '/')
    return text_response(request, http::status::bad_request, "bad path\n");
  const fs::path path = fs::path(options.web_dir) / (target == "/" ? "index.html" : target.substr(1));
  std::ifstream in(path, std::ios::binary);
  if (!in || fs::is_directory(path)) return text_response(request, http::status::not_found, "not found: " + target + "\n");
  std::ostringstream body;
  body << in.rdbuf();
  return text_response(request, http::status::ok, body.str(), content_type(path));
}

Server::Server(std::shared_ptr<const LiveModel> model, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(options))) {
  impl_->options.limits.max_sessions = impl_->options.max_sessions;
}

Server::~Server() {
  stop();
  for (auto& t : impl_->network)
    if (t.joinable()) t.join();
  if (impl_->generation.joinable()) impl_->generation.join();
}

void Server::start() {
  Impl& s = *impl_;
  if (!fs::exists(fs::path(s.options.web_dir) / "index.html"))
    throw std::runtime_error("web app not found: " + s.options.web_dir + "/index.html (give --web DIR)");
  const tcp::endpoint endpoint(net::ip::make_address(s.options.host), s.options.port);
  s.acceptor.open(endpoint.protocol());
  s.acceptor.set_option(net::socket_base::reuse_address(true));
  beast::error_code ec;
  s.acceptor.bind(endpoint, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + s.options.host + ":" + std::to_string(s.options.port) + ": " +
                             ec.message());
  s.acceptor.listen();
  s.accept();
  for (int i = 0; i < 2; ++i) s.network.emplace_back([&s] { s.ioc.run(); });
  s.generation = std::thread([&s] { s.generate_forever(); });
}

uint16_t Server::port() const { return impl_->acceptor.local_endpoint().port(); }

size_t Server::sessions() const { return impl_->sessions_now(); }

void Server::wait(bool handle_signals) {
  Impl& s = *impl_;
  net::signal_set signals(s.ioc);
  if (handle_signals) {
    signals.add(SIGINT);
    signals.add(SIGTERM);
    signals.async_wait([this](beast::error_code ec, int) {
      if (!ec) stop();
    });
  }
  std::unique_lock<std::mutex> lock(s.stop_mutex);
  s.stop_cv.wait(lock, [&s] { return s.stopping.load(); });
}

void Server::stop() {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.stop_mutex);
    s.stopping = true;
  }
  s.ioc.stop();
  s.stop_cv.notify_all();
}

}  // namespace ms::serve
