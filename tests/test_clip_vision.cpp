// The CLIP ViT-H/14 vision encoder of Wan2.1's I2V: the forward against a plain per-head reference written here, the
// ViT-H/14 shape manifest counted by hand, loading Wan-named (.pth, with a text tower to skip) and Hugging-Face-named
// files (split q/k/v, reshaped embeddings, transposed projection) to identical tokens, refusals by tensor name, the
// image preprocessing, and how `inspect` recognises both layouts.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "motionstream/io/checkpoint_layout.h"
#include "motionstream/io/safetensors.h"
#include "motionstream/model/clip_vision.h"
#include "motionstream/model/clip_vision_checkpoint.h"
#include "scoped_temp_dir.h"
#ifdef MS_WITH_MEDIA
#include "media/video_io.h"
#endif
#include "torch_zip_writer.h"

using namespace ms;

namespace {

void randomize(ClipVisionEncoder& encoder, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& item : encoder->named_parameters()) {
    auto& p = item.value();
    const std::string& name = item.key();
    if (name.find("norm") != std::string::npos && name.find(".weight") != std::string::npos)
      p.copy_(at::empty(p.sizes()).normal_(1.0, 0.2, gen));
    else if (p.dim() == 1 || name.find("embedding") != std::string::npos)
      p.copy_(at::empty(p.sizes()).normal_(0.0, 0.3, gen));  // biases, class and position embeddings
    else
      p.copy_(at::empty(p.sizes()).normal_(0.0, 1.0 / std::sqrt(static_cast<double>(p.numel() / p.size(0))), gen));
  }
}

at::Tensor random_images(int64_t batch, int64_t size, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::empty({batch, 3, size, size}).normal_(0.0, 1.0, gen);
}

// LayerNorm by its formula, one row at a time: (x - mean) / sqrt(biased variance + eps) * w + b. x [L, D].
at::Tensor layer_norm_by_hand(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
  at::Tensor out = at::empty_like(x);
  for (int64_t i = 0; i < x.size(0); ++i) {
    const double mean = x[i].mean().item<double>();
    const double var = (x[i] - mean).pow(2).mean().item<double>();
    out[i] = (x[i] - mean) / std::sqrt(var + eps) * w + b;
  }
  return out;
}

// The encoder written plainly for one image [3, S, S], running `blocks` blocks: patches cut out one by one, softmax
// per head and query by hand, GELU from erf. Only weight matrices are multiplied with matmul.
at::Tensor reference_forward(ClipVisionEncoder& enc, const at::Tensor& image, int64_t blocks) {
  torch::NoGradGuard no_grad;
  const ClipVisionConfig& c = enc->config();
  const int64_t p = c.patch_size, g = c.grid(), D = c.dim, H = c.num_heads, Dh = D / H, L = c.tokens();
  const at::Tensor patch_w = enc->patch_embedding->weight.reshape({D, 3 * p * p});
  at::Tensor x = at::empty({L, D});
  x[0] = enc->cls_embedding.view({D});
  for (int64_t row = 0; row < g; ++row)
    for (int64_t col = 0; col < g; ++col) {
      const at::Tensor patch = image.narrow(1, row * p, p).narrow(2, col * p, p).reshape({3 * p * p});  // (c, y, x)
      x[1 + row * g + col] = at::matmul(patch_w, patch);
    }
  x = x + enc->pos_embedding.view({L, D});
  x = layer_norm_by_hand(x, enc->pre_norm->weight, enc->pre_norm->bias, c.eps);
  for (int64_t b = 0; b < blocks; ++b) {
    auto block = enc->transformer[b]->as<ClipBlock>();
    const at::Tensor h = layer_norm_by_hand(x, block->norm1->weight, block->norm1->bias, c.eps);
    const at::Tensor qkv_w = block->attn->to_qkv->weight, qkv_b = block->attn->to_qkv->bias;
    const at::Tensor q = at::matmul(h, qkv_w.narrow(0, 0, D).t()) + qkv_b.narrow(0, 0, D);
    const at::Tensor k = at::matmul(h, qkv_w.narrow(0, D, D).t()) + qkv_b.narrow(0, D, D);
    const at::Tensor v = at::matmul(h, qkv_w.narrow(0, 2 * D, D).t()) + qkv_b.narrow(0, 2 * D, D);
    at::Tensor attended = at::zeros({L, D});
    for (int64_t head = 0; head < H; ++head) {
      const int64_t lo = head * Dh;
      for (int64_t i = 0; i < L; ++i) {
        std::vector<double> score(L);
        double top = -1e300, total = 0;
        for (int64_t j = 0; j < L; ++j) {
          score[j] = at::dot(q[i].narrow(0, lo, Dh), k[j].narrow(0, lo, Dh)).item<double>() / std::sqrt(double(Dh));
          top = std::max(top, score[j]);
        }
        for (int64_t j = 0; j < L; ++j) total += std::exp(score[j] - top);
        for (int64_t j = 0; j < L; ++j)
          attended[i].narrow(0, lo, Dh) += std::exp(score[j] - top) / total * v[j].narrow(0, lo, Dh);
      }
    }
    x = x + at::matmul(attended, block->attn->proj->weight.t()) + block->attn->proj->bias;
    const at::Tensor h2 = layer_norm_by_hand(x, block->norm2->weight, block->norm2->bias, c.eps);
    const auto fc1 = block->mlp[0]->as<torch::nn::Linear>(), fc2 = block->mlp[2]->as<torch::nn::Linear>();
    const at::Tensor pre = at::matmul(h2, fc1->weight.t()) + fc1->bias;
    const at::Tensor gelu = 0.5 * pre * (1.0 + at::erf(pre / std::sqrt(2.0)));
    x = x + at::matmul(gelu, fc2->weight.t()) + fc2->bias;
  }
  return x;  // [L, D]
}

