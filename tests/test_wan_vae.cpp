// The Wan2.1 autoencoder: layout against the published names, causal convolution against a plain zero-padded
// convolution, chunk-wise (cached) passes against whole-sequence passes, frame bookkeeping.
#include <gtest/gtest.h>

#include <torch/serialize.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "motionstream/io/state_dict.h"
#include "motionstream/io/tensor_file.h"
#include "motionstream/io/torch_archive.h"
#include "motionstream/io/torch_state_dict.h"
#include "motionstream/model/vae/wan_latent_codec.h"
#include "motionstream/model/vae/wan_vae.h"
#include "test_util.h"

using namespace ms;

namespace {

// Random weights (norm gains near 1, small biases), so that every layer visibly shapes the output.
void randomize(WanVae& vae, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& item : vae->named_parameters()) {
    auto& p = item.value();
    if (item.key().find("gamma") != std::string::npos) {
      p.copy_(at::empty(p.sizes()).normal_(1.0, 0.1, gen));
    } else if (p.dim() > 1) {
      const double fan_in = static_cast<double>(p.numel() / p.size(0));
      p.copy_(at::empty(p.sizes()).normal_(0.0, 1.0, gen) * std::sqrt(1.0 / fan_in));
    } else {
      p.copy_(at::empty(p.sizes()).normal_(0.0, 0.1, gen));
    }
  }
}

WanVae tiny_vae(uint64_t seed) {
  WanVae vae(wan_vae_preset("wan-vae-tiny"));
  randomize(vae, seed);
  vae->eval();
  return vae;
}

// A module's tensors under its own names (the published ones), converted to `dtype`, ready to write.
struct TensorsToWrite {
  std::vector<at::Tensor> keep;  // owns the data the entries point at
  std::vector<io::TensorToWrite> entries;
  void add(const std::string& name, const at::Tensor& t, io::DType dtype) {
    const auto type = dtype == io::DType::F16 ? at::kHalf : dtype == io::DType::BF16 ? at::kBFloat16 : at::kFloat;
    keep.push_back(t.detach().to(type).contiguous());
    entries.push_back({name, dtype, keep.back().sizes().vec(), keep.back().data_ptr()});
  }
};
TensorsToWrite tensors_of(WanVae& vae, io::DType dtype) {
  TensorsToWrite out;
  out.keep.reserve(1000);  // entries point into keep
  for (const auto& p : vae->named_parameters()) out.add(p.key(), p.value(), dtype);
  return out;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

void truncate_file(const std::filesystem::path& path, double keep) {
  std::filesystem::resize_file(path, static_cast<uintmax_t>(std::filesystem::file_size(path) * keep));
}

// Largest difference relative to the reference's largest magnitude.
double relative_diff(const at::Tensor& a, const at::Tensor& reference) {
  return test::max_abs_diff(a, reference) / reference.abs().max().item<double>();
}

}  // namespace

TEST(WanVaeLayout, ModuleMatchesTheManifestNameByName) {
  const auto config = wan_vae_preset("wan-vae-tiny");
  WanVae vae(config);
  std::vector<std::pair<std::string, std::vector<int64_t>>> module;
  for (const auto& p : vae->named_parameters()) module.push_back({p.key(), p.value().sizes().vec()});
  EXPECT_EQ(vae->named_buffers().size(), 0u);
  const auto manifest = config.parameter_shapes();
  ASSERT_EQ(module.size(), manifest.size());
  for (size_t i = 0; i < module.size(); ++i) EXPECT_EQ(module[i], manifest[i]) << "tensor " << i;
}

