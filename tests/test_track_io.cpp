// Track file formats: the peers' fixtures (ATI .pth, CoTracker/Wan-Move .npy), .npy itself, the pickle and zip
// layers under .pth, the native JSON format, time resampling, image scaling and the errors for bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "motionstream/io/npy.h"
#include "motionstream/io/torch_archive.h"
#include "motionstream/tracks/track_io.h"
#include "scoped_temp_dir.h"

namespace {

namespace fs = std::filesystem;
using namespace ms;
using nlohmann::json;

// The test binary runs in the build folder: walk up until the repository's fixtures appear.
fs::path fixtures_dir() {
  for (fs::path dir = fs::current_path();; dir = dir.parent_path()) {
    if (fs::is_directory(dir / "tests" / "fixtures" / "tracks")) return dir / "tests" / "fixtures" / "tracks";
    if (dir == dir.root_path() || dir.empty()) break;
  }
  throw std::runtime_error("tests/fixtures/tracks not found above " + fs::current_path().string());
}

std::string fixture(const std::string& name) { return (fixtures_dir() / name).string(); }
const std::string kAti = "ati_like_640x360.pth";
const std::string kNpyTracks = "cotracker_like_640x360_tracks.npy";
const std::string kNpyVisibility = "cotracker_like_640x360_visibility.npy";

json expected() {
  std::ifstream in(fixture("expected.json"));
  return json::parse(in);
}

// A fresh folder per test, removed afterwards.
struct TempDir : ms::test::ScopedTempDir {
  TempDir() : ScopedTempDir("track_io") {}
};

void write_text(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_text(const std::string& path) {
  const auto bytes = io::read_file_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

// Runs fn, which must throw a std::exception whose message holds every needle (the file name first of all).
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    for (const auto& needle : needles)
      EXPECT_NE(what.find(needle), std::string::npos) << "'" << needle << "' not in: " << what;
    return;
  }
  ADD_FAILURE() << "no exception; expected one mentioning '" << needles.front() << "'";
}

TrackReadOptions sized(int64_t width = 640, int64_t height = 360) {
  TrackReadOptions options;
  options.source_width = width;
  options.source_height = height;
  return options;
}

void expect_xy(const TrackSet& t, int64_t frame, const json& want, double tolerance = 1e-4) {
  for (int64_t n = 0; n < t.points(); ++n) {
    EXPECT_NEAR(t.xy[frame][n][0].item<float>(), want[n][0].get<double>(), tolerance)
        << "frame " << frame << " point " << n;
    EXPECT_NEAR(t.xy[frame][n][1].item<float>(), want[n][1].get<double>(), tolerance)
        << "frame " << frame << " point " << n;
  }
}

// Frames at which the point is hidden, as [first, last]; {-1, -1} when never; fails if not one run.
std::pair<int64_t, int64_t> hidden_run(const TrackSet& t, int64_t point) {
  int64_t first = -1, last = -1;
  for (int64_t f = 0; f < t.frames(); ++f) {
    if (t.visible[f][point].item<bool>()) continue;
    if (first < 0) first = f;
    EXPECT_TRUE(last < 0 || last == f - 1) << "point " << point << " hidden in more than one run";
    last = f;
  }
  return {first, last};
}

int64_t first_frame_outside(const TrackSet& t, int64_t point) {
  for (int64_t f = 0; f < t.frames(); ++f) {
    const float x = t.xy[f][point][0].item<float>(), y = t.xy[f][point][1].item<float>();
    if (x < 0 || y < 0 || x >= t.width || y >= t.height) return f;
  }
  return -1;
}

TrackSet linear_tracks(int64_t frames, double fps) {
  TrackSet t;
  const at::Tensor time = at::arange(frames, at::kFloat).view({-1, 1});
  t.xy = at::stack({at::cat({time * 3 + 1, time * -0.5 + 100}, 1), at::cat({time * 0.25 + 7, time * 2 + 3}, 1)}, 1);
  t.visible = at::ones({frames, 2}, at::kBool);
  t.fps = fps;
  t.width = 640;
  t.height = 360;
  return t;
}

void expect_same_tracks(const TrackSet& a, const TrackSet& b) {
  ASSERT_EQ(a.xy.sizes(), b.xy.sizes());
  EXPECT_TRUE(at::equal(a.xy, b.xy));
  EXPECT_TRUE(at::equal(a.visible, b.visible));
  EXPECT_EQ(a.fps, b.fps);
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
}

std::string npy_file(int major, const std::string& header, const std::string& data) {
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  const std::string text = header + "\n";
  const size_t length_bytes = major == 1 ? 2 : 4;
  for (size_t i = 0; i < length_bytes; ++i) out.push_back(static_cast<char>((text.size() >> (8 * i)) & 0xFF));
  return out + text + data;
}

// A bool tensor from 0/1 values (at::tensor has no bool overload in every libtorch).
at::Tensor bools(std::initializer_list<int64_t> values) { return at::tensor(std::vector<int64_t>(values)).ne(0); }

std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
// A string literal's bytes, embedded NULs included, without its terminating NUL.
template <size_t N>
std::vector<uint8_t> raw(const char (&literal)[N]) {
  return std::vector<uint8_t>(literal, literal + N - 1);
}

// Offset of the central-directory record for `entry` in a zip held in memory.
size_t central_record(const std::string& zip, const std::string& entry) {
  for (size_t at = zip.find("PK\x01\x02"); at != std::string::npos; at = zip.find("PK\x01\x02", at + 4)) {
    const size_t name_size = static_cast<uint8_t>(zip[at + 28]) | (static_cast<uint8_t>(zip[at + 29]) << 8);
    if (zip.compare(at + 46, name_size, entry) == 0) return at;
  }
  throw std::runtime_error("no central record for " + entry);
}

}  // namespace