// ---- files in the two layouts, written here independently of the loader's own conversion ----

struct Entries {
  std::vector<at::Tensor> keep;
  std::vector<io::TensorToWrite> list;
  void add(const std::string& name, const at::Tensor& t) {
    keep.push_back(t.detach().contiguous());
    const at::Tensor& k = keep.back();
    const io::DType dtype = k.scalar_type() == at::kLong ? io::DType::I64 : io::DType::F32;
    list.push_back({name, dtype, k.sizes().vec(), k.data_ptr()});
  }
};

// Wan's file: "visual." + our names, beside a (dummy) XLM-RoBERTa text tower and log_scale. `replace` swaps one
// tensor for another value (e.g. of a wrong shape).
std::vector<test::SavedTensor> wan_tensors(ClipVisionEncoder& enc, const std::string& replace = "",
                                           const at::Tensor& replacement = {}) {
  std::vector<test::SavedTensor> out;
  out.push_back({"log_scale", at::full({}, 2.6592f)});
  for (const auto& p : enc->named_parameters()) {
    const std::string name = "visual." + p.key();
    out.push_back({name, name == replace ? replacement : p.value().detach().clone()});
  }
  out.push_back({"textual.token_embedding.weight", at::randn({11, 8})});
  out.push_back({"textual.blocks.0.attn.q.weight", at::randn({8, 8})});
  out.push_back({"textual.head.0.weight", at::randn({6, 8})});
  return out;
}

void save_wan_safetensors(ClipVisionEncoder& enc, const std::filesystem::path& path, const std::string& replace = "",
                          const at::Tensor& replacement = {}) {
  Entries e;
  for (const auto& t : wan_tensors(enc, replace, replacement)) e.add(t.name, t.value);
  io::write_safetensors(path.string(), e.list);
}