TEST(WanVaeLayout, PublishedManifestHasTheWanNamesAndCounts) {
  const auto config = wan_vae_preset("wan-vae");
  const auto shapes = config.parameter_shapes();  // nothing allocated
  std::map<std::string, std::vector<int64_t>> by_name(shapes.begin(), shapes.end());
  ASSERT_EQ(by_name.size(), shapes.size());  // no name twice
  using S = std::vector<int64_t>;
  EXPECT_EQ(by_name.at("encoder.conv1.weight"), (S{96, 3, 3, 3, 3}));
  EXPECT_EQ(by_name.at("encoder.downsamples.0.residual.0.gamma"), (S{96, 1, 1, 1}));
  EXPECT_EQ(by_name.at("encoder.downsamples.2.resample.1.weight"), (S{96, 96, 3, 3}));  // downsample2d
  EXPECT_EQ(by_name.count("encoder.downsamples.2.time_conv.weight"), 0u);
  EXPECT_EQ(by_name.at("encoder.downsamples.3.shortcut.weight"), (S{192, 96, 1, 1, 1}));
  EXPECT_EQ(by_name.at("encoder.downsamples.5.time_conv.weight"), (S{192, 192, 3, 1, 1}));  // downsample3d
  EXPECT_EQ(by_name.at("encoder.downsamples.8.time_conv.weight"), (S{384, 384, 3, 1, 1}));
  EXPECT_EQ(by_name.at("encoder.downsamples.10.residual.6.weight"), (S{384, 384, 3, 3, 3}));
  EXPECT_EQ(by_name.at("encoder.middle.1.norm.gamma"), (S{384, 1, 1}));
  EXPECT_EQ(by_name.at("encoder.middle.1.to_qkv.weight"), (S{1152, 384, 1, 1}));
  EXPECT_EQ(by_name.at("encoder.head.2.weight"), (S{32, 384, 3, 3, 3}));
  EXPECT_EQ(by_name.at("conv1.weight"), (S{32, 32, 1, 1, 1}));
  EXPECT_EQ(by_name.at("conv2.weight"), (S{16, 16, 1, 1, 1}));
  EXPECT_EQ(by_name.at("decoder.conv1.weight"), (S{384, 16, 3, 3, 3}));
  EXPECT_EQ(by_name.at("decoder.upsamples.3.time_conv.weight"), (S{768, 384, 3, 1, 1}));  // upsample3d
  EXPECT_EQ(by_name.at("decoder.upsamples.3.resample.1.weight"), (S{192, 384, 3, 3}));
  EXPECT_EQ(by_name.at("decoder.upsamples.4.shortcut.weight"), (S{384, 192, 1, 1, 1}));
  EXPECT_EQ(by_name.at("decoder.upsamples.7.time_conv.weight"), (S{768, 384, 3, 1, 1}));
  EXPECT_EQ(by_name.at("decoder.upsamples.11.resample.1.weight"), (S{96, 192, 3, 3}));  // upsample2d
  EXPECT_EQ(by_name.count("decoder.upsamples.11.time_conv.weight"), 0u);
  EXPECT_EQ(by_name.at("decoder.upsamples.12.residual.0.gamma"), (S{96, 1, 1, 1}));
  EXPECT_EQ(by_name.count("decoder.upsamples.15.residual.0.gamma"), 0u);
  EXPECT_EQ(by_name.at("decoder.head.2.weight"), (S{3, 96, 3, 3, 3}));
  EXPECT_EQ(shapes.size(), 194u);
  EXPECT_EQ(config.parameter_count(), 126892531);  // ~127M, as published
}

TEST(WanVaeCausalConv, EqualsConvolutionOfAnExplicitlyZeroPaddedInput) {
  CausalConv3d conv(2, 3, 3, 3);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 2, 5, 6, 7});  // [B, C, T, H, W]
  // Reference: two zero frames in front (none behind), one zero pixel on every side, then a plain convolution.
  auto padded = torch::zeros({2, 2, 5 + 2, 6 + 2, 7 + 2});
  padded.narrow(2, 2, 5).narrow(3, 1, 6).narrow(4, 1, 7).copy_(x);
  auto expected = at::conv3d(padded, conv->weight, conv->bias);
  ASSERT_EQ(expected.sizes(), (at::IntArrayRef{2, 3, 5, 6, 7}));
  EXPECT_LT(test::max_abs_diff(conv->forward(x), expected), 1e-5);

  // Output frame 0 sees only input frame 0 (through the kernel's last tap).
  auto frame0 = at::conv3d(x.narrow(2, 0, 1), conv->weight.narrow(2, 2, 1), conv->bias, 1, {0, 1, 1});
  EXPECT_LT(test::max_abs_diff(conv->forward(x).narrow(2, 0, 1), frame0), 1e-5);

  // Chunks of 1, 2 and 2 frames through the cache give the same frames.
  at::Tensor past;
  std::vector<at::Tensor> pieces;
  for (auto [start, len] : {std::pair<int64_t, int64_t>{0, 1}, {1, 2}, {3, 2}})
    pieces.push_back(conv->forward(x.narrow(2, start, len), past));
  EXPECT_EQ(past.size(2), 2);  // the cache holds the last two input frames
  EXPECT_LT(test::max_abs_diff(at::cat(pieces, 2), expected), 1e-5);
}

