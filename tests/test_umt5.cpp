// The umT5 text encoder: the forward against a plain per-head reference, relative-position buckets against T5's
// formula worked by hand, padding, the umT5-XXL shape manifest, loading Wan- and Hugging-Face-named files
// (safetensors, torch.save archives, shards), the tokenizer, the prompt-embedding cache and the two together.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "motionstream/io/checkpoint_layout.h"
#include "motionstream/io/state_dict.h"
#include "motionstream/io/tensor_file.h"
#include "motionstream/model/prompt_cache.h"
#include "motionstream/model/umt5.h"
#include "motionstream/model/umt5_checkpoint.h"
#include "motionstream/model/umt5_prompt_encoder.h"
#include "motionstream/model/umt5_tokenizer.h"
#include "scoped_temp_dir.h"
#include "torch_zip_writer.h"

using namespace ms;

namespace {

void randomize(Umt5Encoder& encoder, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& item : encoder->named_parameters()) {
    auto& p = item.value();
    if (item.key().find("norm") != std::string::npos)
      p.copy_(at::empty(p.sizes()).normal_(1.0, 0.2, gen));
    else if (item.key().find("pos_embedding") != std::string::npos)
      p.copy_(at::empty(p.sizes()).normal_(0.0, 1.0, gen));  // large enough that a wrong bucket shows
    else
      p.copy_(at::empty(p.sizes()).normal_(0.0, 1.0 / std::sqrt(static_cast<double>(p.size(-1))), gen));
  }
}

// ids [1, L] of `length` tokens (2..vocab-1) then padding (0), and the matching mask.
std::pair<at::Tensor, at::Tensor> prompt(int64_t length, int64_t padded_to, int64_t vocab, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  at::Tensor ids = at::zeros({1, padded_to}, at::kLong);
  ids.narrow(1, 0, length).copy_(at::randint(2, vocab, {1, length}, gen, at::kLong));
  at::Tensor mask = at::zeros({1, padded_to}, at::kLong);
  mask.narrow(1, 0, length).fill_(1);
  return {ids, mask};
}

// T5's bucket for one relative position, bidirectional, worked out in doubles straight from the formula.
int64_t bucket_by_hand(int64_t relative, int64_t num_buckets, int64_t max_distance) {
  const int64_t half = num_buckets / 2, exact = half / 2;
  const int64_t side = relative > 0 ? half : 0;
  const int64_t n = std::abs(relative);
  if (n < exact) return side + n;
  const auto large = exact + static_cast<int64_t>(std::log(static_cast<double>(n) / exact) /
                                                  std::log(static_cast<double>(max_distance) / exact) * (half - exact));
  return side + std::min(large, half - 1);
}

// The whole encoder written plainly for one prompt (batch 1): loops over heads, queries and keys, softmax by hand,
// buckets by hand. Only the weight matrices are multiplied with matmul.
at::Tensor reference_forward(Umt5Encoder& enc, const at::Tensor& ids, const at::Tensor& mask) {
  const Umt5Config& c = enc->config();
  const int64_t L = ids.size(1);
  auto rms = [&](const at::Tensor& x, const at::Tensor& w) {  // x [L, dim]
    at::Tensor out = at::empty_like(x);
    for (int64_t i = 0; i < L; ++i) {
      const double ms = x[i].pow(2).mean().item<double>();
      out[i] = x[i] / std::sqrt(ms + c.eps) * w;
    }
    return out;
  };
  at::Tensor x = enc->token_embedding->weight.index_select(0, ids[0]).clone();  // [L, dim]
  for (int64_t b = 0; b < c.num_layers; ++b) {
    auto block = enc->blocks[b]->as<Umt5Block>();
    at::Tensor h = rms(x, block->norm1->weight);
    at::Tensor q = at::matmul(h, block->attn->q->weight.t()), k = at::matmul(h, block->attn->k->weight.t()),
               v = at::matmul(h, block->attn->v->weight.t());
    const at::Tensor table = block->pos_embedding->embedding->weight;  // [buckets, heads]
    at::Tensor attended = at::zeros({L, c.attn_dim()});
    for (int64_t head = 0; head < c.num_heads; ++head) {
      const int64_t lo = head * c.head_dim;
      for (int64_t i = 0; i < L; ++i) {
        std::vector<double> score(L);
        double top = -1e300;
        for (int64_t j = 0; j < L; ++j) {
          if (mask[0][j].item<int64_t>() == 0) continue;
          score[j] = at::dot(q[i].narrow(0, lo, c.head_dim), k[j].narrow(0, lo, c.head_dim)).item<double>() +
                     table[bucket_by_hand(j - i, c.num_buckets, c.max_distance)][head].item<double>();
          top = std::max(top, score[j]);
        }
        double total = 0;
        for (int64_t j = 0; j < L; ++j)
          if (mask[0][j].item<int64_t>() != 0) total += std::exp(score[j] - top);
        for (int64_t j = 0; j < L; ++j)
          if (mask[0][j].item<int64_t>() != 0)
            attended[i].narrow(0, lo, c.head_dim) += std::exp(score[j] - top) / total * v[j].narrow(0, lo, c.head_dim);
      }
    }
    x = x + at::matmul(attended, block->attn->o->weight.t());
    h = rms(x, block->norm2->weight);
    const at::Tensor gate_pre = at::matmul(h, block->ffn->gate[0]->as<torch::nn::Linear>()->weight.t());
    const at::Tensor gelu_tanh =
        0.5 * gate_pre * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (gate_pre + 0.044715 * gate_pre.pow(3))));
    x = x + at::matmul(at::matmul(h, block->ffn->fc1->weight.t()) * gelu_tanh, block->ffn->fc2->weight.t());
  }
  x = rms(x, enc->norm->weight);
  for (int64_t i = 0; i < L; ++i)
    if (mask[0][i].item<int64_t>() == 0) x[i].zero_();
  return x.unsqueeze(0);
}