// Hugging Face CLIPVisionModelWithProjection names: q, k, v apart; class [dim], positions [tokens, dim], projection
// [out_dim, dim]; plus position_ids and a (dummy) text side as a whole CLIPModel file holds.
void save_hf(ClipVisionEncoder& enc, const std::filesystem::path& path, bool with_projection = true,
             const std::string& replace = "", const at::Tensor& replacement = {}) {
  const ClipVisionConfig& c = enc->config();
  const int64_t D = c.dim;
  Entries e;
  auto add = [&](const std::string& name, const at::Tensor& t) { e.add(name, name == replace ? replacement : t); };
  add("logit_scale", at::full({}, 4.6f));
  add("vision_model.embeddings.position_ids", at::arange(c.tokens(), at::kLong).unsqueeze(0));
  add("vision_model.embeddings.class_embedding", enc->cls_embedding.reshape({D}));
  add("vision_model.embeddings.patch_embedding.weight", enc->patch_embedding->weight);
  add("vision_model.embeddings.position_embedding.weight", enc->pos_embedding.reshape({c.tokens(), D}));
  add("vision_model.pre_layrnorm.weight", enc->pre_norm->weight);
  add("vision_model.pre_layrnorm.bias", enc->pre_norm->bias);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    auto block = enc->transformer[i]->as<ClipBlock>();
    const std::string l = "vision_model.encoder.layers." + std::to_string(i) + ".";
    add(l + "layer_norm1.weight", block->norm1->weight);
    add(l + "layer_norm1.bias", block->norm1->bias);
    const char* parts[] = {"q", "k", "v"};
    for (int64_t j = 0; j < 3; ++j) {
      add(l + "self_attn." + parts[j] + "_proj.weight", block->attn->to_qkv->weight.narrow(0, j * D, D));
      add(l + "self_attn." + parts[j] + "_proj.bias", block->attn->to_qkv->bias.narrow(0, j * D, D));
    }
    add(l + "self_attn.out_proj.weight", block->attn->proj->weight);
    add(l + "self_attn.out_proj.bias", block->attn->proj->bias);
    add(l + "layer_norm2.weight", block->norm2->weight);
    add(l + "layer_norm2.bias", block->norm2->bias);
    add(l + "mlp.fc1.weight", block->mlp[0]->as<torch::nn::Linear>()->weight);
    add(l + "mlp.fc1.bias", block->mlp[0]->as<torch::nn::Linear>()->bias);
    add(l + "mlp.fc2.weight", block->mlp[2]->as<torch::nn::Linear>()->weight);
    add(l + "mlp.fc2.bias", block->mlp[2]->as<torch::nn::Linear>()->bias);
  }
  add("vision_model.post_layernorm.weight", enc->post_norm->weight);
  add("vision_model.post_layernorm.bias", enc->post_norm->bias);
  if (with_projection) add("visual_projection.weight", enc->head.t());
  add("text_model.embeddings.token_embedding.weight", at::randn({9, 8}));
  add("text_projection.weight", at::randn({4, 8}));
  io::write_safetensors(path.string(), e.list);
}

