// A blocking WebSocket client of the live server, for tests and benchmarks: reads give up after a timeout instead of
// hanging, text messages come back as JSON and frames as their decoded header (docs/PROTOCOL.md).
#pragma once

#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ms::serve {

class WsClient {
 public:
  // receive_buffer > 0: a tiny socket receive buffer, so that a client that stops reading stalls the server's writes.
  explicit WsClient(uint16_t port, int timeout_seconds = 20, int receive_buffer = 0) : ws_(ioc_) {
    boost::asio::ip::tcp::resolver resolver(ioc_);
    auto& socket = ws_.next_layer();
    socket.open(boost::asio::ip::tcp::v4());
    if (receive_buffer > 0) socket.set_option(boost::asio::socket_base::receive_buffer_size(receive_buffer));
    socket.connect(*resolver.resolve("127.0.0.1", std::to_string(port)).begin());
    timeval timeout{timeout_seconds, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ws_.handshake("127.0.0.1", "/ws");
  }

  void send(const nlohmann::json& message) { send_text(message.dump()); }
  void send_text(const std::string& text) {  // also what is not JSON, to test the server's answer
    ws_.text(true);
    ws_.write(boost::asio::buffer(text));
  }
  void send_binary(const std::string& bytes) {
    ws_.binary(true);
    ws_.write(boost::asio::buffer(bytes));
  }

  // The next message: text as JSON; a frame as {"type": "frame", "index", "latency_ms", "fps", "dropped",
  // "jpeg_bytes"}, its JPEG kept in last_jpeg().
  nlohmann::json next() {
    boost::beast::flat_buffer buffer;
    ws_.read(buffer);
    std::string data = boost::beast::buffers_to_string(buffer.data());
    if (ws_.got_text()) return nlohmann::json::parse(data);
    if (data.size() < kHeaderBytes) throw std::runtime_error("a frame shorter than its header");
    uint32_t index, dropped;
    float latency_ms, fps;
    std::memcpy(&index, data.data(), 4);
    std::memcpy(&latency_ms, data.data() + 4, 4);
    std::memcpy(&fps, data.data() + 8, 4);
    std::memcpy(&dropped, data.data() + 12, 4);
    last_jpeg_ = data.substr(kHeaderBytes);
    return {{"type", "frame"}, {"index", index},     {"latency_ms", latency_ms},
            {"fps", fps},      {"dropped", dropped}, {"jpeg_bytes", last_jpeg_.size()}};
  }
  // Reads until a message of this type; an error message on the way is thrown.
  nlohmann::json next_of_type(const std::string& type, int limit = 1000) {
    for (int i = 0; i < limit; ++i) {
      nlohmann::json m = next();
      if (m["type"] == type) return m;
      if (m["type"] == "error") throw std::runtime_error("server: " + m.dump());
    }
    throw std::runtime_error("no " + type + " message in " + std::to_string(limit));
  }
  const std::string& last_jpeg() const { return last_jpeg_; }

  void close() {
    boost::beast::error_code ignored;
    ws_.close(boost::beast::websocket::close_code::normal, ignored);
  }

 private:
  static constexpr size_t kHeaderBytes = 16;  // index, chunk latency (ms), fps, frames dropped
  boost::asio::io_context ioc_;
  boost::beast::websocket::stream<boost::asio::ip::tcp::socket> ws_;
  std::string last_jpeg_;
};

}  // namespace ms::serve
