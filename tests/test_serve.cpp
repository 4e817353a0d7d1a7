// The live server: sessions apart from the network, then the real server over loopback with real WebSocket clients.
#ifdef MS_WITH_SERVE
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "media/video_io.h"
#include "scoped_temp_dir.h"
#include "serve/jpeg.h"
#include "serve/server.h"
#include "serve/ws_client.h"

using namespace ms;
using namespace ms::serve;
using nlohmann::json;
namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string photo() { return read_file(std::string(MS_SOURCE_DIR) + "/tests/e2e/fixtures/chelsea.png"); }  // 256x170

std::shared_ptr<const LiveModel> warp_model() {
  LiveModelOptions o;
  o.backend = "warp";
  return std::make_shared<const LiveModel>(o);
}

json only(const std::vector<json>& replies) {
  EXPECT_EQ(replies.size(), 1u);
  return replies.empty() ? json() : replies[0];
}

std::string error_of(const std::vector<json>& replies) {
  const json r = only(replies);
  EXPECT_EQ(r.value("type", ""), "error") << r.dump();
  return r.value("message", "");
}

// Mean absolute difference of two frames given as JPEG.
double frame_difference(const std::string& a, const std::string& b) {
  return (media::decode_image(a, "a") - media::decode_image(b, "b")).abs().mean().item<double>();
}

}  // namespace

TEST(Session, RefusesBadMessagesByNameAndKeepsGoing) {
  Session s("s1", warp_model(), {});
  EXPECT_NE(error_of(s.on_text("{not json")).find("not JSON"), std::string::npos);
  EXPECT_NE(error_of(s.on_text("[1,2]")).find("string 'type'"), std::string::npos);
  EXPECT_NE(error_of(s.on_text(R"({"type":"fly"})")).find("unknown message type 'fly'"), std::string::npos);
  EXPECT_NE(error_of(s.on_text(R"({"type":"start"})")).find("upload an image first"), std::string::npos);
  EXPECT_NE(error_of(s.on_binary("GIF89a....")).find("not a PNG or JPEG"), std::string::npos);
  EXPECT_NE(error_of(s.on_binary("\x89PNG\r\n\x1a\n garbage")).find("upload"), std::string::npos);

  const json image = only(s.on_binary(photo()));
  ASSERT_EQ(image.value("type", ""), "image") << image.dump();
  EXPECT_EQ(image["width"], 256);
  EXPECT_EQ(image["height"], 170);
  EXPECT_EQ(image["model_width"], 128);
  EXPECT_NE(error_of(s.on_text(R"({"type":"pin","x":300,"y":10,"frame":0})")).find("outside the 256x170 image"),
            std::string::npos);
  EXPECT_NE(error_of(s.on_text(R"({"type":"pin","x":"a","y":10,"frame":0})")).find("'x' must be a number"),
            std::string::npos);
  EXPECT_NE(error_of(s.on_text(R"({"type":"drag","phase":"down","x":10,"y":10})")).find("missing field 'frame'"),
            std::string::npos);
  EXPECT_NE(error_of(s.on_text(R"({"type":"drag","phase":"sideways","x":1,"y":1,"frame":0})")).find("phase"),
            std::string::npos);
  EXPECT_NE(error_of(s.on_text(R"({"type":"path","points":[[1,2],[3]],"frame":0})")).find("[x, y]"),
            std::string::npos);
  // Still healthy: it starts and streams.
  EXPECT_EQ(only(s.on_text(R"({"type":"start"})"))["state"], "running");
  ASSERT_TRUE(s.wants_chunk());
  s.generate_chunk();
  EXPECT_EQ(s.next_frame()->index, 0);
}

TEST(Session, RateLimitDropsTheRestOfTheSecondWithOneError) {
  SessionLimits limits;
  limits.max_messages_per_second = 5;
  Session s("s2", warp_model(), limits);
  const auto t0 = Clock::now();
  int errors = 0;
  for (int i = 0; i < 20; ++i) errors += static_cast<int>(s.on_text(R"({"type":"clear"})", t0).size());
  EXPECT_EQ(errors, 1);
  EXPECT_NE(error_of(s.on_text(R"({"type":"fly"})", t0 + std::chrono::milliseconds(1100))).find("unknown"),
            std::string::npos)
      << "a new second accepts messages again";
}

TEST(Session, OversizeUploadIsRefused) {
  SessionLimits limits;
  limits.max_upload_bytes = 1000;
  Session s("s3", warp_model(), limits);
  EXPECT_NE(error_of(s.on_binary(photo())).find("over the limit of 1000 bytes"), std::string::npos);
}