std::string load_error(const std::filesystem::path& path) {
  ClipVisionEncoder fresh(clip_vision_preset("clip-tiny"));
  try {
    load_clip_vision_weights(fresh, path.string());
  } catch (const io::SafetensorsError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ClipVisionEncoder, ForwardMatchesPlainPerHeadReference) {
  ClipVisionEncoder enc(clip_vision_preset("clip-tiny"));
  randomize(enc, 1);
  const ClipVisionConfig& c = enc->config();
  const at::Tensor images = random_images(2, c.image_size, 2);
  torch::NoGradGuard no_grad;
  const at::Tensor out = enc->forward(images);
  ASSERT_EQ(out.sizes().vec(), (std::vector<int64_t>{2, c.tokens(), c.dim}));
  for (int64_t b = 0; b < 2; ++b) {
    const at::Tensor want = reference_forward(enc, images[b], c.output_blocks);
    EXPECT_LT((out[b] - want).abs().max().item<double>(), 1e-4) << "image " << b;
    // The output is the one after output_blocks (2 of 3), not after the last block: running all three differs.
    const at::Tensor all = reference_forward(enc, images[b], c.num_layers);
    EXPECT_GT((out[b] - all).abs().max().item<double>(), 1e-2);
  }
  EXPECT_THROW(enc->forward(random_images(1, c.image_size + 7, 3)), std::invalid_argument);
  EXPECT_THROW(enc->forward(at::zeros({1, 4, c.image_size, c.image_size})), std::invalid_argument);
}

TEST(ClipVisionConfig, VitH14ManifestWithoutAllocating) {
  const ClipVisionConfig c = clip_vision_preset("clip-vit-h-14");
  EXPECT_EQ(c.tokens(), 257);
  EXPECT_EQ(c.head_dim(), 80);
  EXPECT_EQ(c.output_blocks, 31);
  const int64_t D = 1280, M = 5120, P = 14, blocks = 32, tokens = 16 * 16 + 1, out = 1024;
  // patch conv, class, positions, pre_norm (2), 32 x (norm1 2, qkv 2, proj 2, norm2 2, mlp 4), post_norm (2), head.
  const auto shapes = c.parameter_shapes();
  EXPECT_EQ(shapes.size(), static_cast<size_t>(1 + 1 + 1 + 2 + blocks * 12 + 2 + 1));
  const int64_t per_block = 2 * D                  // norm1
                            + 3 * D * D + 3 * D    // to_qkv
                            + D * D + D            // proj
                            + 2 * D                // norm2
                            + D * M + M            // mlp.0
                            + M * D + D;           // mlp.2
  const int64_t total = D * 3 * P * P + D + tokens * D + 2 * D + blocks * per_block + 2 * D + D * out;
  EXPECT_EQ(c.parameter_count(), total);
  EXPECT_EQ(total, 632076800);  // the figure above written out: ViT-H/14's ~632M
  // The Wan table gives every tensor its "visual." name and maps it back.
  for (const auto& [name, shape] : shapes) {
    EXPECT_EQ(clip_vision_wan_names().to_stored(name).value_or(""), "visual." + name);
    EXPECT_EQ(clip_vision_wan_names().to_ours("visual." + name).value_or(""), name);
  }
  // The tiny module registers exactly the names and shapes its config lists, in that order.
  ClipVisionEncoder tiny(clip_vision_preset("clip-tiny"));
  const auto tiny_shapes = clip_vision_preset("clip-tiny").parameter_shapes();
  const auto params = tiny->named_parameters();
  ASSERT_EQ(params.size(), tiny_shapes.size());
  for (size_t i = 0; i < tiny_shapes.size(); ++i) {
    EXPECT_EQ(params[i].key(), tiny_shapes[i].first);
    EXPECT_EQ(params[i].value().sizes().vec(), tiny_shapes[i].second);
  }
  EXPECT_THROW(clip_vision_preset("clip-vit-x"), std::invalid_argument);
  ClipVisionConfig bad = c;
  bad.output_blocks = 33;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
}

TEST(ClipVisionCheckpoint, WanAndHuggingFaceFilesGiveIdenticalTokens) {
  test::ScopedTempDir dir("clip");
  ClipVisionEncoder source(clip_vision_preset("clip-tiny"));
  randomize(source, 4);
  const auto wan = dir.path() / "models_clip_tiny.pth", hf = dir.path() / "clip_vision_tiny.safetensors",
             hf_bare = dir.path() / "no_projection.safetensors";
  test::write_torch_state_dict(wan.string(), wan_tensors(source));  // Wan ships a torch.save'd state dict
  save_hf(source, hf);
  save_hf(source, hf_bare, /*with_projection=*/false);

  ClipVisionEncoder from_wan(clip_vision_preset("clip-tiny")), from_hf(clip_vision_preset("clip-tiny")),
      from_bare(clip_vision_preset("clip-tiny"));
  const auto wan_report = load_clip_vision_weights(from_wan, wan.string());
  EXPECT_EQ(wan_report.layout, clip_vision_wan_names().layout());
  EXPECT_EQ(wan_report.ignored.size(), 4u);  // log_scale and the three text-tower tensors
  const auto hf_report = load_clip_vision_weights(from_hf, hf.string());
  EXPECT_EQ(hf_report.layout, clip_vision_hf_names().layout());
  EXPECT_EQ(hf_report.ignored.size(), 4u);  // logit_scale, position_ids, text embedding, text projection
  load_clip_vision_weights(from_bare, hf_bare.string());

  for (const auto& p : source->named_parameters()) {
    EXPECT_TRUE(at::equal(from_wan->named_parameters()[p.key()], p.value())) << p.key();
    EXPECT_TRUE(at::equal(from_hf->named_parameters()[p.key()], p.value())) << p.key();
  }
  torch::NoGradGuard no_grad;
  const at::Tensor images = random_images(2, source->config().image_size, 5);
  const at::Tensor want = source->forward(images);
  EXPECT_TRUE(at::equal(from_wan->forward(images), want));
  EXPECT_TRUE(at::equal(from_hf->forward(images), want));
  EXPECT_TRUE(at::equal(from_bare->forward(images), want));  // the head is not part of the tokens

  // The loader for use: eval mode, no gradients, the asked dtype.
  ClipVisionEncoder loaded = load_clip_vision_encoder(hf.string(), clip_vision_preset("clip-tiny"));
  EXPECT_FALSE(loaded->is_training());
  EXPECT_FALSE(loaded->head.requires_grad());
  EXPECT_TRUE(at::equal(loaded->forward(images), want));
}

TEST(ClipVisionCheckpoint, RefusesTruncatedMisshapenAndForeignFilesByTensorName) {
  test::ScopedTempDir dir("clip");
  ClipVisionEncoder source(clip_vision_preset("clip-tiny"));
  randomize(source, 6);

  // Truncated: the last tensor in the data buffer runs past the end of the file.
  const auto good = dir.path() / "good.safetensors", cut = dir.path() / "cut.safetensors";
  save_wan_safetensors(source, good);
  std::filesystem::copy_file(good, cut);
  std::filesystem::resize_file(cut, std::filesystem::file_size(good) - 4);
  std::string error = load_error(cut);
  EXPECT_NE(error.find(cut.string()), std::string::npos) << error;
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;
  EXPECT_NE(error.find("'textual.head.0.weight'"), std::string::npos) << error;  // written last

  // Wrong shapes, in either layout, are named by the file's own name.
  const auto wan_bad = dir.path() / "wan_bad.safetensors", hf_bad = dir.path() / "hf_bad.safetensors";
  save_wan_safetensors(source, wan_bad, "visual.transformer.1.mlp.0.weight", at::zeros({127, 32}));
  error = load_error(wan_bad);
  EXPECT_NE(error.find("'visual.transformer.1.mlp.0.weight' has shape [127, 32]"), std::string::npos) << error;
  save_hf(source, hf_bad, true, "vision_model.encoder.layers.2.self_attn.k_proj.weight", at::zeros({32, 31}));
  error = load_error(hf_bad);
  EXPECT_NE(error.find("'vision_model.encoder.layers.2.self_attn.k_proj.weight' has shape [32, 31]"), std::string::npos)
      << error;

  // A Wan file without its last block, and a file of the text tower alone.
  std::vector<test::SavedTensor> short_file;
  for (const auto& t : wan_tensors(source))
    if (t.name.rfind("visual.transformer.2.", 0) != 0) short_file.push_back(t);
  const auto missing = dir.path() / "missing.pth";
  test::write_torch_state_dict(missing.string(), short_file);
  error = load_error(missing);
  EXPECT_NE(error.find("'visual.transformer.2."), std::string::npos) << error;
  EXPECT_NE(error.find("is missing"), std::string::npos) << error;
  const auto text_only = dir.path() / "text.safetensors";
  const float one = 1.0f;
  io::write_safetensors(text_only.string(), {{"textual.token_embedding.weight", io::DType::F32, {1}, &one}});
  error = load_error(text_only);
  EXPECT_NE(error.find("not a checkpoint of any known layout"), std::string::npos) << error;

  // A refused file leaves the module as it was.
  ClipVisionEncoder untouched(clip_vision_preset("clip-tiny"));
  const at::Tensor before = untouched->transformer[0]->as<ClipBlock>()->attn->to_qkv->weight.clone();
  EXPECT_THROW(load_clip_vision_weights(untouched, hf_bad.string()), io::SafetensorsError);
  EXPECT_TRUE(at::equal(untouched->transformer[0]->as<ClipBlock>()->attn->to_qkv->weight, before));
}

TEST(ClipVisionPreprocess, ConstantImageNormalisedByFormula) {
  const ClipVisionConfig c = clip_vision_preset("clip-vit-h-14");
  // A float image with one constant per channel, of another size and aspect: the resize keeps constants, so every
  // output pixel of channel k is (value_k - mean_k) / std_k.
  const double value[3] = {0.2, 0.5, 0.9};
  at::Tensor image = at::empty({3, 37, 90});
  for (int k = 0; k < 3; ++k) image[k].fill_(value[k]);
  at::Tensor out = clip_preprocess(image, c);
  ASSERT_EQ(out.sizes().vec(), (std::vector<int64_t>{1, 3, 224, 224}));
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  for (int k = 0; k < 3; ++k) {
    const double want = (value[k] - c.mean[k]) / c.std[k];
    EXPECT_LT((out[0][k] - want).abs().max().item<double>(), 1e-5) << "channel " << k;
  }
  // uint8 is read as 0..255.
  out = clip_preprocess(at::full({3, 300, 10}, 200, at::kByte), c);
  for (int k = 0; k < 3; ++k)
    EXPECT_LT((out[0][k] - (200.0 / 255.0 - c.mean[k]) / c.std[k]).abs().max().item<double>(), 1e-5) << k;
  EXPECT_THROW(clip_preprocess(at::zeros({37, 90, 3}), c), std::invalid_argument);
  EXPECT_THROW(clip_preprocess(at::zeros({3, 8, 8}, at::kInt), c), std::invalid_argument);
}

TEST(ClipVisionCheckpoint, InspectRecognisesWanAndHuggingFaceLayouts) {
  const ClipVisionConfig c = clip_vision_preset("clip-vit-h-14");
  std::vector<io::TensorInfo> wan, hf;
  for (const auto& [name, shape] : c.parameter_shapes()) wan.push_back({"visual." + name, io::DType::F16, shape, 0, 0});
  wan.push_back({"textual.token_embedding.weight", io::DType::F16, {250002, 1024}, 0, 0});
  const auto from_wan = io::recognise_layout(wan);
  EXPECT_EQ(from_wan.kind, "clip-vision");
  EXPECT_EQ(from_wan.detail, "Wan names, dim 1280, 32 blocks, patch 14, 257 positions, with a text tower (not loaded)");

  hf.push_back({"vision_model.embeddings.patch_embedding.weight", io::DType::F16, {1280, 3, 14, 14}, 0, 0});
  hf.push_back({"vision_model.embeddings.position_embedding.weight", io::DType::F16, {257, 1280}, 0, 0});
  for (int i = 0; i < 32; ++i)
    hf.push_back({"vision_model.encoder.layers." + std::to_string(i) + ".layer_norm1.weight", io::DType::F16, {1280}, 0, 0});
  const auto from_hf = io::recognise_layout(hf);
  EXPECT_EQ(from_hf.kind, "clip-vision");
  EXPECT_EQ(from_hf.detail, "Hugging Face names, dim 1280, 32 blocks, patch 14, 257 positions");
}

#ifdef MS_WITH_MEDIA
TEST(ClipVisionCli, ClipTokensWritesTheEncodersTokensAndInspectNamesTheLayout) {
  test::ScopedTempDir dir("clip_cli");
  ClipVisionEncoder source(clip_vision_preset("clip-tiny"));
  randomize(source, 8);
  const auto weights = dir.path() / "clip_vision_tiny.safetensors", image = dir.path() / "image.png",
             tokens = dir.path() / "tokens.safetensors", log = dir.path() / "cli.log";
  save_hf(source, weights);
  media::write_image(image.string(), at::rand({3, 40, 56}, at::detail::createCPUGenerator(9)));

  auto run = [&](const std::string& args, std::string* out) {
    const int status = std::system((std::string(MS_CLI_PATH) + " " + args + " > " + log.string() + " 2>&1").c_str());
    std::ifstream in(log);
    out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  std::string out;
  ASSERT_EQ(run("clip-tokens --preset clip-tiny --clip " + weights.string() + " --image " + image.string() + " --out " +
                    tokens.string(),
                &out),
            0)
      << out;
  const io::SafetensorsFile file(tokens.string());
  const io::TensorInfo& info = file.at("clip_tokens");
  ASSERT_EQ(info.shape, (std::vector<int64_t>{17, 32}));
  const std::vector<float> values = file.to_float(info);
  torch::NoGradGuard no_grad;
  const at::Tensor want = source->forward(clip_preprocess(media::read_image(image.string()), source->config()))[0];
  const at::Tensor got = at::from_blob(const_cast<float*>(values.data()), {17, 32}).clone();
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(file.metadata().at("format"), "motionstream-clip-tokens");

  EXPECT_EQ(run("inspect " + weights.string(), &out), 0) << out;
  EXPECT_NE(out.find("layout: clip-vision (Hugging Face names, dim 32, 3 blocks, patch 7, 17 positions, with a text tower"),
            std::string::npos)
      << out;
  EXPECT_EQ(run("clip-tokens --clip " + weights.string() + " --image " + image.string(), &out), 2) << out;
  EXPECT_NE(out.find("--out is required"), std::string::npos) << out;
}
#endif
