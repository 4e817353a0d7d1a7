#include "motionstream/io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include <nlohmann/json.hpp>
#include "scoped_temp_dir.h"

namespace {

namespace fs = std::filesystem;
using namespace ms::io;

// A fresh folder per test, removed afterwards.
struct TempDir : ms::test::ScopedTempDir {
  TempDir() : ScopedTempDir("safetensors") {}
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Length prefix (little-endian u64) + header text + data, assembled by hand rather than by the writer.
std::vector<uint8_t> raw_file(const std::string& header, const std::vector<uint8_t>& data = {},
                              uint64_t length_field = std::numeric_limits<uint64_t>::max()) {
  const uint64_t n = length_field == std::numeric_limits<uint64_t>::max() ? header.size() : length_field;
  std::vector<uint8_t> bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(n >> (8 * i)));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const SafetensorsError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a SafetensorsError";
  return "";
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

std::string error_opening(const std::string& path) {
  return error_of([&] { SafetensorsFile file(path); });
}

uint32_t bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  return x;
}

float from_bits(uint32_t x) {
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

}  // namespace

// ---- round trips and format conformance ----

TEST(Safetensors, RoundTripsDtypesShapesAndMetadata) {
  TempDir tmp;
  const std::string path = tmp.file("model.safetensors");
  const std::vector<float> f32 = {1.5f, -2.25f, 3e-8f, 1e30f, -0.0f, 7.0f};
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x7BFF, 0x0001};    // 1, -2, 65504, 2^-24
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC040, 0x7F80, 0x0001};   // 1, -3, inf, smallest subnormal
  const int64_t scalar = -1234567890123LL;
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "ünïcödé"}};

  write_safetensors(path,
                    {{"w.f32", DType::F32, {2, 3}, f32.data()},
                     {"w.f16", DType::F16, {4}, f16.data()},
                     {"w.bf16", DType::BF16, {2, 2}, bf16.data()},
                     {"step", DType::I64, {}, &scalar},
                     {"empty", DType::F32, {0, 3}, nullptr}},
                    meta);
  SafetensorsFile opened(path);
  const SafetensorsFile file(std::move(opened));  // moving keeps the mapping valid

  EXPECT_EQ(file.metadata(), meta);
  ASSERT_EQ(file.tensors().size(), 5u);
  for (size_t i = 1; i < file.tensors().size(); ++i) EXPECT_LE(file.tensors()[i - 1].begin, file.tensors()[i].begin);
  EXPECT_EQ(file.find("absent"), nullptr);

  const TensorInfo& a = file.at("w.f32");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.numel(), 6);
  ASSERT_EQ(a.nbytes(), 24u);
  EXPECT_EQ(std::memcmp(file.data(a), f32.data(), 24), 0);
  const std::vector<float> back = file.to_float(a);
  ASSERT_EQ(back.size(), f32.size());
  for (size_t i = 0; i < f32.size(); ++i) EXPECT_EQ(bits(back[i]), bits(f32[i])) << i;

  const TensorInfo& h = file.at("w.f16");
  EXPECT_EQ(h.dtype, DType::F16);
  ASSERT_EQ(h.nbytes(), 8u);
  EXPECT_EQ(std::memcmp(file.data(h), f16.data(), 8), 0);
  EXPECT_EQ(file.to_float(h), (std::vector<float>{1.0f, -2.0f, 65504.0f, 0x1p-24f}));

  const TensorInfo& b = file.at("w.bf16");
  EXPECT_EQ(b.dtype, DType::BF16);
  EXPECT_EQ(b.shape, (std::vector<int64_t>{2, 2}));
  ASSERT_EQ(b.nbytes(), 8u);
  EXPECT_EQ(std::memcmp(file.data(b), bf16.data(), 8), 0);
  EXPECT_EQ(file.to_float(b), (std::vector<float>{1.0f, -3.0f, INFINITY, 0x1p-133f}));

  const TensorInfo& s = file.at("step");
  EXPECT_EQ(s.dtype, DType::I64);
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.numel(), 1);
  ASSERT_EQ(s.nbytes(), 8u);
  int64_t s_back = 0;
  std::memcpy(&s_back, file.data(s), 8);
  EXPECT_EQ(s_back, scalar);

  const TensorInfo& e = file.at("empty");
  EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.nbytes(), 0u);
  EXPECT_TRUE(file.to_float(e).empty());
}