TEST(WanVaeCausalConv, RmsNormIsChannelL2NormTimesSqrtC) {
  WanRmsNorm norm(4, false);
  torch::NoGradGuard no_grad;
  norm->gamma.copy_(torch::tensor({1.0f, 2.0f, 0.5f, -1.0f}).view({4, 1, 1, 1}));
  auto x = torch::randn({1, 4, 2, 3, 3});
  auto expected = x / x.pow(2).sum(1, true).sqrt() * 2.0 * norm->gamma;  // sqrt(4) = 2
  EXPECT_LT(test::max_abs_diff(norm->forward(x), expected), 1e-5);
}

TEST(WanVae, FrameBookkeepingFollowsTheOnePlusFourKLayout) {
  WanVae vae = tiny_vae(1);
  torch::NoGradGuard no_grad;
  auto frames = torch::rand({2, 3, 9, 16, 24}) * 2 - 1;
  auto mu = vae->encode(frames);
  EXPECT_EQ(mu.sizes(), (at::IntArrayRef{2, 16, 3, 2, 3}));
  auto back = vae->decode(mu);
  EXPECT_EQ(back.sizes(), frames.sizes());
  EXPECT_EQ(vae->decode(mu.narrow(2, 0, 1)).size(2), 1);  // latent 0 alone -> frame 0
  EXPECT_THROW(vae->encode(torch::rand({1, 3, 8, 16, 16})), c10::Error);
  EXPECT_THROW(vae->encode(torch::rand({1, 3, 5, 12, 16})), c10::Error);
  EXPECT_THROW(vae->decode(torch::rand({1, 4, 2, 2, 2})), c10::Error);
}

TEST(WanVae, ChunkwiseEncodeEqualsWholeSequenceEncode) {
  WanVae vae = tiny_vae(2);
  torch::NoGradGuard no_grad;
  auto frames = torch::rand({1, 3, 13, 16, 16}) * 2 - 1;
  auto whole = vae->encode_whole(frames);  // [1, 16, 4, 2, 2]
  ASSERT_EQ(whole.size(2), 4);
  EXPECT_GT(whole.abs().max().item<double>(), 1e-2);
  EXPECT_LT(relative_diff(vae->encode(frames), whole), 1e-5);
}

TEST(WanVae, EncoderIsCausal) {
  // Latent k depends on frames up to 4k only: changing frame 5 leaves latents 0 and 1 alone.
  WanVae vae = tiny_vae(3);
  torch::NoGradGuard no_grad;
  auto frames = torch::rand({1, 3, 9, 16, 16}) * 2 - 1;
  auto a = vae->encode_whole(frames);
  frames.select(2, 5).fill_(0.5);
  auto b = vae->encode_whole(frames);
  EXPECT_LT(test::max_abs_diff(a.narrow(2, 0, 2), b.narrow(2, 0, 2)), 1e-6);
  EXPECT_GT(test::max_abs_diff(a.narrow(2, 2, 1), b.narrow(2, 2, 1)), 1e-4);
}

TEST(WanVaeStreaming, LatentByLatentEqualsWholeSequenceDecode) {
  WanVae vae = tiny_vae(4);
  torch::NoGradGuard no_grad;
  auto latents = torch::randn({2, 16, 5, 3, 4});
  auto whole = vae->decode_whole(latents);  // [2, 3, 17, 24, 32], no cache anywhere
  ASSERT_EQ(whole.sizes(), (at::IntArrayRef{2, 3, 17, 24, 32}));
  EXPECT_GT(whole.abs().max().item<double>(), 1e-2);  // not trivially zero

  WanStreamingDecoder stream(vae);
  std::vector<at::Tensor> pieces;
  for (int64_t t = 0; t < 5; ++t) {
    auto frames = stream.push(latents.select(2, t));
    EXPECT_EQ(frames.size(2), t == 0 ? 1 : 4);
    pieces.push_back(frames);
  }
  EXPECT_EQ(stream.latents_seen(), 5);
  EXPECT_LT(relative_diff(at::cat(pieces, 2), whole), 1e-5);
  EXPECT_LT(relative_diff(vae->decode(latents), whole), 1e-5);

  // Latent 0 decodes alone into frame 0; later frames depend on earlier latents.
  stream.reset();
  EXPECT_LT(relative_diff(stream.push(latents.select(2, 0)), whole.narrow(2, 0, 1)), 1e-5);
  auto other = latents.clone();
  other.select(2, 1).fill_(0.0);
  EXPECT_LT(test::max_abs_diff(vae->decode_whole(other).narrow(2, 0, 1), whole.narrow(2, 0, 1)), 1e-6);
  EXPECT_GT(test::max_abs_diff(vae->decode_whole(other).narrow(2, 5, 12), whole.narrow(2, 5, 12)), 1e-4);
}