// ================================================================ fixtures

TEST(TrackIo, ReadsAtiFixture) {
  const json want = expected();
  const TrackSet t = read_tracks(fixture(kAti), sized());
  ASSERT_EQ(t.frames(), want["frames_ati"].get<int64_t>());
  ASSERT_EQ(t.points(), want["points"].get<int64_t>());
  EXPECT_EQ(t.width, 640);
  EXPECT_EQ(t.height, 360);
  EXPECT_EQ(t.fps, kAtiSourceFps);
  expect_xy(t, 0, want["xy_first"]);
  expect_xy(t, t.frames() - 1, want["xy_last"]);

  const int64_t occluded = want["occluded_point"].get<int64_t>();
  const auto run = hidden_run(t, occluded);
  EXPECT_EQ(run.first, want["occluded_frames_ati"][0].get<int64_t>());
  EXPECT_EQ(run.second, want["occluded_frames_ati"][1].get<int64_t>());

  const int64_t leaver = want["leaves_frame_point"].get<int64_t>();
  const int64_t leaves_at = want["leaves_frame_at_ati_frame"].get<int64_t>();
  EXPECT_EQ(first_frame_outside(t, leaver), leaves_at);
  EXPECT_EQ(hidden_run(t, leaver), std::make_pair(leaves_at, t.frames() - 1));
  for (int64_t n = 0; n < t.points(); ++n)
    if (n != occluded && n != leaver) EXPECT_TRUE(t.visible.select(1, n).all().item<bool>()) << n;
}

TEST(TrackIo, ReadsCoTrackerFixture) {
  const json want = expected();
  TrackReadOptions options = sized();
  options.visibility_path = fixture(kNpyVisibility);
  const TrackSet t = read_tracks(fixture(kNpyTracks), options);
  ASSERT_EQ(t.frames(), want["frames_npy"].get<int64_t>());
  ASSERT_EQ(t.points(), want["points"].get<int64_t>());
  EXPECT_EQ(t.fps, kNpyDefaultFps);
  EXPECT_EQ(t.width, want["image_size"][0].get<int64_t>());
  EXPECT_EQ(t.height, want["image_size"][1].get<int64_t>());
  expect_xy(t, 0, want["xy_first"]);
  expect_xy(t, t.frames() - 1, want["xy_last"]);

  // The same motion at 16 fps: ATI frame f (24 fps) is this file's frame f / 1.5, give or take one frame.
  const auto run = hidden_run(t, want["occluded_point"].get<int64_t>());
  EXPECT_NEAR(run.first * 1.5, want["occluded_frames_ati"][0].get<double>(), 1.5);
  EXPECT_NEAR(run.second * 1.5, want["occluded_frames_ati"][1].get<double>(), 1.5);
  const int64_t leaver = want["leaves_frame_point"].get<int64_t>();
  const int64_t outside = first_frame_outside(t, leaver);
  EXPECT_NEAR(outside * 1.5, want["leaves_frame_at_ati_frame"].get<double>(), 1.5);
  EXPECT_EQ(hidden_run(t, leaver), std::make_pair(outside, t.frames() - 1));

  // Without a visibility file every point counts as visible.
  EXPECT_TRUE(read_tracks(fixture(kNpyTracks), sized()).visible.all().item<bool>());
}