TEST(Safetensors, WriterOutputParsesWithIndependentReader) {
  TempDir tmp;
  const std::string path = tmp.file("out.safetensors");
  const std::vector<float> z = {1.0f, 2.0f, 3.0f};                  // 12 bytes: later offsets are not multiples of 8
  const std::vector<int8_t> a = {-1, 2, -3, 4, -5};
  const std::vector<uint16_t> m = {0x3F80, 0x4000};
  write_safetensors(path,
                    {{"z", DType::F32, {3}, z.data()}, {"a", DType::I8, {5}, a.data()}, {"m", DType::BF16, {2, 1}, m.data()}},
                    {{"k", "v"}});
  EXPECT_EQ(tmp.entries(), 1u) << "the temp file must be renamed away";

  const std::vector<uint8_t> bytes = read_bytes(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  EXPECT_EQ((8 + n) % 8, 0u) << "data buffer must start 8-byte aligned";
  ASSERT_EQ(bytes.size(), 8 + n + 12 + 5 + 4);

  const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
  ASSERT_TRUE(header.is_object());
  EXPECT_EQ(header.size(), 4u);
  EXPECT_EQ(header["__metadata__"], (nlohmann::json{{"k", "v"}}));
  // Laid out in the order given, not alphabetically.
  EXPECT_EQ(header["z"], (nlohmann::json{{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {0, 12}}}));
  EXPECT_EQ(header["a"], (nlohmann::json{{"dtype", "I8"}, {"shape", {5}}, {"data_offsets", {12, 17}}}));
  EXPECT_EQ(header["m"], (nlohmann::json{{"dtype", "BF16"}, {"shape", {2, 1}}, {"data_offsets", {17, 21}}}));

  const uint8_t* data = bytes.data() + 8 + n;
  EXPECT_EQ(std::memcmp(data, z.data(), 12), 0);
  EXPECT_EQ(std::memcmp(data + 12, a.data(), 5), 0);
  EXPECT_EQ(std::memcmp(data + 17, m.data(), 4), 0);

  // Whatever the header length modulo 8, the padded header stays valid JSON and aligns the data.
  for (size_t len = 1; len <= 8; ++len) {
    write_safetensors(path, {{std::string(len, 'n'), DType::I8, {5}, a.data()}});
    const std::vector<uint8_t> raw = read_bytes(path);
    uint64_t padded = 0;
    for (int i = 7; i >= 0; --i) padded = (padded << 8) | raw[i];
    EXPECT_EQ((8 + padded) % 8, 0u) << "name length " << len;
    EXPECT_EQ(raw.size(), 8 + padded + 5);
    EXPECT_TRUE(nlohmann::json::accept(raw.begin() + 8, raw.begin() + 8 + static_cast<long>(padded)));
  }
}

TEST(Safetensors, ReadsHandWrittenFile) {
  TempDir tmp;
  const std::string path = tmp.file("hand.safetensors");
  // Keys are not in offset order, the header has trailing padding of odd length (so the data is misaligned), and a
  // zero-size tensor sits inside another tensor's range, which is not an overlap.
  const std::string header =
      R"({"d":{"dtype":"F64","shape":[],"data_offsets":[10,18]},)"
      R"("h":{"shape":[1],"dtype":"F16","data_offsets":[8,10]},)"
      R"("e":{"dtype":"I8","shape":[0],"data_offsets":[4,4]},)"
      R"("__metadata__":{"format":"pt"},)"
      R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  )";
  const std::vector<uint8_t> data = {
      0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0,  // w: 1.0f, -2.5f
      0x00, 0x3E,                                      // h: 1.5 as half
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xE0, 0x3F,  // d: 0.5 as double
  };
  ASSERT_EQ(header.size() % 2, 1u);
  write_bytes(path, raw_file(header, data));

  const SafetensorsFile file(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  std::vector<std::string> order;
  for (const auto& t : file.tensors()) order.push_back(t.name);
  EXPECT_EQ(order, (std::vector<std::string>{"w", "e", "h", "d"}));

  EXPECT_EQ(file.to_float(file.at("w")), (std::vector<float>{1.0f, -2.5f}));
  EXPECT_EQ(file.to_float(file.at("h")), (std::vector<float>{1.5f}));
  EXPECT_EQ(file.to_float(file.at("d")), (std::vector<float>{0.5f}));
  EXPECT_EQ(file.at("d").numel(), 1);
  EXPECT_EQ(file.at("e").nbytes(), 0u);
  EXPECT_EQ(file.data(file.at("h"))[1], 0x3E);
}

TEST(Safetensors, DTypeNamesAndSizes) {
  for (DType d : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16, DType::I8,
                  DType::U8, DType::BOOL})
    EXPECT_EQ(parse_dtype(dtype_name(d)), d);
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::BOOL), 1u);
  EXPECT_STREQ(dtype_name(DType::BF16), "BF16");
  EXPECT_EQ(parse_dtype("f32"), std::nullopt);
  EXPECT_EQ(parse_dtype("F8_E9M9"), std::nullopt);
}

