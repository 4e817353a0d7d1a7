// Model folders built from published-layout files: the umT5 prompt encoder behind a MotionModel, the TAEHV codec.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "motionstream/io/safetensors.h"
#include "motionstream/io/state_dict.h"
#include "motionstream/model/dit_checkpoint.h"
#include "motionstream/model/motion_model.h"
#include "motionstream/model/published_model.h"
#include "motionstream/model/umt5.h"
#include "motionstream/model/umt5_prompt_encoder.h"
#include "motionstream/model/umt5_tokenizer.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/model/vae/tiny_vae.h"
#include "scoped_temp_dir.h"

using namespace ms;

namespace {

void randomize(torch::nn::Module& module, uint64_t seed, double scale) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& p : module.parameters()) p.copy_(at::empty(p.sizes()).normal_(0.0, scale, gen));
}

// A DiT whose text context is the tiny umT5's: [B, 32, 64].
DitConfig dit_reading_tiny_umt5() {
  DitConfig c = dit_preset("tiny-motion");
  c.text_dim = umt5_preset("umt5-tiny").dim;
  c.text_len = umt5_preset("umt5-tiny").text_len;
  return c;
}

// Tiny umT5 weights (Wan names) and a sentencepiece model trained on a few captions, in `dir`.
Umt5TextSpec write_tiny_umt5(const test::ScopedTempDir& dir) {
  std::vector<std::string> sentences;
  for (const char* thing : {"ball", "cube", "car", "bird", "dog", "boat"})
    for (const char* motion : {"rolls left", "moves right", "flies up", "falls down"})
      sentences.push_back(std::string("the ") + thing + " " + motion + " slowly");
  train_sentencepiece_model(sentences, dir.file("spm"), 48);
  Umt5Encoder encoder(umt5_preset("umt5-tiny"));
  randomize(*encoder, 3, 0.3);
  io::save_state_dict(*encoder, dir.file("umt5.safetensors"));
  Umt5TextSpec spec;
  spec.weights = dir.file("umt5.safetensors");
  spec.tokenizer = dir.file("spm.model");
  spec.cache = dir.file("prompt_cache");
  spec.preset = "umt5-tiny";
  return spec;
}

}  // namespace

TEST(MotionModelUmt5, PromptContextIsTheUmt5EncodersOutputAndSurvivesSaveAndLoad) {
  if (!sentencepiece_available()) GTEST_SKIP() << "built without sentencepiece";
  test::ScopedTempDir dir("umt5_model");
  Umt5TextSpec spec = write_tiny_umt5(dir);
  spec.cache.clear();  // the cache stores bf16: compare the encoder's own float32 output
  MotionModel model(dit_reading_tiny_umt5(), open_umt5_prompt_encoder(spec, at::kCPU), spec);
  EXPECT_TRUE(model->uses_umt5());
  EXPECT_FALSE(model->text);
  // The frozen encoder is not part of the model's parameters: only the DiT trains.
  EXPECT_EQ(model->parameters().size(), model->dit->parameters().size());

  // The context is exactly what the encoder gives, row by row.
  torch::NoGradGuard no_grad;
  const at::Tensor context = model->prompt_context({"the dog flies up", "the car rolls left"});  // [2, 32, 64]
  ASSERT_EQ(context.sizes(), (at::IntArrayRef{2, 32, 64}));
  Umt5PromptEncoderOptions options;
  options.config = umt5_preset("umt5-tiny");
  options.dtype = at::kFloat;
  Umt5PromptEncoder direct(spec.weights, spec.tokenizer, options);
  EXPECT_TRUE(at::equal(context[0], direct.encode("the dog flies up")[0]));
  EXPECT_TRUE(at::equal(context[1], direct.encode("the car rolls left")[0]));

  // Saved and loaded: model.json names the encoder, no text_encoder.safetensors, the same text K/V.
  randomize(*model->dit, 5, 0.05);
  const std::string folder = dir.file("model");
  save_motion_model(model, folder, "../codec");
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(folder) / "text_encoder.safetensors"));
  LoadedMotionModel loaded = load_motion_model(folder);
  ASSERT_TRUE(loaded.model->uses_umt5());
  EXPECT_EQ(loaded.description.at("text_encoder").at("kind"), "umt5");
  const TextKv a = model->encode_prompts({"the boat moves right"}), b = loaded.model->encode_prompts({"the boat moves right"});
  ASSERT_EQ(a.k.size(), b.k.size());
  for (size_t i = 0; i < a.k.size(); ++i) {
    EXPECT_TRUE(at::allclose(a.k[i], b.k[i], 1e-6, 1e-6));
    EXPECT_TRUE(at::allclose(a.v[i], b.v[i], 1e-6, 1e-6));
  }
  // A model of the same kind shares the one frozen encoder.
  MotionModel twin = same_kind_model(*loaded.model, loaded.model->dit->config());
  EXPECT_EQ(twin->umt5().get(), loaded.model->umt5().get());
}