// The module's tensors under the names `table` gives them, as safetensors. `tied_copy` adds Hugging Face's second
// name for the embedding.
void save_as(Umt5Encoder& enc, const io::NameTable& table, const std::filesystem::path& path, io::DType dtype,
             bool tied_copy = false) {
  std::vector<at::Tensor> keep;
  std::vector<io::TensorToWrite> entries;
  const at::ScalarType type = dtype == io::DType::BF16 ? at::kBFloat16 : dtype == io::DType::F16 ? at::kHalf : at::kFloat;
  for (const auto& p : enc->named_parameters()) {
    keep.push_back(p.value().detach().to(type).contiguous());
    entries.push_back({table.to_stored(p.key()).value(), dtype, keep.back().sizes().vec(), keep.back().data_ptr()});
    if (tied_copy && p.key() == "token_embedding.weight")
      entries.push_back({"encoder.embed_tokens.weight", dtype, keep.back().sizes().vec(), keep.back().data_ptr()});
  }
  io::write_safetensors(path.string(), entries);
}

std::string load_error(const std::filesystem::path& path) {
  Umt5Encoder fresh(umt5_preset("umt5-tiny"));
  try {
    load_umt5_weights(fresh, path.string());
  } catch (const io::SafetensorsError& e) {
    return e.what();
  }
  return "";
}

// The test binary runs in the build folder: walk up until the repository's fixtures appear.
std::filesystem::path checkpoint_fixture(const std::string& name) {
  namespace fs = std::filesystem;
  for (fs::path dir = fs::current_path();; dir = dir.parent_path()) {
    if (fs::is_directory(dir / "tests" / "fixtures" / "checkpoints")) return dir / "tests" / "fixtures" / "checkpoints" / name;
    if (dir == dir.root_path() || dir.empty()) break;
  }
  throw std::runtime_error("tests/fixtures/checkpoints not found above " + fs::current_path().string());
}

}  // namespace

TEST(Umt5Buckets, MatchT5FormulaWorkedByHand) {
  // 32 buckets, max distance 128: keys at or before the query use 0..15, keys after it 16..31; distances 0..7 get
  // a bucket each; from 8 on, bucket 8 + floor(log(d / 8) / log(16) * 8), at most 15.
  const at::Tensor b = relative_position_buckets(1, 300, 32, 128);  // query 0, keys 0..299: relative = key index
  const at::Tensor before = relative_position_buckets(300, 1, 32, 128);  // queries 0..299, key 0: relative = -query
  EXPECT_EQ(before[0][0].item<int64_t>(), 0);
  EXPECT_EQ(before[3][0].item<int64_t>(), 3);     // exact
  EXPECT_EQ(b[0][3].item<int64_t>(), 16 + 3);     // exact, key after the query
  EXPECT_EQ(b[0][9].item<int64_t>(), 16 + 8);     // log(9/8)/log(16)*8 = 0.34 -> 8
  EXPECT_EQ(b[0][12].item<int64_t>(), 16 + 9);    // log(1.5)/log(16)*8 = 1.17 -> 9
  EXPECT_EQ(before[20][0].item<int64_t>(), 10);   // log(2.5)/log(16)*8 = 2.64 -> 10
  EXPECT_EQ(before[50][0].item<int64_t>(), 13);   // log(6.25)/log(16)*8 = 5.29 -> 13
  EXPECT_EQ(before[100][0].item<int64_t>(), 15);  // log(12.5)/log(16)*8 = 7.29 -> 15
  EXPECT_EQ(before[299][0].item<int64_t>(), 15);  // beyond max_distance: the last bucket
  EXPECT_EQ(b[0][299].item<int64_t>(), 31);
  // Away from the float boundaries (d = 16, 32, 64, 128), the hand formula and the table agree everywhere.
  for (int64_t d = 0; d < 300; ++d) {
    if (d == 16 || d == 32 || d == 64 || d == 128) continue;
    EXPECT_EQ(b[0][d].item<int64_t>(), bucket_by_hand(d, 32, 128)) << "relative +" << d;
    EXPECT_EQ(before[d][0].item<int64_t>(), bucket_by_hand(-d, 32, 128)) << "relative -" << d;
  }
}