// ---- half / bfloat16 ----

TEST(Safetensors, HalfKnownBitPatterns) {
  EXPECT_EQ(float_to_half(1.0f), 0x3C00);
  EXPECT_EQ(float_to_half(-1.0f), 0xBC00);
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_half(0x1p-14f), 0x0400);  // smallest normal
  EXPECT_EQ(float_to_half(0x1p-24f), 0x0001);  // smallest subnormal
  EXPECT_EQ(half_to_float(0x3C00), 1.0f);
  EXPECT_EQ(half_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(half_to_float(0x0001), 0x1p-24f);
  EXPECT_NEAR(half_to_float(0x0001), 5.96e-8f, 1e-10f);
  EXPECT_EQ(half_to_float(0x03FF), 0x3FFp-24f);  // largest subnormal
  EXPECT_EQ(half_to_float(0x7C00), INFINITY);
  EXPECT_EQ(half_to_float(0xFC00), -INFINITY);
  EXPECT_EQ(float_to_half(INFINITY), 0x7C00);
  EXPECT_EQ(float_to_half(-INFINITY), 0xFC00);
  EXPECT_EQ(float_to_half(1e6f), 0x7C00);  // overflow
  EXPECT_EQ(float_to_half(-1e6f), 0xFC00);
  EXPECT_EQ(float_to_half(1e-10f), 0x0000);  // underflow keeps the sign
  EXPECT_EQ(float_to_half(-1e-10f), 0x8000);

  EXPECT_TRUE(std::isnan(half_to_float(0x7E00)));
  EXPECT_TRUE(std::isnan(half_to_float(0xFC01)));
  for (uint32_t nan : {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FA00000u}) {
    const uint16_t h = float_to_half(from_bits(nan));
    EXPECT_TRUE((h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0) << std::hex << nan << " -> " << h;
  }
}

TEST(Safetensors, HalfRoundsToNearestEven) {
  EXPECT_EQ(float_to_half(1.0f + 0x1p-11f), 0x3C00);             // tie, down to even
  EXPECT_EQ(float_to_half(1.0f + 3 * 0x1p-11f), 0x3C02);         // tie, up to even
  EXPECT_EQ(float_to_half(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01);  // just past the tie
  EXPECT_EQ(float_to_half(65519.0f), 0x7BFF);
  EXPECT_EQ(float_to_half(65520.0f), 0x7C00);  // tie between 65504 (odd) and 2^16 goes to inf
  EXPECT_EQ(float_to_half(0x1p-25f), 0x0000);  // tie between 0 and 2^-24
  EXPECT_EQ(float_to_half(from_bits(bits(0x1p-25f) + 1)), 0x0001);
  EXPECT_EQ(float_to_half(1.5f * 0x1p-24f), 0x0002);              // subnormal tie, up to even
  EXPECT_EQ(float_to_half(2.5f * 0x1p-24f), 0x0002);              // subnormal tie, down to even
  EXPECT_EQ(float_to_half(0x1p-14f - 0x1p-25f), 0x0400);          // largest subnormal tie carries into a normal
  EXPECT_EQ(float_to_half(-(1.0f + 3 * 0x1p-11f)), 0xBC02);
}

TEST(Safetensors, HalfRoundTripsEveryPattern) {
  int mismatches = 0, nans = 0;
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      ++nans;
      if (!std::isnan(half_to_float(float_to_half(f)))) ++mismatches;
    } else if (float_to_half(f) != h) {
      if (mismatches++ == 0) ADD_FAILURE() << "first mismatch at 0x" << std::hex << h;
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(nans, 2 * 1023);
}

TEST(Safetensors, Bf16KnownBitPatternsAndRounding) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(bf16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f), 0x3F80);      // tie, down to even
  EXPECT_EQ(float_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);  // tie, up to even
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds up to inf
  EXPECT_EQ(float_to_bf16(INFINITY), 0x7F80);
  EXPECT_EQ(float_to_bf16(-INFINITY), 0xFF80);
  EXPECT_EQ(float_to_bf16(0x1p-130f), 0x0008);  // float subnormal
  for (uint32_t nan : {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FFFFFFFu})
    EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(from_bits(nan))))) << std::hex << nan;
}