TEST(Session, FramesAreIndexedInOrderAndRestartDropsTheChunkInFlight) {
  Session s("s4", warp_model(), {});
  s.on_binary(photo());
  s.on_text(R"({"type":"start"})");
  s.generate_chunk();
  EXPECT_FALSE(s.wants_chunk()) << "one chunk waits to be sent: no more until it drains";
  for (int64_t i = 0; i < 12; ++i) EXPECT_EQ(s.next_frame()->index, i);
  EXPECT_FALSE(s.next_frame());
  s.generate_chunk();
  s.on_text(R"({"type":"pause"})");
  EXPECT_FALSE(s.next_frame()) << "paused: nothing is sent";
  EXPECT_FALSE(s.wants_chunk());
  s.on_text(R"({"type":"restart"})");
  EXPECT_EQ(s.next_frame(), std::nullopt) << "frames of the old stream are dropped";
  s.generate_chunk();
  EXPECT_EQ(s.next_frame()->index, 0);
}

TEST(Session, DragDrawnOnAFrameMovesTheFramesAfterIt) {
  // Warp backend: the frames are the image moved along the tracks, so the drag's effect is exact and visible.
  Session s("s5", warp_model(), {});
  s.on_binary(photo());  // 256x170 -> crop to 128x128: scale 128/170
  s.on_text(R"({"type":"start"})");
  s.generate_chunk();  // frames 0-11, no controls
  std::vector<OutFrame> first;
  while (auto f = s.next_frame()) first.push_back(*f);
  ASSERT_EQ(first.size(), 12u);
  EXPECT_LT(frame_difference(first[0].jpeg, first[11].jpeg), 0.01);
  // Drawn while frame 5 was on screen: frames 0-11 are already made, so the next chunk (12-23) carries it.
  ASSERT_TRUE(s.on_text(R"({"type":"drag","phase":"down","x":128,"y":85,"frame":5,"grid":3,"spacing":8})").empty());
  ASSERT_TRUE(s.on_text(R"({"type":"drag","phase":"move","x":150,"y":85,"frame":6})").empty());
  s.generate_chunk();
  std::vector<OutFrame> second;
  while (auto f = s.next_frame()) second.push_back(*f);
  ASSERT_EQ(second.size(), 12u);
  EXPECT_EQ(second[0].index, 12);
  EXPECT_GT(frame_difference(first[0].jpeg, second[0].jpeg), 0.005) << "frame 12 already shows the drag";
  // The tracks recorded for the download follow the image's pixels: the drag's centre at x 128 then 150.
  const json tracks = json::parse(s.tracks_json());
  EXPECT_NE(tracks.dump().find("150"), std::string::npos) << tracks.dump().substr(0, 400);
  EXPECT_EQ(s.replay()["frames"], 24);
}

// ---- the server over loopback ----

namespace {

std::string http_get(uint16_t port, const std::string& target, int* status) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  tcp::resolver resolver(ioc);
  stream.connect(resolver.resolve("127.0.0.1", std::to_string(port)));
  beast::http::request<beast::http::empty_body> req{beast::http::verb::get, target, 11};
  req.set(beast::http::field::host, "127.0.0.1");
  beast::http::write(stream, req);
  beast::flat_buffer buffer;
  beast::http::response_parser<beast::http::string_body> parser;
  parser.body_limit(256u << 20);
  beast::http::read(stream, buffer, parser);
  *status = parser.get().result_int();
  return parser.get().body();
}

}  // namespace