TEST(TrackIo, AtiFitsTo81FramesWithAtisFramePick) {
  const TrackSet raw = read_tracks(fixture(kAti), sized());
  TrackReadOptions options = sized();
  options.target.frames = kAtiFrames;
  const TrackSet picked = read_tracks(fixture(kAti), options);
  ASSERT_EQ(picked.frames(), 81);
  EXPECT_EQ(picked.fps, 16.0);
  for (int64_t i = 0; i < 81; ++i) {
    EXPECT_TRUE(at::equal(picked.xy[i], raw.xy[3 * i / 2])) << i;
    EXPECT_TRUE(at::equal(picked.visible[i], raw.visible[3 * i / 2])) << i;
  }
  // Even output frames fall on the same instants as the Wan-Move fixture's frames.
  TrackReadOptions npy_options = sized();
  npy_options.visibility_path = fixture(kNpyVisibility);
  const TrackSet npy = read_tracks(fixture(kNpyTracks), npy_options);
  for (int64_t i = 0; i < 81; i += 2) EXPECT_LT((picked.xy[i] - npy.xy[i]).abs().max().item<float>(), 1e-3) << i;

  // Asking for 16 fps alone gives the same 81 frames; turning the pick off interpolates instead.
  options.target = {0, 16.0, 0, 0};
  EXPECT_TRUE(at::equal(read_tracks(fixture(kAti), options).xy, picked.xy));
  options.target = {81, 0.0, 0, 0};
  options.ati_frame_pick = false;
  const TrackSet interpolated = read_tracks(fixture(kAti), options);
  EXPECT_TRUE(at::allclose(interpolated.xy[1], (raw.xy[1] + raw.xy[2]) / 2));
}

TEST(TrackIo, ReadFitsToTargetSizeAndFrames) {
  TrackReadOptions options = sized();
  options.target = {161, 32.0, 1280, 720};
  const TrackSet raw = read_tracks(fixture(kNpyTracks), sized());
  const TrackSet fitted = read_tracks(fixture(kNpyTracks), options);
  ASSERT_EQ(fitted.frames(), 161);
  EXPECT_EQ(fitted.width, 1280);
  EXPECT_EQ(fitted.height, 720);
  EXPECT_EQ(fitted.fps, 32.0);
  EXPECT_TRUE(at::allclose(fitted.xy[80], raw.xy[40] * 2));
}

// ================================================================ npy

TEST(Npy, RoundTripEachDtype) {
  TempDir tmp;
  const std::vector<std::pair<at::ScalarType, std::string>> cases = {
      {at::kFloat, "<f4"}, {at::kDouble, "<f8"}, {at::kHalf, "<f2"}, {at::kBool, "|b1"}, {at::kByte, "|u1"},
      {at::kChar, "|i1"},  {at::kShort, "<i2"},  {at::kInt, "<i4"},  {at::kLong, "<i8"},
  };
  for (const auto& [scalar, dtype] : cases) {
    const bool has_negatives = scalar != at::kByte && scalar != at::kBool;
    const at::Tensor source =
        (at::arange(24, at::kDouble).view({2, 3, 4}) * 1.75 - (has_negatives ? 20 : 0)).to(scalar);
    const std::string path = tmp.file(dtype.substr(1) + ".npy");
    io::write_npy(path, source);
    const io::NpyArray array = io::read_npy(path);
    EXPECT_EQ(array.dtype, dtype);
    EXPECT_EQ(array.shape, (std::vector<int64_t>{2, 3, 4}));
    const at::Tensor back = io::npy_to_tensor(array);
    EXPECT_EQ(back.scalar_type(), scalar);
    EXPECT_TRUE(at::equal(back, source)) << dtype;
  }
  // A scalar and an empty array.
  io::write_npy(tmp.file("scalar.npy"), at::scalar_tensor(2.5, at::kDouble));
  EXPECT_EQ(io::read_npy(tmp.file("scalar.npy")).shape, std::vector<int64_t>{});
  EXPECT_EQ(io::npy_to_tensor(io::read_npy(tmp.file("scalar.npy"))).item<double>(), 2.5);
  io::write_npy(tmp.file("empty.npy"), at::zeros({0, 3}, at::kFloat));
  EXPECT_EQ(io::read_npy(tmp.file("empty.npy")).shape, (std::vector<int64_t>{0, 3}));
}