TEST(Safetensors, Bf16RoundTripsEveryPattern) {
  int mismatches = 0;
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const float f = bf16_to_float(static_cast<uint16_t>(b));
    const bool ok = std::isnan(f) ? std::isnan(bf16_to_float(float_to_bf16(f))) : float_to_bf16(f) == b;
    if (!ok && mismatches++ == 0) ADD_FAILURE() << "first mismatch at 0x" << std::hex << b;
  }
  EXPECT_EQ(mismatches, 0);
}

// ---- errors ----

TEST(Safetensors, ErrorTruncatedData) {
  TempDir tmp;
  const std::string path = tmp.file("cut.safetensors");
  const std::vector<float> w(4, 1.0f);
  write_safetensors(path, {{"blocks.0.weight", DType::F32, {4}, w.data()}});
  fs::resize_file(path, fs::file_size(path) - 4);
  const std::string msg = error_opening(path);
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "'blocks.0.weight'"));
  EXPECT_TRUE(contains(msg, "truncated"));
}

TEST(Safetensors, ErrorHeaderLengthPastEnd) {
  TempDir tmp;
  const std::string path = tmp.file("long_header.safetensors");
  write_bytes(path, raw_file("{}", {}, 1000));
  const std::string msg = error_opening(path);
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "header length 1000"));
}

TEST(Safetensors, ErrorBadHeaderJson) {
  TempDir tmp;
  const std::string path = tmp.file("bad_json.safetensors");
  write_bytes(path, raw_file(R"({"w": {"dtype": "F32",)"));
  const std::string msg = error_opening(path);
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "not valid JSON"));
}

TEST(Safetensors, ErrorUnknownDtype) {
  TempDir tmp;
  const std::string path = tmp.file("dtype.safetensors");
  write_bytes(path, raw_file(R"({"w":{"dtype":"F8_E9M9","shape":[1],"data_offsets":[0,1]}})", {0}));
  const std::string msg = error_opening(path);
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "tensor 'w'"));
  EXPECT_TRUE(contains(msg, "unknown dtype 'F8_E9M9'"));
}

TEST(Safetensors, ErrorShapeOffsetMismatch) {
  TempDir tmp;
  const std::string path = tmp.file("model.safetensors");
  write_bytes(path, raw_file(R"({"blocks.0.ffn.0.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}})",
                             std::vector<uint8_t>(12)));
  EXPECT_EQ(error_opening(path), path + ": tensor 'blocks.0.ffn.0.weight': data_offsets [0, 12] hold 12 bytes but "
                                        "shape [2, 3] of F32 needs 24");

  // A shape whose byte count overflows 64 bits must not wrap around to a matching size.
  write_bytes(path, raw_file(R"({"big":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})"));
  const std::string msg = error_opening(path);
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "'big'"));
}

TEST(Safetensors, ErrorOverlappingTensors) {
  TempDir tmp;
  const std::string path = tmp.file("overlap.safetensors");
  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                             R"("c":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})",
                             std::vector<uint8_t>(24)));
  const std::string msg = error_opening(path);
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "'a'"));
  EXPECT_TRUE(contains(msg, "'b'"));
  EXPECT_TRUE(contains(msg, "overlap"));
}

TEST(Safetensors, ErrorMissingFile) {
  TempDir tmp;
  const std::string path = tmp.file("nowhere.safetensors");
  const std::string msg = error_opening(path);
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "cannot open"));
}