TEST(Umt5Encoder, ForwardMatchesPlainPerHeadReference) {
  Umt5Encoder enc(umt5_preset("umt5-tiny"));
  randomize(enc, 1);
  torch::NoGradGuard no_grad;
  // Long enough (20 > 8) that the logarithmic buckets are used, with padding at the end.
  auto [ids, mask] = prompt(20, 24, 300, 2);
  const at::Tensor got = enc->forward(ids, mask);  // [1, 24, 64]
  ASSERT_EQ(got.sizes(), (at::IntArrayRef{1, 24, 64}));
  const at::Tensor want = reference_forward(enc, ids, mask);
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-4) << "max |module - reference|";
  EXPECT_GT(got.abs().max().item<double>(), 0.1);
}

TEST(Umt5Encoder, PaddingIsZeroAndDoesNotChangeTokens) {
  Umt5Encoder enc(umt5_preset("umt5-tiny"));
  randomize(enc, 3);
  torch::NoGradGuard no_grad;
  auto [ids8, mask8] = prompt(5, 8, 300, 4);
  auto [ids32, mask32] = prompt(5, 32, 300, 4);
  ids32.narrow(1, 5, 27).fill_(7);  // what stands at padded positions must not matter either
  const at::Tensor short_pad = enc->forward(ids8, mask8), long_pad = enc->forward(ids32, mask32);
  EXPECT_EQ(short_pad.narrow(1, 5, 3).abs().max().item<double>(), 0.0);
  EXPECT_EQ(long_pad.narrow(1, 5, 27).abs().max().item<double>(), 0.0);
  EXPECT_LT((short_pad.narrow(1, 0, 5) - long_pad.narrow(1, 0, 5)).abs().max().item<double>(), 1e-5);
  // A batch of two prompts of different lengths gives each one its own result.
  auto [ids_b, mask_b] = prompt(3, 8, 300, 5);
  const at::Tensor batch = enc->forward(at::cat({ids8, ids_b}), at::cat({mask8, mask_b}));
  EXPECT_LT((batch[0] - short_pad[0]).abs().max().item<double>(), 1e-5);
  EXPECT_LT((batch[1] - enc->forward(ids_b, mask_b)[0]).abs().max().item<double>(), 1e-5);
}

TEST(Umt5Config, XxlShapeManifest) {
  const Umt5Config c = umt5_preset("umt5-xxl");
  const auto shapes = c.parameter_shapes();
  // token_embedding + 24 blocks x (norm1, q, k, v, o, norm2, gate, fc1, fc2, pos_embedding) + norm = 242 tensors,
  // as in Wan's models_t5_umt5-xxl-enc-bf16.pth.
  EXPECT_EQ(shapes.size(), 242u);
  // embedding 256384 x 4096                          = 1,050,148,864
  // per block: q k v o 4 x 4096 x 4096 = 67,108,864; gate fc1 fc2 3 x 4096 x 10240 = 125,829,120;
  //            two norms 2 x 4096 = 8,192; relative bias 32 x 64 = 2,048      -> 192,948,224; x 24 = 4,630,757,376
  // final norm                                       = 4,096
  // total 5,680,910,336: the "5.7B" umT5-XXL encoder (11.4 GB in bf16).
  EXPECT_EQ(c.parameter_count(), 5680910336LL);
  // Every tensor has a Hugging Face name, and the table maps it back.
  for (const auto& [name, shape] : shapes) {
    const auto hf = umt5_hf_names().to_stored(name);
    ASSERT_TRUE(hf.has_value()) << name;
    EXPECT_EQ(umt5_hf_names().to_ours(*hf).value_or(""), name);
    EXPECT_EQ(umt5_wan_names().to_ours(name).value_or(""), name);
  }
  EXPECT_EQ(umt5_hf_names().to_stored("blocks.23.ffn.gate.0.weight").value_or(""),
            "encoder.block.23.layer.1.DenseReluDense.wi_0.weight");
  // The tiny module registers exactly the names and shapes its config lists.
  Umt5Encoder tiny(umt5_preset("umt5-tiny"));
  const auto tiny_shapes = umt5_preset("umt5-tiny").parameter_shapes();
  const auto params = tiny->named_parameters();
  ASSERT_EQ(params.size(), tiny_shapes.size());
  for (size_t i = 0; i < tiny_shapes.size(); ++i) {
    EXPECT_EQ(params[i].key(), tiny_shapes[i].first);
    EXPECT_EQ(params[i].value().sizes().vec(), tiny_shapes[i].second);
  }
}