TEST(WanVaeLoading, PublishedNamesLoadFromPthAndSafetensorsAndRoundTripShapes) {
  WanVae source = tiny_vae(5);
  const auto dir = test::temp_dir("wan_vae_loading");
  const auto tiny = wan_vae_preset("wan-vae-tiny");
  struct Case {
    std::string file;
    io::DType dtype;
    double tolerance;
  };
  for (const Case& c : {Case{"vae_f32.pth", io::DType::F32, 0.0}, Case{"vae_bf16.pth", io::DType::BF16, 1e-2},
                        Case{"vae_f16.pth", io::DType::F16, 1e-3}, Case{"vae.safetensors", io::DType::F32, 0.0}}) {
    SCOPED_TRACE(c.file);
    const auto path = (dir / c.file).string();
    auto tensors = tensors_of(source, c.dtype);
    if (c.file.find(".pth") != std::string::npos) io::write_torch_state_dict(path, tensors.entries);
    else io::save_state_dict(*source, path);
    EXPECT_EQ(io::TensorFile(path).tensors().size(), tiny.parameter_shapes().size());
    WanVae loaded = load_wan_vae(path, tiny);
    auto expected = source->named_parameters();
    for (const auto& p : loaded->named_parameters()) {
      const auto& want = expected[p.key()];
      EXPECT_LE(test::max_abs_diff(p.value(), want), c.tolerance * (1 + want.abs().max().item<double>())) << p.key();
    }
  }

  // Frames 1 + 4k -> 1 + k latents -> 1 + 4k frames, at the project's boundary ([B, F, 3, H, W] in [0, 1]).
  WanLatentCodec codec(load_wan_vae((dir / "vae_f32.pth").string(), tiny));
  auto frames = torch::rand({1, 9, 3, 16, 24});
  auto latents = codec.encode(frames);
  EXPECT_EQ(latents.sizes(), (at::IntArrayRef{1, 16, 3, 2, 3}));
  auto back = codec.decode(latents);
  EXPECT_EQ(back.sizes(), frames.sizes());
  EXPECT_GE(back.min().item<double>(), 0.0);
  EXPECT_LE(back.max().item<double>(), 1.0);
  // The normalisation is Wan's: mu = z_norm * std + mean, channel by channel.
  torch::NoGradGuard no_grad;
  auto mu = source->encode(WanLatentCodec::to_wan_frames(frames));
  EXPECT_LT(test::max_abs_diff(codec.denormalize_frame(latents.select(2, 1)), mu.select(2, 1)), 1e-4);
  EXPECT_NEAR((mu[0][3].mean() - latents[0][3].mean() * kWanLatentStd[3] - kWanLatentMean[3]).item<double>(), 0, 1e-4);
}

TEST(WanVaeLoading, ReadsTheTensorsLibtorchsTorchSaveFormatHolds) {
  // torch::pickle_save writes the format of Python's torch.save: an independent writer for our reader.
  c10::Dict<std::string, at::Tensor> dict;
  auto a = torch::randn({4, 3, 2});
  auto b = torch::randn({5, 6}).to(at::kBFloat16);
  auto base = torch::randn({3, 4});
  dict.insert("encoder.conv1.weight", a);
  dict.insert("decoder.head.0.gamma", b);
  dict.insert("transposed", base.t());  // non-contiguous: strides (1, 4)
  dict.insert("sliced", base.narrow(0, 1, 2));  // storage offset 4
  const auto bytes = torch::pickle_save(dict);
  const auto path = test::temp_dir("wan_vae_pickle") / "libtorch.pth";
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));

  io::TensorFile file(path.string());
  ASSERT_EQ(file.tensors().size(), 4u);
  auto read = [&](const std::string& name, at::ScalarType type) {
    const io::TensorInfo* info = file.find(name);
    EXPECT_NE(info, nullptr) << name;
    at::Tensor t = file.read(*info);
    EXPECT_EQ(t.scalar_type(), type) << name;
    return t;
  };
  EXPECT_TRUE(read("encoder.conv1.weight", at::kFloat).equal(a));
  EXPECT_TRUE(read("decoder.head.0.gamma", at::kBFloat16).equal(b));
  EXPECT_EQ(file.find("decoder.head.0.gamma")->dtype, io::DType::BF16);
  EXPECT_TRUE(read("transposed", at::kFloat).equal(base.t()));
  EXPECT_TRUE(read("sliced", at::kFloat).equal(base.narrow(0, 1, 2)));
}