TEST(MotionModelUmt5, RefusesAModelJsonWithAnUnknownTextEncoderField) {
  test::ScopedTempDir dir("umt5_bad");
  nlohmann::json j{{"dit", dit_reading_tiny_umt5()},
                   {"text_encoder", {{"kind", "umt5"}, {"weights", "w"}, {"tokenizer", "t"}, {"dim", 4096}}},
                   {"codec", "c"}};
  std::filesystem::create_directories(dir.file("m"));
  std::ofstream(dir.file("m/model.json")) << j.dump();
  try {
    load_motion_model(dir.file("m"));
    FAIL() << "an unknown field was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("model.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("unknown field 'dim'"), std::string::npos) << e.what();
  }
}

TEST(PublishedModel, TaehvCodecDecodesTheDiTsLatentsAsTheAutoencoderItself) {
  test::ScopedTempDir dir("taehv_codec");
  TinyVae vae(tiny_vae_preset("cpu"));
  randomize(*vae, 9, 0.05);
  io::save_state_dict(*vae, dir.file("taehv.safetensors"), io::DType::F16);  // as published: half precision
  import_taehv_codec(dir.file("taehv.safetensors"), dir.file("codec"), "cpu");

  LatentCodec codec(dir.file("codec"));
  TinyVae reference(tiny_vae_preset("cpu"));
  io::load_state_dict(*reference, dir.file("taehv.safetensors"));
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(1);
  const at::Tensor latents = at::randn({1, 16, 2, 4, 4}, gen);  // [B, C, T, h, w]: the DiT's layout
  const at::Tensor frames = codec.decode(latents);              // [1, 5, 3, 32, 32]
  const at::Tensor want = reference->decode(latents.permute({0, 2, 1, 3, 4}));
  ASSERT_EQ(frames.sizes(), want.sizes());
  EXPECT_TRUE(at::allclose(frames, want, 1e-5, 1e-5));

  // A file of another layout is refused, naming the file, and leaves no codec folder behind.
  io::save_state_dict(*TinyVae(tiny_vae_preset("taehv-wan")), dir.file("wide.safetensors"));
  try {
    import_taehv_codec(dir.file("wide.safetensors"), dir.file("codec2"), "cpu");
    FAIL() << "a wrong-width file was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("wide.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("codec2")));
}

TEST(PublishedModel, ImportsASelfForcingCheckpointWithUmt5AndTaehvIntoAStreamingModelFolder) {
  if (!sentencepiece_available()) GTEST_SKIP() << "built without sentencepiece";
  test::ScopedTempDir dir("import_wan");
  // A published causal T2V generator (no I2V channels, no tracks) under Self-Forcing's "generator_ema.model." names,
  // next to a "critic" that must not be read.
  DitConfig t2v = dit_reading_tiny_umt5();
  t2v.image_condition = false;
  t2v.track_channels = 0;
  WanDiT source(t2v), critic(t2v);
  randomize(*source, 21, 0.1);
  std::vector<at::Tensor> keep;
  std::vector<io::TensorToWrite> entries;
  for (auto* model : {&source, &critic})
    for (const auto& p : (*model)->named_parameters()) {
      keep.push_back(p.value().detach().contiguous());
      entries.push_back({(model == &source ? "generator_ema.model." : "critic.model.") + p.key(), io::DType::F32,
                         keep.back().sizes().vec(), keep.back().data_ptr()});
    }
  io::write_safetensors(dir.file("self_forcing.safetensors"), entries);
  TinyVae taehv(tiny_vae_preset("cpu"));
  randomize(*taehv, 4, 0.05);
  io::save_state_dict(*taehv, dir.file("taehv.safetensors"));

  PublishedFiles files;
  files.dit = dir.file("self_forcing.safetensors");
  files.config = dit_reading_tiny_umt5();  // + I2V condition and track channels
  files.text = write_tiny_umt5(dir);
  files.taehv = dir.file("taehv.safetensors");
  files.taehv_preset = "cpu";
  files.dtype = io::DType::F32;
  const DitCheckpointPlan plan = import_published_model(files, dir.file("model"));
  EXPECT_EQ(plan.part, "generator_ema");
  EXPECT_EQ(plan.stored_in_channels, 16);

  LoadedMotionModel loaded = load_motion_model(dir.file("model"));
  ASSERT_TRUE(loaded.model->uses_umt5());
  // Every published tensor arrives unchanged; the patch embedding's new input channels are zero.
  const auto ours = loaded.model->dit->named_parameters();
  for (const auto& p : source->named_parameters()) {
    const at::Tensor& got = ours[p.key()];
    if (p.key() == "patch_embedding.weight") {
      EXPECT_TRUE(at::equal(got.narrow(1, 0, 16), p.value())) << p.key();
      EXPECT_EQ(got.narrow(1, 16, got.size(1) - 16).abs().max().item<double>(), 0.0);
    } else {
      EXPECT_TRUE(at::equal(got, p.value())) << p.key();
    }
  }
  // The codec folder opens and decodes with the TAEHV weights.
  LatentCodec codec(loaded.codec_folder);
  EXPECT_EQ(codec.channels(), 16);
  // A file that is not a DiT is refused by name, and nothing is written.
  files.dit = dir.file("taehv.safetensors");
  EXPECT_THROW(import_published_model(files, dir.file("model2")), std::exception);
  EXPECT_FALSE(std::filesystem::exists(dir.file("model2")));
}