TEST(Server, AHealthySessionStreamsThroughAbuseFromOthers) {
  ServerOptions options;
  options.port = 0;
  options.web_dir = std::string(MS_SOURCE_DIR) + "/web";
  options.max_sessions = 3;
  options.limits.max_upload_bytes = 200000;
  options.send_buffer_bytes = 8192;
  Server server(warp_model(), options);
  server.start();
  const uint16_t port = server.port();

  WsClient healthy(port);
  const json hello = healthy.next();
  ASSERT_EQ(hello["type"], "hello");
  healthy.send_binary(photo());
  ASSERT_EQ(healthy.next()["type"], "image");
  healthy.send({{"type", "start"}});
  ASSERT_EQ(healthy.next_of_type("state")["state"], "running");
  int64_t last = healthy.next_of_type("frame")["index"];

  // Abuse from other clients, between frames of the healthy one.
  for (int i = 0; i < 100; ++i) {
    WsClient c(port);
    if (i % 10 == 0) c.next();  // some read their hello first
    c.close();
  }
  {
    WsClient rude(port);
    rude.next();
    rude.send_binary(std::string(300000, 'x'));  // over the limit, under the hard cap
    EXPECT_NE(rude.next()["message"].get<std::string>().find("over the limit"), std::string::npos);
    rude.send_binary("not an image");
    EXPECT_NE(rude.next()["message"].get<std::string>().find("not a PNG or JPEG"), std::string::npos);
    rude.send_text("}{");
    EXPECT_NE(rude.next()["message"].get<std::string>().find("not JSON"), std::string::npos);
    rude.send({{"type", "pin"}, {"x", 1e9}, {"y", 0}, {"frame", 0}});
    EXPECT_EQ(rude.next()["type"], "error");
    // Full server (healthy, rude, second): a fourth session is told so.
    WsClient second(port);
    second.next();
    WsClient third(port);
    EXPECT_NE(third.next()["message"].get<std::string>().find("server is full"), std::string::npos);
  }
  for (int i = 0; i < 500 && server.sessions() > 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(server.sessions(), 1u) << "closed sessions are gone";

  // A client that streams but stops reading: its frames are dropped, nobody else's.
  WsClient stalled(port, 20, 2048);
  stalled.next();
  stalled.send_binary(photo());
  stalled.send({{"type", "start"}});

  // The healthy session kept streaming, frames in order, at the stream's rate.
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 48; ++i) {
    const json m = healthy.next_of_type("frame");
    EXPECT_EQ(m["index"].get<int64_t>(), last + 1);
    last = m["index"];
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 48 / 16.0 * 1.5) << "48 frames at 16 fps took " << seconds << " s";
  // The stalled client, reading at last, learns how many frames it lost.
  int64_t dropped = 0;
  for (int i = 0; i < 200 && dropped == 0; ++i) {
    const json m = stalled.next();
    if (m["type"] == "frame") dropped = m["dropped"];
  }
  EXPECT_GT(dropped, 0);
  int status = 0;
  const std::string info = http_get(port, "/api/info", &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(json::parse(info)["model"]["backend"], "warp");
  EXPECT_NE(http_get(port, "/", &status).find("<html"), std::string::npos);
  EXPECT_EQ(status, 200);
  http_get(port, "/api/sessions/nope/recording.mp4", &status);
  EXPECT_EQ(status, 404);

  // The recording downloads as a playable MP4.
  const std::string mp4 = http_get(port, "/api/sessions/" + hello["session"].get<std::string>() + "/recording.mp4", &status);
  ASSERT_EQ(status, 200) << mp4;
  ms::test::ScopedTempDir dir("serve_recording");
  const std::string path = dir.file("recording.mp4");
  std::ofstream(path, std::ios::binary) << mp4;
  const media::Video video = media::read_video(path);
  EXPECT_GE(video.frames.size(0), last);
  EXPECT_EQ(video.frames.size(3), 128);
  healthy.close();
  server.stop();
}

TEST(Server, RandomWeightsModelStreamsDecodedFrames) {
  // The default backend as `motionstream demo` runs it without a bundled model.
  LiveModelOptions o;
  o.random_codec = std::string(MS_SOURCE_DIR) + "/models/tiny-vae-128";
  ServerOptions options;
  options.port = 0;
  options.web_dir = std::string(MS_SOURCE_DIR) + "/web";
  Server server(std::make_shared<const LiveModel>(o), options);
  server.start();
  WsClient c(server.port());
  EXPECT_EQ(c.next()["model"]["trained"], false);
  c.send_binary(photo());
  c.next_of_type("image");
  c.send({{"type", "start"}});
  c.send({{"type", "drag"}, {"phase", "down"}, {"x", 100}, {"y", 80}, {"frame", -1}});
  for (int64_t i = 0; i < 21; ++i) {  // the first chunk gives 9 frames, later ones 12
    const json f = c.next_of_type("frame");
    EXPECT_EQ(f["index"].get<int64_t>(), i);
    EXPECT_GT(f["latency_ms"].get<double>(), 0.0);
    EXPECT_GT(f["jpeg_bytes"].get<int64_t>(), 100);
  }
  c.close();
  server.stop();
}

TEST(Server, IdleSessionsAreReapedAndTheirSlotsFreed) {
  ServerOptions options;
  options.port = 0;
  options.web_dir = std::string(MS_SOURCE_DIR) + "/web";
  options.idle_seconds = 0.3;
  options.max_sessions = 1;
  Server server(warp_model(), options);
  server.start();
  {
    WsClient idle(server.port());
    EXPECT_EQ(idle.next()["type"], "hello");
    const json bye = idle.next();  // nothing sent: the server closes the session
    EXPECT_NE(bye.value("message", "").find("idle"), std::string::npos) << bye.dump();
  }
  for (int i = 0; i < 300 && server.sessions() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(server.sessions(), 0u);
  WsClient next(server.port());  // the only slot is free again
  EXPECT_EQ(next.next()["type"], "hello");
  server.stop();
}

TEST(Jpeg, EncodesAFrameThatDecodesBackClose) {
  const at::Tensor frame = at::linspace(0, 1, 64).view({1, 1, 64}).expand({3, 48, 64}).contiguous();
  const std::string jpeg = encode_jpeg(frame, 95);
  ASSERT_GT(jpeg.size(), 100u);
  const at::Tensor back = media::decode_image(jpeg, "jpeg");
  EXPECT_EQ(back.sizes(), frame.sizes());
  EXPECT_LT((back - frame).abs().mean().item<float>(), 0.01f);
}

#endif  // MS_WITH_SERVE