TEST(Umt5Checkpoint, WanAndHuggingFaceNamesGiveIdenticalOutputs) {
  test::ScopedTempDir dir("umt5");
  Umt5Encoder source(umt5_preset("umt5-tiny"));
  randomize(source, 6);
  const auto wan = dir.path() / "models_t5_umt5-tiny-enc.safetensors", hf = dir.path() / "hf.safetensors";
  save_as(source, umt5_wan_names(), wan, io::DType::F32);
  save_as(source, umt5_hf_names(), hf, io::DType::F32, /*tied_copy=*/true);

  Umt5Encoder from_wan(umt5_preset("umt5-tiny")), from_hf(umt5_preset("umt5-tiny"));
  EXPECT_EQ(load_umt5_weights(from_wan, wan.string()).layout, umt5_wan_names().layout());
  EXPECT_EQ(load_umt5_weights(from_hf, hf.string()).layout, umt5_hf_names().layout());
  torch::NoGradGuard no_grad;
  auto [ids, mask] = prompt(9, 16, 300, 7);
  const at::Tensor want = source->forward(ids, mask);
  EXPECT_TRUE(at::equal(from_wan->forward(ids, mask), want));
  EXPECT_TRUE(at::equal(from_hf->forward(ids, mask), want));

  // bf16 and f16 files load into a float32 model as their rounded values; a bf16 model computes in bf16.
  for (io::DType dtype : {io::DType::BF16, io::DType::F16}) {
    const auto path = dir.path() / (std::string("hf_") + io::dtype_name(dtype) + ".safetensors");
    save_as(source, umt5_hf_names(), path, dtype);
    Umt5Encoder rounded(umt5_preset("umt5-tiny"));
    load_umt5_weights(rounded, path.string());
    EXPECT_LT((rounded->forward(ids, mask) - want).abs().max().item<double>(), 0.1) << io::dtype_name(dtype);
  }
  Umt5Encoder bf16 = load_umt5_encoder(wan.string(), umt5_preset("umt5-tiny"), at::kBFloat16);
  EXPECT_EQ(bf16->token_embedding->weight.scalar_type(), at::kBFloat16);
  const at::Tensor out = bf16->forward(ids, mask);
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  EXPECT_LT((out.to(at::kFloat) - want).abs().max().item<double>(), 0.25);
}