TEST(WanVaeLoading, ReadsTheStateDictPickleOfPythonsTorchSave) {
  // What Python's torch.save(model.state_dict()) writes (protocol 2): an OrderedDict with memo puts and gets,
  // TUPLE2 for sizes, and a BUILD that sets its _metadata attribute after the items.
  const std::string pickle(
      "\x80\x02" "ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00wq\x02"
      "ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04"
      "ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x00" "0q\x06X\x03\x00\x00\x00"
      "cpuq\x07K\x06tq\x08QK\x00K\x02K\x03\x86q\x09K\x03K\x01\x86q\n\x89h\x00)Rq\x0btq\x0cRq\x0du"
      "}q\x0eX\x09\x00\x00\x00_metadataq\x0fh\x00)Rq\x10X\x00\x00\x00\x00q\x11}q\x12"
      "X\x07\x00\x00\x00versionq\x13K\x01sssb.",
      225);
  const std::vector<float> values{1, 2, 3, 4, 5, 6};
  const std::string data(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  const auto path = test::temp_dir("wan_vae_python") / "state_dict.pth";
  io::write_file_atomically(path.string(), io::make_stored_zip({{"archive/data.pkl", pickle},
                                                                {"archive/data/0", data},
                                                                {"archive/version", "3\n"}}));
  io::TensorFile file(path.string());
  ASSERT_EQ(file.tensors().size(), 1u);
  const io::TensorInfo& w = file.tensors()[0];
  EXPECT_EQ(w.name, "w");
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  const at::Tensor t = file.read(w);  // [2, 3] F32
  EXPECT_TRUE(t.equal(torch::tensor({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}).view({2, 3})));
}

TEST(WanVaeLoading, LibtorchReadsTheStateDictsWeWrite) {
  WanVae vae = tiny_vae(6);
  const auto path = test::temp_dir("wan_vae_write") / "vae.pth";
  auto tensors = tensors_of(vae, io::DType::F32);
  io::write_torch_state_dict(path.string(), tensors.entries);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto value = torch::pickle_load(bytes);
  ASSERT_TRUE(value.isGenericDict());
  const auto dict = value.toGenericDict();
  EXPECT_EQ(dict.size(), tensors.entries.size());
  for (const auto& p : vae->named_parameters())
    EXPECT_TRUE(dict.at(p.key()).toTensor().equal(p.value())) << p.key();
}

TEST(WanVaeLoading, WrongLayoutIsRefusedNamingTheFileAndTensor) {
  WanVae source = tiny_vae(7);
  const auto dir = test::temp_dir("wan_vae_wrong");
  const auto tiny = wan_vae_preset("wan-vae-tiny");
  auto write = [&](const std::string& file, const std::function<void(TensorsToWrite&)>& edit) {
    auto tensors = tensors_of(source, io::DType::F32);
    edit(tensors);
    const auto path = (dir / file).string();
    io::write_torch_state_dict(path, tensors.entries);
    return path;
  };
  auto expect_refused = [&](const std::string& path, std::vector<std::string> words) {
    WanVae target(tiny);
    const auto before = target->named_parameters()["decoder.conv1.weight"].clone();
    const std::string message = error_of([&] { io::load_state_dict(*target, path); });
    for (const auto& w : words) EXPECT_NE(message.find(w), std::string::npos) << "'" << w << "' not in: " << message;
    EXPECT_TRUE(target->named_parameters()["decoder.conv1.weight"].equal(before));  // all or nothing
  };

  const auto missing = write("missing.pth", [](TensorsToWrite& t) {
    auto& e = t.entries;
    e.erase(std::find_if(e.begin(), e.end(), [](const io::TensorToWrite& x) { return x.name == "decoder.head.2.bias"; }));
  });
  expect_refused(missing, {missing, "'decoder.head.2.bias'", "missing"});

  const auto unexpected = write("unexpected.pth", [](TensorsToWrite& t) {
    t.add("decoder.head.3.weight", torch::zeros({3}), io::DType::F32);
  });
  expect_refused(unexpected, {unexpected, "'decoder.head.3.weight'", "not part of the model"});

  const auto wrong_shape = write("wrong_shape.pth", [](TensorsToWrite& t) {
    for (auto& e : t.entries)
      if (e.name == "decoder.upsamples.3.time_conv.weight") e.shape = {e.shape[0] / 2, e.shape[1] * 2, 3, 1, 1};
  });
  expect_refused(wrong_shape, {wrong_shape, "'decoder.upsamples.3.time_conv.weight'", "shape"});

  // A file of another layout altogether (the tiny autoencoder's names) is refused, naming a tensor it lacks.
  const auto foreign = (dir / "foreign.safetensors").string();
  auto zero = torch::zeros({4});
  io::write_safetensors(foreign, {{"decoder.1.weight", io::DType::F32, {4}, zero.data_ptr()}});
  expect_refused(foreign, {foreign, "missing"});
}

TEST(WanVaeLoading, TruncatedFilesAreRefusedNamingTheFileAndTensor) {
  WanVae source = tiny_vae(8);
  const auto dir = test::temp_dir("wan_vae_truncated");
  const auto safetensors = (dir / "cut.safetensors").string();
  io::save_state_dict(*source, safetensors);
  truncate_file(safetensors, 0.6);
  WanVae target(wan_vae_preset("wan-vae-tiny"));
  const auto st_message = error_of([&] { io::load_state_dict(*target, safetensors); });
  EXPECT_NE(st_message.find(safetensors + ": tensor '"), std::string::npos) << st_message;  // names the tensor
  EXPECT_NE(st_message.find("truncated"), std::string::npos) << st_message;

  const auto pth = (dir / "cut.pth").string();
  auto tensors = tensors_of(source, io::DType::F32);
  io::write_torch_state_dict(pth, tensors.entries);
  truncate_file(pth, 0.6);
  const auto pth_message = error_of([&] { io::load_state_dict(*target, pth); });
  EXPECT_NE(pth_message.find(pth), std::string::npos) << pth_message;
  EXPECT_NE(pth_message.find("truncated"), std::string::npos) << pth_message;
  EXPECT_NE(pth_message.find("tensor '"), std::string::npos) << pth_message;  // the one the file stops in
  EXPECT_NE(pth_message.find("cut off"), std::string::npos) << pth_message;
}

TEST(WanVaeInspect, CliReportsMissingAndWrongShapesAgainstThePreset) {
  WanVae vae = tiny_vae(9);
  const auto dir = test::temp_dir("wan_vae_inspect");
  auto tensors = tensors_of(vae, io::DType::BF16);
  const auto good = (dir / "tiny.pth").string();
  io::write_torch_state_dict(good, tensors.entries);
  tensors.entries.pop_back();  // decoder.head.2.bias
  const auto short_one = (dir / "short.pth").string();
  io::write_torch_state_dict(short_one, tensors.entries);

  auto inspect = [&](const std::string& file, const std::string& preset, std::string* out) {
    const auto log = dir / "inspect.log";
    const int status = std::system((std::string(MS_CLI_PATH) + " inspect " + file + " --preset " + preset + " > " +
                                    log.string() + " 2>&1")
                                       .c_str());
    std::ifstream in(log);
    out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  std::string out;
  EXPECT_EQ(inspect(good, "wan-vae-tiny", &out), 0) << out;
  EXPECT_NE(out.find("layout: wan-vae (base dim 8, 16 latent channels)"), std::string::npos) << out;
  EXPECT_NE(out.find("0 problem(s) against preset wan-vae-tiny"), std::string::npos) << out;
  EXPECT_EQ(inspect(short_one, "wan-vae-tiny", &out), 1) << out;
  EXPECT_NE(out.find("missing     decoder.head.2.bias [3]"), std::string::npos) << out;
  EXPECT_EQ(inspect(good, "wan-vae", &out), 1) << out;
  EXPECT_NE(out.find("wrong shape encoder.conv1.weight: file [8, 3, 3, 3, 3], model [96, 3, 3, 3, 3]"), std::string::npos)
      << out;
}