TEST(Safetensors, ErrorAtMissingTensor) {
  TempDir tmp;
  const std::string path = tmp.file("small.safetensors");
  const float one = 1.0f;
  write_safetensors(path, {{"present", DType::F32, {}, &one}});
  const SafetensorsFile file(path);
  const std::string msg = error_of([&] { file.at("blocks.9.missing"); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "'blocks.9.missing'"));
}

TEST(Safetensors, ErrorToFloatOnI64) {
  TempDir tmp;
  const std::string path = tmp.file("ints.safetensors");
  const std::vector<int64_t> ids = {1, 2, 3};
  write_safetensors(path, {{"ids", DType::I64, {3}, ids.data()}});
  const SafetensorsFile file(path);
  const std::string msg = error_of([&] { file.to_float(file.at("ids")); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "'ids'"));
  EXPECT_TRUE(contains(msg, "I64"));
}

TEST(Safetensors, ErrorMalformedHeaders) {
  struct Case {
    const char* label;
    std::vector<uint8_t> bytes;
    std::vector<std::string> parts;  // besides the file name
  };
  const std::vector<uint8_t> four(4);
  const std::vector<Case> cases = {
      {"empty file", {}, {"empty"}},
      {"short file", {1, 2, 3}, {"shorter than"}},
      {"huge header length", raw_file("{}", {}, 200'000'000), {"100 MB"}},
      {"not an object", raw_file("[1, 2]"), {"not a JSON object"}},
      {"entry not an object", raw_file(R"({"t": 5})"), {"'t'", "not a JSON object"}},
      {"missing shape", raw_file(R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", four), {"'t'", "missing 'shape'"}},
      {"missing dtype", raw_file(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", four), {"'t'", "missing 'dtype'"}},
      {"missing offsets", raw_file(R"({"t":{"dtype":"F32","shape":[1]}})", four), {"'t'", "missing 'data_offsets'"}},
      {"dtype not a string", raw_file(R"({"t":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", four), {"'t'", "dtype"}},
      {"negative dim", raw_file(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four), {"'t'", "negative"}},
      {"float dim", raw_file(R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", four), {"'t'", "non-integer"}},
      {"string dim", raw_file(R"({"t":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", four), {"'t'", "non-integer"}},
      {"one offset", raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", four), {"'t'", "data_offsets"}},
      {"negative offset", raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", four),
       {"'t'", "data_offsets"}},
      {"begin after end", raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", four),
       {"'t'", "begin after end"}},
      {"metadata value not a string", raw_file(R"({"__metadata__":{"epoch":3}})"), {"'epoch'", "not a string"}},
      {"metadata not an object", raw_file(R"({"__metadata__":[]})"), {"__metadata__"}},
  };
  TempDir tmp;
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].label);
    const std::string path = tmp.file("case" + std::to_string(i) + ".safetensors");
    write_bytes(path, cases[i].bytes);
    const std::string msg = error_opening(path);
    EXPECT_TRUE(contains(msg, path));
    for (const auto& part : cases[i].parts) EXPECT_TRUE(contains(msg, part));
  }
}

TEST(Safetensors, WriterRejectsBadNamesAndKeepsTheOldFile) {
  TempDir tmp;
  const std::string path = tmp.file("keep.safetensors");
  const float v = 2.0f;
  write_safetensors(path, {{"v", DType::F32, {}, &v}});
  const std::vector<uint8_t> before = read_bytes(path);

  const std::vector<std::pair<std::vector<TensorToWrite>, std::string>> bad = {
      {{{"x", DType::F32, {}, &v}, {"x", DType::F32, {}, &v}}, "duplicate tensor name 'x'"},
      {{{"", DType::F32, {}, &v}}, "empty tensor name"},
      {{{"__metadata__", DType::F32, {}, &v}}, "'__metadata__'"},
  };
  for (const auto& [tensors, part] : bad) {
    const std::string msg = error_of([&] { write_safetensors(path, tensors); });
    EXPECT_TRUE(contains(msg, path));
    EXPECT_TRUE(contains(msg, part));
  }
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(tmp.entries(), 1u);

  const float w = 3.0f;
  write_safetensors(path, {{"w", DType::F32, {1}, &w}});  // a successful write replaces the file
  const SafetensorsFile file(path);
  EXPECT_EQ(file.find("v"), nullptr);
  EXPECT_EQ(file.to_float(file.at("w")), (std::vector<float>{3.0f}));
}