TEST(Umt5Checkpoint, RefusesWrongLayoutMissingMisshapenAndTruncatedFilesByName) {
  test::ScopedTempDir dir("umt5");
  Umt5Encoder source(umt5_preset("umt5-tiny"));
  randomize(source, 8);

  // Another model's file.
  const auto other = dir.path() / "dit.safetensors";
  const float one = 1.0f;
  io::write_safetensors(other.string(), {{"patch_embedding.weight", io::DType::F32, {1}, &one}});
  std::string error = load_error(other);
  EXPECT_NE(error.find(other.string()), std::string::npos) << error;
  EXPECT_NE(error.find("not a checkpoint of any known layout"), std::string::npos) << error;
  EXPECT_NE(error.find("patch_embedding.weight"), std::string::npos) << error;

  // A tensor of the wrong shape: a file of another width.
  Umt5Config wide = umt5_preset("umt5-tiny");
  wide.ffn_dim = 128;
  Umt5Encoder wrong(wide);
  const auto misshapen = dir.path() / "misshapen.safetensors";
  save_as(wrong, umt5_hf_names(), misshapen, io::DType::BF16);
  error = load_error(misshapen);
  EXPECT_NE(error.find(misshapen.string()), std::string::npos) << error;
  EXPECT_NE(error.find("DenseReluDense.w"), std::string::npos) << error;
  EXPECT_NE(error.find("[128, 64]"), std::string::npos) << error;

  // A missing tensor: a file with one block too few.
  Umt5Config shallow = umt5_preset("umt5-tiny");
  shallow.num_layers = 1;
  Umt5Encoder one_block(shallow);
  const auto missing = dir.path() / "missing.safetensors";
  save_as(one_block, umt5_wan_names(), missing, io::DType::F32);
  error = load_error(missing);
  EXPECT_NE(error.find("blocks.1."), std::string::npos) << error;
  EXPECT_NE(error.find("is missing"), std::string::npos) << error;
  // ... and one block too many.
  Umt5Config deep = umt5_preset("umt5-tiny");
  deep.num_layers = 3;
  Umt5Encoder three_blocks(deep);
  const auto extra = dir.path() / "extra.safetensors";
  save_as(three_blocks, umt5_hf_names(), extra, io::DType::F32);
  error = load_error(extra);
  EXPECT_NE(error.find("encoder.block.2."), std::string::npos) << error;
  EXPECT_NE(error.find("not part of the model"), std::string::npos) << error;

  // A truncated file: the last tensors run past the end.
  const auto good = dir.path() / "good.safetensors", cut = dir.path() / "cut.safetensors";
  save_as(source, umt5_wan_names(), good, io::DType::F32);
  std::filesystem::copy_file(good, cut);
  std::filesystem::resize_file(cut, std::filesystem::file_size(good) - 1000);
  error = load_error(cut);
  EXPECT_NE(error.find(cut.string()), std::string::npos) << error;
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;
  EXPECT_NE(error.find("tensor '"), std::string::npos) << error;

  // A refused file leaves the module as it was.
  Umt5Encoder untouched(umt5_preset("umt5-tiny"));
  const at::Tensor before = untouched->norm->weight.clone();
  EXPECT_THROW(load_umt5_weights(untouched, misshapen.string()), io::SafetensorsError);
  EXPECT_TRUE(at::equal(untouched->norm->weight, before));
}

TEST(Umt5Checkpoint, LayoutRecognisedFromWanAndHuggingFaceNames) {
  std::vector<io::TensorInfo> wan, hf;
  for (const auto& [name, shape] : umt5_preset("umt5-xxl").parameter_shapes()) {
    wan.push_back({name, io::DType::BF16, shape, 0, 0});
    hf.push_back({umt5_hf_names().to_stored(name).value(), io::DType::BF16, shape, 0, 0});
  }
  const auto from_wan = io::recognise_layout(wan), from_hf = io::recognise_layout(hf);
  EXPECT_EQ(from_wan.kind, "umt5-encoder");
  EXPECT_EQ(from_wan.detail, "Wan names, 24 blocks, vocab 256384, dim 4096");
  EXPECT_EQ(from_hf.kind, "umt5-encoder");
  EXPECT_EQ(from_hf.detail, "Hugging Face names, 24 blocks, vocab 256384, dim 4096");
}

TEST(Umt5Checkpoint, LoadsTorchSavedPthArchive) {
  test::ScopedTempDir dir("umt5_pth");
  Umt5Encoder source(umt5_preset("umt5-tiny"));
  randomize(source, 10);
  // As Wan publishes it: a torch.save'd state dict of bf16 tensors. Some tensors are stored as transposed views or
  // at an offset inside their storage, as tensors saved from views are.
  std::vector<test::SavedTensor> saved;
  int i = 0;
  for (const auto& p : source->named_parameters()) {
    test::SavedTensor t{p.key(), p.value().detach().to(at::kBFloat16)};
    if (p.value().dim() == 2 && i % 3 == 1) t.transposed = true;
    if (i % 4 == 2) t.storage_offset = 5;
    saved.push_back(t);
    ++i;
  }
  const auto pth = dir.path() / "models_t5_umt5-tiny-enc-bf16.pth", reference = dir.path() / "bf16.safetensors";
  test::write_torch_state_dict(pth.string(), saved);
  save_as(source, umt5_wan_names(), reference, io::DType::BF16);

  Umt5Encoder from_pth(umt5_preset("umt5-tiny")), from_safetensors(umt5_preset("umt5-tiny"));
  EXPECT_EQ(load_umt5_weights(from_pth, pth.string()).layout, umt5_wan_names().layout());
  load_umt5_weights(from_safetensors, reference.string());
  for (const auto& p : from_pth->named_parameters())
    EXPECT_TRUE(at::equal(p.value(), from_safetensors->named_parameters()[p.key()])) << p.key();
  torch::NoGradGuard no_grad;
  auto [ids, mask] = prompt(7, 12, 300, 11);
  EXPECT_TRUE(at::equal(from_pth->forward(ids, mask), from_safetensors->forward(ids, mask)));

  // The same archive with Hugging Face names, in float32, loads too.
  std::vector<test::SavedTensor> hf_saved;
  for (const auto& p : source->named_parameters())
    hf_saved.push_back({umt5_hf_names().to_stored(p.key()).value(), p.value().detach().clone()});
  const auto hf_pth = dir.path() / "hf.pth";
  test::write_torch_state_dict(hf_pth.string(), hf_saved, "pytorch_model");
  Umt5Encoder from_hf_pth(umt5_preset("umt5-tiny"));
  EXPECT_EQ(load_umt5_weights(from_hf_pth, hf_pth.string()).layout, umt5_hf_names().layout());
  EXPECT_TRUE(at::equal(from_hf_pth->forward(ids, mask), source->forward(ids, mask)));

  // Truncated: the zip directory at the end is gone.
  const auto cut = dir.path() / "cut.pth";
  std::filesystem::copy_file(pth, cut);
  std::filesystem::resize_file(cut, std::filesystem::file_size(pth) - 100);
  std::string error = load_error(cut);
  EXPECT_NE(error.find(cut.string()), std::string::npos) << error;
  EXPECT_NE(error.find("end-of-directory"), std::string::npos) << error;

  // A wrongly shaped tensor is named.
  saved[3].value = saved[3].value.narrow(0, 0, saved[3].value.size(0) - 1).contiguous();
  saved[3].transposed = false;
  const auto misshapen = dir.path() / "misshapen.pth";
  test::write_torch_state_dict(misshapen.string(), saved);
  error = load_error(misshapen);
  EXPECT_NE(error.find("'" + saved[3].name + "'"), std::string::npos) << error;
  EXPECT_NE(error.find("has shape"), std::string::npos) << error;
}