TEST(Npy, WritesNumpysExactBytes) {
  // numpy.save's layout: same header text and 64-byte alignment, so writing the fixture back reproduces it.
  for (const auto& name : {kNpyTracks, kNpyVisibility}) {
    const std::vector<uint8_t> file = io::read_file_bytes(fixture(name));
    EXPECT_EQ(io::npy_bytes(io::read_npy(fixture(name))), file) << name;
  }
}

TEST(Npy, ReadsHandWrittenBytes) {
  std::string ints;
  for (int32_t v : {1, -2, 3, 70000, 5, -6}) ints.append(reinterpret_cast<const char*>(&v), 4);
  const auto a = io::read_npy_bytes(
      bytes_of(npy_file(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", ints)), "hand");
  EXPECT_EQ(a.dtype, "<i4");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(at::equal(io::npy_to_tensor(a), at::tensor({1, -2, 3, 70000, 5, -6}, at::kInt).view({2, 3})));

  // Version 2.0, key order shuffled, a one-element tuple, big-endian doubles (byte-swapped on reading).
  const std::string be("\x3f\xf8\0\0\0\0\0\0\xc0\0\0\0\0\0\0\0", 16);
  const auto b = io::read_npy_bytes(
      bytes_of(npy_file(2, "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \">f8\"}", be)), "hand");
  EXPECT_EQ(b.dtype, "<f8");
  EXPECT_TRUE(at::equal(io::npy_to_tensor(b), at::tensor({1.5, -2.0}, at::kDouble)));

  // Version 3.0 (UTF-8 header), bool bytes other than 0/1 read as True.
  const auto c = io::read_npy_bytes(
      bytes_of(npy_file(3, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", std::string("\0\x01\x07", 3))),
      "hand");
  EXPECT_TRUE(at::equal(io::npy_to_tensor(c), bools({0, 1, 1})));
}

TEST(Npy, RefusesFortranOrder) {
  const std::string file =
      npy_file(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", std::string(24, '\0'));
  expect_error([&] { io::read_npy_bytes(bytes_of(file), "column_major.npy"); }, {"column_major.npy", "Fortran"});
}

TEST(Npy, BadFilesNameTheFile) {
  const std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  expect_error([&] { io::read_npy_bytes(bytes_of(npy_file(1, header, std::string(20, '\0'))), "short.npy"); },
               {"short.npy", "truncated"});
  expect_error([&] { io::read_npy_bytes(bytes_of(npy_file(1, header, std::string(28, '\0'))), "long.npy"); },
               {"long.npy", "24"});
  expect_error([&] { io::read_npy_bytes(bytes_of("PK\x03\x04 not npy"), "magic.npy"); }, {"magic.npy", "magic"});
  expect_error([&] { io::read_npy_bytes(bytes_of(npy_file(4, header, "")), "future.npy"); }, {"future.npy", "version"});
  expect_error(
      [&] {
        io::read_npy_bytes(
            bytes_of(npy_file(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", std::string(8, '\0'))),
            "complex.npy");
      },
      {"complex.npy", "'<c8'"});
  expect_error(
      [&] { io::read_npy_bytes(bytes_of(npy_file(1, "{'descr': '<f4', 'shape': (1,), }", "abcd")), "nokey.npy"); },
      {"nokey.npy", "fortran_order"});
  expect_error(
      [&] {
        io::read_npy_bytes(bytes_of(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,", "")),
                           "cut.npy");
      },
      {"cut.npy", "header"});
  expect_error([] { io::read_npy("/nonexistent/missing.npy"); }, {"/nonexistent/missing.npy"});
}

// ================================================================ zip and pickle under .pth

TEST(TrackIo, PickleOfBytesThroughCodecsEncode) {
  // pickle.dumps(b'A\xe9\xff', protocol=2): the bytes travel as the str 'A\u00e9\u00ff' in UTF-8.
  const io::PickleRef v = io::unpickle(raw("\x80\x02"
                                           "c_codecs\nencode\nq\x00"
                                           "X\x05\x00\x00\x00"
                                           "A\xc3\xa9\xc3\xbf"
                                           "q\x01"
                                           "X\x06\x00\x00\x00latin1q\x02\x86q\x03Rq\x04."),
                                       "p2.pkl");
  ASSERT_EQ(v->kind, io::PickleValue::Kind::Bytes);
  EXPECT_EQ(v->text, std::string("A\xe9\xff"));
  // pickle.dumps(b'', protocol=2)
  const io::PickleRef empty = io::unpickle(raw("\x80\x02"
                                               "c__builtin__\nbytes\nq\x00)Rq\x01."),
                                           "empty.pkl");
  ASSERT_EQ(empty->kind, io::PickleValue::Kind::Bytes);
  EXPECT_TRUE(empty->text.empty());
}

TEST(TrackIo, PickleContainersAndMemo) {
  // pickle.dumps({'a': 7, 'b': l, 'c': l}, protocol=4) with l = [True, None, 256, -1]
  const io::PickleRef d = io::unpickle(raw("\x80\x04\x95\0\0\0\0\0\0\0\0}\x94(\x8c\x01"
                                           "a\x94K\x07\x8c\x01"
                                           "b]\x94(\x88NM\x00\x01J\xff\xff\xff\xff"
                                           "e\x8c\x01"
                                           "ch\x02u."),
                                       "p4.pkl");
  ASSERT_EQ(d->kind, io::PickleValue::Kind::Dict);
  ASSERT_EQ(d->items.size(), 6u);
  EXPECT_EQ(d->items[0]->text, "a");
  EXPECT_EQ(d->items[1]->integer, 7);
  const io::PickleRef& list = d->items[3];
  ASSERT_EQ(list->kind, io::PickleValue::Kind::List);
  ASSERT_EQ(list->items.size(), 4u);
  EXPECT_TRUE(list->items[0]->boolean);
  EXPECT_EQ(list->items[1]->kind, io::PickleValue::Kind::None);
  EXPECT_EQ(list->items[2]->integer, 256);
  EXPECT_EQ(list->items[3]->integer, -1);
  EXPECT_EQ(d->items[5], list);  // the memo hands back the same list
}

TEST(TrackIo, PickleErrorsNameFileAndOpcode) {
  expect_error(
      [] {
        io::unpickle(raw("\x80\x02X\x01\x00\x00\x00"
                         "aQ."),
                     "tensor.pkl");
      },
      {"tensor.pkl", "BINPERSID", "byte 8"});
  expect_error([] { io::unpickle(raw("\x80\x02\xff."), "junk.pkl"); }, {"junk.pkl", "0xff", "not a pickle opcode"});
  expect_error(
      [] {
        io::unpickle(raw("\x80\x02X\x10\x00\x00\x00"
                         "ab"),
                     "cut.pkl");
      },
      {"cut.pkl", "truncated"});
  expect_error(
      [] {
        io::unpickle(raw("\x80\x02"
                         "cos\nsystem\nX\x02\x00\x00\x00ls\x85R."),
                     "evil.pkl");
      },
      {"evil.pkl", "os.system"});
  expect_error(
      [] {
        io::unpickle(raw("\x80\x02"
                         "c_codecs\nencode\nX\x02\x00\x00\x00\xc4\x80X\x06\x00\x00\x00latin1\x86R."),
                     "wide.pkl");
      },
      {"wide.pkl", "U+0100"});
}

TEST(TrackIo, ArchiveRefusesDeflateAndCorruption) {
  TempDir tmp;
  const std::string original = read_text(fixture(kAti));
  const std::string entry = "ati_like_640x360/data.pkl";

  std::string deflated = original;
  deflated[central_record(deflated, entry) + 10] = 8;  // compression method: deflate
  write_text(tmp.file("deflated.pth"), deflated);
  expect_error([&] { read_tracks(tmp.file("deflated.pth"), sized()); }, {tmp.file("deflated.pth"), entry, "deflate"});

  std::string flipped = original;
  flipped[300] ^= 0x20;  // inside the pickle's data
  write_text(tmp.file("flipped.pth"), flipped);
  expect_error([&] { read_tracks(tmp.file("flipped.pth"), sized()); }, {tmp.file("flipped.pth"), entry, "CRC"});

  write_text(tmp.file("truncated.pth"), original.substr(0, 4000));
  expect_error([&] { read_tracks(tmp.file("truncated.pth"), sized()); }, {tmp.file("truncated.pth"), "zip"});
}

// ================================================================ JSON

TEST(TrackIo, JsonRoundTripIsBitExact) {
  TempDir tmp;
  TrackSet t;
  t.xy = at::randn({7, 4, 2}, at::kFloat) * 300;
  t.xy[0][0][0] = 0.1f;
  t.xy[0][0][1] = 1e-7f;
  t.xy[1][0][0] = 123456.789f;
  t.xy[1][0][1] = -0.0f;
  t.xy[2][0][0] = std::numeric_limits<float>::denorm_min();
  t.xy[2][0][1] = std::numeric_limits<float>::max();
  t.visible = at::rand({7, 4}) > 0.3;
  t.fps = 23.976;
  t.width = 321;
  t.height = 123;
  write_tracks_json(tmp.file("t.json"), t);
  expect_same_tracks(read_tracks(tmp.file("t.json")), t);
  EXPECT_TRUE(std::signbit(read_tracks(tmp.file("t.json")).xy[1][0][1].item<float>()));

  const TrackSet ati = read_tracks(fixture(kAti), sized());
  write_tracks_json(tmp.file("ati.json"), ati);
  expect_same_tracks(read_tracks_json(tmp.file("ati.json")), ati);
  const json doc = json::parse(read_text(tmp.file("ati.json")));
  EXPECT_EQ(doc["format"], "motionstream-tracks");
  EXPECT_EQ(doc["version"], 1);
  EXPECT_EQ(doc["frames"], 121);
  EXPECT_EQ(doc["tracks"][3]["points"][40], json::array({220.0, 240.0, 0}));
}

TEST(TrackIo, JsonAcceptsHandWrittenVariants) {
  TempDir tmp;
  write_text(tmp.file("hand.json"),
             R"({"format": "motionstream-tracks", "version": 1, "fps": 16, "width": 64, "height": 32, "frames": 2,
                 "note": "unknown keys are ignored",
                 "tracks": [{"id": "hand", "points": [[1, 2, true], [3.5, 4, false]]},
                            {"points": [[0, 0, 1], [1, 1, 0]]}]})");
  const TrackSet t = read_tracks(tmp.file("hand.json"));
  EXPECT_EQ(t.frames(), 2);
  EXPECT_EQ(t.points(), 2);
  EXPECT_EQ(t.xy[1][0][0].item<float>(), 3.5f);
  EXPECT_TRUE(at::equal(t.visible, bools({1, 1, 0, 0}).view({2, 2})));
  TrackReadOptions wrong = sized(640, 360);
  expect_error([&] { read_tracks(tmp.file("hand.json"), wrong); }, {tmp.file("hand.json"), "64x32"});
}

TEST(TrackIo, MalformedJsonNamesTheField) {
  TempDir tmp;
  const std::string head =
      R"({"format": "motionstream-tracks", "version": 1, "fps": 16, "width": 64, "height": 32, "frames": 2, )";
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"{\"format\": ", {"not valid JSON"}},
      {"[1, 2]", {"expected an object"}},
      {R"({"format": "other", "version": 1})", {"format: expected \"motionstream-tracks\""}},
      {R"({"format": "motionstream-tracks", "version": 2})", {"version: version 2 is not supported"}},
      {R"({"format": "motionstream-tracks", "version": 1, "width": 64})", {"fps: missing"}},
      {R"({"format": "motionstream-tracks", "version": 1, "fps": 16, "width": -64, "height": 32})",
       {"width: expected a positive integer"}},
      {head + R"("tracks": []})", {"holds no tracks"}},
      {head + R"("tracks": {}})", {"tracks: expected an array"}},
      {head + R"("tracks": [{"points": [[1, 2, 1], [1, 2, 1]]}, {"points": [[1, 2, 1]]}]})",
       {"tracks[1].points: expected an array of 2"}},
      {head + R"("tracks": [{"points": [[1, 2, 1], [1, 2]]}]})", {"tracks[0].points[1]: expected [x, y, visible]"}},
      {head + R"("tracks": [{"points": [[1, "2", 1], [1, 2, 1]]}]})",
       {"tracks[0].points[0]: expected [x, y, visible]"}},
      {head + R"("tracks": [{"points": [[1, 2, 1], [1, 2, 2]]}]})", {"tracks[0].points[1]: visible must be"}},
      {head + R"("tracks": [{"points": [[1, 1e39, 1], [1, 2, 1]]}]})", {"tracks[0].points[0]: coordinate", "finite"}},
      {head + R"("tracks": [{"id": [1], "points": [[1, 2, 1], [1, 2, 1]]}]})", {"tracks[0].id"}},
      {head + R"("tracks": [{"pts": []}]})", {"tracks[0].points: missing"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = tmp.file("bad" + std::to_string(i) + ".json");
    write_text(path, cases[i].first);
    std::vector<std::string> needles = {path + ": "};
    needles.insert(needles.end(), cases[i].second.begin(), cases[i].second.end());
    expect_error([&] { read_tracks(path); }, needles);
  }
}

// ================================================================ resampling and scaling

TEST(TrackIo, ResampleRoundTripRecoversLinearTracks) {
  const TrackSet t = linear_tracks(81, 16.0);
  const TrackSet fine = resample_tracks(t, 161, 32.0);
  ASSERT_EQ(fine.frames(), 161);
  EXPECT_EQ(fine.fps, 32.0);
  EXPECT_TRUE(at::allclose(fine.xy[3], (t.xy[1] + t.xy[2]) / 2, 1e-5, 1e-4));
  const TrackSet back = resample_tracks(fine, 81, 16.0);
  EXPECT_LT((back.xy - t.xy).abs().max().item<float>(), 1e-4);

  // Keeping the duration (fps <= 0) derives the same rates.
  const TrackSet fine_kept = resample_tracks(t, 161, 0.0);
  EXPECT_EQ(fine_kept.fps, 32.0);
  EXPECT_LT((resample_tracks(fine_kept, 81, 0.0).xy - t.xy).abs().max().item<float>(), 1e-4);

  // Times past the last source frame hold it.
  const TrackSet longer = resample_tracks(linear_tracks(5, 16.0), 9, 16.0);
  for (int64_t f = 4; f < 9; ++f) EXPECT_TRUE(at::equal(longer.xy[f], longer.xy[4])) << f;
}

TEST(TrackIo, ResampleVisibilityRule) {
  TrackSet t = linear_tracks(3, 16.0);
  t.visible = bools({1, 0, 0, 1, 1, 1}).view({3, 2});  // point 0: 1 0 1, point 1: 0 1 1
  const TrackSet r = resample_tracks(t, 5, 0.0);       // source frames 0, 0.5, 1, 1.5, 2
  EXPECT_TRUE(at::equal(r.visible.select(1, 0), bools({1, 0, 0, 0, 1})));
  EXPECT_TRUE(at::equal(r.visible.select(1, 1), bools({0, 0, 1, 1, 1})));
}

TEST(TrackIo, ScaleFollowsImageSize) {
  const TrackSet t = linear_tracks(4, 16.0);
  const TrackSet doubled = scale_tracks(t, 1280, 720);
  EXPECT_EQ(doubled.width, 1280);
  EXPECT_EQ(doubled.height, 720);
  EXPECT_TRUE(at::equal(doubled.xy, t.xy * 2));
  EXPECT_TRUE(at::equal(doubled.visible, t.visible));
  const TrackSet squeezed = scale_tracks(t, 320, 720);  // x halves, y doubles
  EXPECT_TRUE(at::allclose(squeezed.xy.select(2, 0), t.xy.select(2, 0) / 2));
  EXPECT_TRUE(at::allclose(squeezed.xy.select(2, 1), t.xy.select(2, 1) * 2));
  EXPECT_THROW(ati_pick_frames(t), std::invalid_argument);
}

// ================================================================ bad input

TEST(TrackIo, BadInputNamesTheFile) {
  TempDir tmp;
  const std::string missing = tmp.file("missing");
  expect_error([&] { read_tracks(missing + ".json"); }, {missing + ".json"});
  expect_error([&] { read_tracks(missing + ".npy", sized()); }, {missing + ".npy"});
  expect_error([&] { read_tracks(missing + ".pth", sized()); }, {missing + ".pth"});
  expect_error([&] { read_tracks(tmp.file("tracks.txt")); }, {tmp.file("tracks.txt"), "extension"});

  // Image size missing for formats that do not record it.
  expect_error([&] { read_tracks(fixture(kNpyTracks)); }, {fixture(kNpyTracks), "size"});
  expect_error([&] { read_tracks(fixture(kAti)); }, {fixture(kAti), "size"});

  // Corrupt .npy.
  const std::string cut = tmp.file("cut.npy");
  write_text(cut, read_text(fixture(kNpyTracks)).substr(0, 1000));
  expect_error([&] { read_tracks(cut, sized()); }, {cut, "truncated"});

  // NaN coordinates.
  at::Tensor xy = at::ones({1, 81, 5, 2}, at::kFloat);
  xy[0][12][3][1] = std::nanf("");
  io::write_npy(tmp.file("nan.npy"), xy);
  expect_error([&] { read_tracks(tmp.file("nan.npy"), sized()); }, {tmp.file("nan.npy"), "track 3, frame 12", "NaN"});

  // Zero tracks.
  io::write_npy(tmp.file("none.npy"), at::zeros({81, 0, 2}, at::kFloat));
  expect_error([&] { read_tracks(tmp.file("none.npy"), sized()); }, {tmp.file("none.npy"), "no tracks"});

  // Wrong dtypes and shapes.
  io::write_npy(tmp.file("int.npy"), at::zeros({81, 5, 2}, at::kLong));
  expect_error([&] { read_tracks(tmp.file("int.npy"), sized()); }, {tmp.file("int.npy"), "float32", "<i8"});
  io::write_npy(tmp.file("three.npy"), at::zeros({81, 5, 3}, at::kFloat));
  expect_error([&] { read_tracks(tmp.file("three.npy"), sized()); }, {tmp.file("three.npy"), "(81, 5, 3)"});
  io::write_npy(tmp.file("batch.npy"), at::zeros({2, 81, 5, 2}, at::kFloat));
  expect_error([&] { read_tracks(tmp.file("batch.npy"), sized()); }, {tmp.file("batch.npy"), "batch of 2"});

  // Visibility that does not fit the tracks, or is not bool.
  TrackReadOptions options = sized();
  options.visibility_path = tmp.file("vis80.npy");
  io::write_npy(options.visibility_path, at::ones({1, 80, 5}, at::kBool));
  expect_error([&] { read_tracks(fixture(kNpyTracks), options); }, {options.visibility_path, "(1, 80, 5)"});
  options.visibility_path = tmp.file("visf.npy");
  io::write_npy(options.visibility_path, at::ones({1, 81, 5}, at::kFloat));
  expect_error([&] { read_tracks(fixture(kNpyTracks), options); }, {options.visibility_path, "bool"});
  // CoTracker's (1, T, N, 1) is fine.
  options.visibility_path = tmp.file("vis4d.npy");
  io::write_npy(options.visibility_path, at::ones({1, 81, 5, 1}, at::kBool));
  EXPECT_TRUE(read_tracks(fixture(kNpyTracks), options).visible.all().item<bool>());

  // An .npy that is really something else, and a .pth that is not a zip.
  write_text(tmp.file("text.npy"), "hello");
  expect_error([&] { read_tracks(tmp.file("text.npy"), sized()); }, {tmp.file("text.npy"), "magic"});
  write_text(tmp.file("text.pth"), "hello, this is not an archive");
  expect_error([&] { read_tracks(tmp.file("text.pth"), sized()); }, {tmp.file("text.pth"), "zip"});
}

TEST(TrackIo, WritesWanMoveNpyLayout) {
  TempDir tmp;
  TrackReadOptions options = sized();
  options.visibility_path = fixture(kNpyVisibility);
  const TrackSet t = read_tracks(fixture(kNpyTracks), options);
  write_tracks_npy(tmp.file("t.npy"), tmp.file("v.npy"), t);
  EXPECT_EQ(io::read_file_bytes(tmp.file("t.npy")), io::read_file_bytes(fixture(kNpyTracks)));
  EXPECT_EQ(io::read_file_bytes(tmp.file("v.npy")), io::read_file_bytes(fixture(kNpyVisibility)));
}