TEST(Umt5Checkpoint, LoadsShardedSafetensorsThroughTheirIndex) {
  test::ScopedTempDir dir("umt5_shards");
  Umt5Encoder source(umt5_preset("umt5-tiny"));
  randomize(source, 13);
  // Two shards and an index, as diffusers' text_encoder/ folder holds them.
  std::vector<at::Tensor> keep;
  std::vector<io::TensorToWrite> first, second;
  nlohmann::json index;
  for (const auto& p : source->named_parameters()) {
    keep.push_back(p.value().detach().contiguous());
    const std::string name = umt5_hf_names().to_stored(p.key()).value();
    const bool in_first = name.find("block.1.") == std::string::npos && name != "encoder.final_layer_norm.weight";
    (in_first ? first : second).push_back({name, io::DType::F32, keep.back().sizes().vec(), keep.back().data_ptr()});
    index["weight_map"][name] = in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  io::write_safetensors(dir.file("model-00001-of-00002.safetensors"), first);
  io::write_safetensors(dir.file("model-00002-of-00002.safetensors"), second);
  std::ofstream(dir.file("model.safetensors.index.json")) << index.dump();

  Umt5Encoder loaded(umt5_preset("umt5-tiny"));
  EXPECT_EQ(load_umt5_weights(loaded, dir.file("model.safetensors.index.json")).layout, umt5_hf_names().layout());
  torch::NoGradGuard no_grad;
  auto [ids, mask] = prompt(5, 8, 300, 14);
  EXPECT_TRUE(at::equal(loaded->forward(ids, mask), source->forward(ids, mask)));

  // A missing shard is named.
  std::filesystem::remove(dir.file("model-00002-of-00002.safetensors"));
  const std::string error = load_error(dir.file("model.safetensors.index.json"));
  EXPECT_NE(error.find("model-00002-of-00002.safetensors"), std::string::npos) << error;
}

TEST(Umt5Checkpoint, ReadsStateDictPickledByPython) {
  // Written by Python's own pickle module (tests/fixtures/checkpoints/make_state_dict_pth.py): an independent
  // writer, with torch's OrderedDict, _metadata (BUILD), persistent storage ids and a LONG1 integer.
  const std::string path = checkpoint_fixture("state_dict.pth").string();
  io::TensorFile file(path);
  ASSERT_EQ(file.tensors().size(), 4u);
  EXPECT_EQ(file.tensors()[0].name, "a");
  EXPECT_EQ(file.tensors()[0].dtype, io::DType::BF16);
  EXPECT_EQ(file.tensors()[1].name, "b.weight");
  EXPECT_EQ(file.tensors()[2].dtype, io::DType::F16);
  const at::Tensor a = file.read(file.tensors()[0]), b = file.read(file.tensors()[1]), c = file.read(file.tensors()[2]);
  EXPECT_TRUE(at::equal(a, at::arange(1, 7, at::kFloat).view({2, 3}).to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(b, at::arange(1, 7, at::kFloat).view({3, 2}) * 0.5));  // transposed view at offset 1
  EXPECT_TRUE(at::equal(c, at::tensor({-1.0f, 0.5f, 2.0f, 1024.0f}).to(at::kHalf)));
  EXPECT_EQ(file.read(file.tensors()[3]).item<float>(), 7.0f);
}

TEST(Umt5Tokenizer, CleansWhitespaceLikeWan) {
  EXPECT_EQ(clean_prompt_whitespace("  a red\t\tball \n rolls  "), "a red ball rolls");
  EXPECT_EQ(clean_prompt_whitespace("a\xc2\xa0\xc2\xa0" "b\xe3\x80\x80"), "a b");  // no-break and ideographic spaces
  EXPECT_EQ(clean_prompt_whitespace("caf\xc3\xa9  ol\xc3\xa9"), "caf\xc3\xa9 ol\xc3\xa9");  // other UTF-8 untouched
  EXPECT_EQ(clean_prompt_whitespace(" \t\n"), "");
}

TEST(Umt5Tokenizer, EncodesAppendsEosPadsAndCuts) {
  if (!sentencepiece_available()) GTEST_SKIP() << "built without sentencepiece";
  test::ScopedTempDir dir("umt5_tok");
  std::vector<std::string> sentences;
  for (const char* thing : {"ball", "cube", "car", "bird", "dog", "boat", "kite", "train"})
    for (const char* motion : {"rolls left", "moves right", "flies up", "falls down", "turns around", "stays still"})
      sentences.push_back(std::string("a ") + thing + " " + motion + " across the green field");
  const std::string prefix = dir.file("spm");
  train_sentencepiece_model(sentences, prefix, 64);

  Umt5Tokenizer tokenizer(prefix + ".model", 16);
  EXPECT_GT(tokenizer.vocab_size(), 10);
  const TokenizedPrompt p = tokenizer.encode("a dog flies up");
  const std::vector<int64_t> pieces = tokenizer.pieces("a dog flies up");
  ASSERT_FALSE(pieces.empty());
  ASSERT_EQ(p.length, static_cast<int64_t>(pieces.size()) + 1);
  ASSERT_EQ(p.ids.size(), 16u);
  ASSERT_EQ(p.mask.size(), 16u);
  for (int64_t i = 0; i < 16; ++i) {
    if (i + 1 < p.length) EXPECT_EQ(p.ids[i], pieces[i]);
    if (i + 1 == p.length) EXPECT_EQ(p.ids[i], Umt5Tokenizer::kEosId);
    if (i >= p.length) EXPECT_EQ(p.ids[i], Umt5Tokenizer::kPadId);
    EXPECT_EQ(p.mask[i], i < p.length ? 1 : 0);
  }
  for (int64_t id : pieces) EXPECT_GT(id, 1) << "text never encodes to padding or end-of-sequence";
  // Whitespace is cleaned first.
  EXPECT_EQ(tokenizer.encode("  a   dog\tflies\n up ").ids, p.ids);
  // Too long: cut so that the end-of-sequence token still ends it.
  const TokenizedPrompt long_prompt = tokenizer.encode(sentences[0] + " " + sentences[1] + " " + sentences[2]);
  EXPECT_EQ(long_prompt.length, 16);
  EXPECT_EQ(long_prompt.ids.back(), Umt5Tokenizer::kEosId);
  // An empty prompt is the end-of-sequence token alone.
  EXPECT_EQ(tokenizer.encode("").length, 1);

  try {
    Umt5Tokenizer missing(dir.file("nothing.model"));
    FAIL() << "loaded a missing file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing.model"), std::string::npos) << e.what();
  }
}

TEST(Umt5PromptCache, HitReturnsStoredTensorWithoutRunningEncoder) {
  test::ScopedTempDir dir("umt5_cache");
  Umt5Encoder enc(umt5_preset("umt5-tiny"));
  randomize(enc, 9);
  torch::NoGradGuard no_grad;
  int runs = 0;
  auto encode = [&](uint64_t seed) {
    return [&, seed] {
      ++runs;
      auto [ids, mask] = prompt(6, 32, 300, seed);
      return enc->forward(ids, mask);  // [1, 32, 64]
    };
  };
  for (io::DType dtype : {io::DType::F32, io::DType::BF16}) {
    runs = 0;
    const std::string folder = dir.file(io::dtype_name(dtype));
    PromptEmbeddingCache cache(folder, "tiny encoder v1", dtype);
    const at::Tensor first = cache.get_or_compute("a red ball", encode(1));
    EXPECT_EQ(runs, 1);
    EXPECT_EQ(first.sizes(), (at::IntArrayRef{1, 32, 64}));
    EXPECT_EQ(first.scalar_type(), dtype == io::DType::F32 ? at::kFloat : at::kBFloat16);
    const at::Tensor again = cache.get_or_compute("a red ball", encode(1));
    EXPECT_EQ(runs, 1) << "a hit must not run the encoder";
    EXPECT_TRUE(at::equal(first, again));
    if (dtype == io::DType::F32) {
      auto [ids, mask] = prompt(6, 32, 300, 1);
      EXPECT_TRUE(at::equal(again, enc->forward(ids, mask)));
    }
    // Another prompt, or the same prompt for another encoder, is a miss.
    cache.get_or_compute("a blue ball", encode(2));
    EXPECT_EQ(runs, 2);
    PromptEmbeddingCache other(folder, "tiny encoder v2", dtype);
    EXPECT_FALSE(other.find("a red ball").has_value());
    EXPECT_NE(other.entry_path("a red ball"), cache.entry_path("a red ball"));
  }

  // A corrupt entry is ignored, recomputed and rewritten.
  runs = 0;
  PromptEmbeddingCache cache(dir.file("corrupt"), "tiny encoder v1", io::DType::F32);
  const at::Tensor good = cache.get_or_compute("a kite", encode(3));
  const std::string entry = cache.entry_path("a kite");
  std::filesystem::resize_file(entry, std::filesystem::file_size(entry) / 2);
  EXPECT_FALSE(cache.find("a kite").has_value());
  EXPECT_TRUE(at::equal(cache.get_or_compute("a kite", encode(3)), good));
  EXPECT_EQ(runs, 2);
  { std::ofstream(entry, std::ios::trunc) << "not a safetensors file"; }
  EXPECT_FALSE(cache.find("a kite").has_value());
  cache.get_or_compute("a kite", encode(3));
  EXPECT_EQ(runs, 3);
  ASSERT_TRUE(cache.find("a kite").has_value());
  EXPECT_TRUE(at::equal(*cache.find("a kite"), good));
  EXPECT_EQ(runs, 3);
}

TEST(Umt5PromptEncoder, TokenizesEncodesAndCachesWithoutLoadingTheEncoderAgain) {
  if (!sentencepiece_available()) GTEST_SKIP() << "built without sentencepiece";
  test::ScopedTempDir dir("umt5_prompt");
  std::vector<std::string> sentences;
  for (const char* thing : {"ball", "cube", "car", "bird", "dog", "boat"})
    for (const char* motion : {"rolls left", "moves right", "flies up", "falls down"})
      sentences.push_back(std::string("the ") + thing + " " + motion + " slowly");
  train_sentencepiece_model(sentences, dir.file("spm"), 48);
  Umt5Encoder source(umt5_preset("umt5-tiny"));
  randomize(source, 12);
  const auto weights = dir.path() / "umt5-tiny.safetensors";
  save_as(source, umt5_hf_names(), weights, io::DType::F32);

  Umt5PromptEncoderOptions options;
  options.config = umt5_preset("umt5-tiny");
  options.dtype = at::kFloat;
  options.cache_folder = dir.file("cache");
  options.cache_dtype = io::DType::F32;
  Umt5PromptEncoder encoder(weights.string(), dir.file("spm.model"), options);
  EXPECT_FALSE(encoder.encoder_loaded());
  const at::Tensor context = encoder.encode("the dog  flies up");  // [1, 32, 64]
  EXPECT_TRUE(encoder.encoder_loaded());
  ASSERT_EQ(context.sizes(), (at::IntArrayRef{1, 32, 64}));

  // The same as tokenizing and running the encoder by hand.
  const TokenizedPrompt tokens = Umt5Tokenizer(dir.file("spm.model"), 32).encode("the dog flies up");
  torch::NoGradGuard no_grad;
  const at::Tensor want = source->forward(at::tensor(tokens.ids).unsqueeze(0), at::tensor(tokens.mask).unsqueeze(0));
  EXPECT_TRUE(at::equal(context, want));
  EXPECT_EQ(context[0].narrow(0, tokens.length, 32 - tokens.length).abs().max().item<double>(), 0.0);

  // A second run finds it in the cache and never loads the weights.
  Umt5PromptEncoder later(weights.string(), dir.file("spm.model"), options);
  EXPECT_TRUE(at::equal(later.encode("the dog flies up"), context));
  EXPECT_FALSE(later.encoder_loaded());
  later.encode("the car rolls left");
  EXPECT_TRUE(later.encoder_loaded());
}
