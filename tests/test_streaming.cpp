// Streaming through the KV cache against independent full-sequence computations.
#include <gtest/gtest.h>

#include "motionstream/stream/streaming_generator.h"
#include "motionstream/tracks/track_raster.h"
#include "test_util.h"

using namespace ms;

namespace {

// Full-sequence self-attention written independently of KvCache: every query chunk i sees the chunks the streaming
// rule allows (itself, the first S chunks, the W chunks before it), and each of those gets the RoPE frame position of
// its rank among them, as seen from i. Plain loops, no cache, no ring, no stored rotations.
class SlotPositionReference : public SelfAttention {
 public:
  SlotPositionReference(int64_t S, int64_t W, const TokenGrid& chunk, int64_t head_dim)
      : S_(S), W_(W), chunk_(chunk), head_dim_(head_dim) {}
  void begin(const TokenGrid& grid) override { chunks_ = grid.frames / chunk_.frames; }
  at::Tensor attend(int64_t, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) override {
    const int64_t Lc = chunk_.tokens();
    std::vector<at::Tensor> out;
    for (int64_t i = 0; i < chunks_; ++i) {
      std::vector<int64_t> seen;
      for (int64_t j = 0; j <= i; ++j)
        if (j == i || (j < S_) || (j >= S_ && j >= i - W_)) seen.push_back(j);
      auto rot = [&](const at::Tensor& x, int64_t chunk, int64_t slot) {
        auto pos = grid_positions(chunk_.frames, chunk_.h, chunk_.w, slot * chunk_.frames);
        return apply_rope(x.narrow(1, chunk * Lc, Lc), rope_table(pos, head_dim_));
      };
      std::vector<at::Tensor> keys, values;
      for (size_t slot = 0; slot < seen.size(); ++slot) {
        keys.push_back(rot(k, seen[slot], static_cast<int64_t>(slot)));
        values.push_back(v.narrow(1, seen[slot] * Lc, Lc));
      }
      auto qi = rot(q, i, static_cast<int64_t>(seen.size()) - 1);
      auto scores = at::einsum("blhd,bmhd->bhlm", {qi, at::cat(keys, 1)}) / std::sqrt(double(head_dim_));
      out.push_back(at::einsum("bhlm,bmhd->blhd", {at::softmax(scores, -1), at::cat(values, 1)}));
    }
    return at::cat(out, 1);
  }

 private:
  int64_t S_, W_, chunks_ = 0;
  TokenGrid chunk_;
  int64_t head_dim_;
};

struct Fixture {
  DitConfig config = dit_preset("tiny");
  WanDiT model{config};
  int64_t H = 4, W = 6;  // latent size -> token grid 2x3
  at::Tensor text, image_latent;
  Fixture() {
    test::randomize(model, 11);
    torch::manual_seed(5);
    text = torch::randn({1, 4, config.text_dim});
    image_latent = torch::randn({1, config.latent_channels, H, W});
  }
  TrackSet tracks(float shift) const {  // three points on a 48x32 image (the model image), moving right by `shift`/frame
    TrackSet t;
    const int64_t T = 60;
    t.xy = torch::zeros({T, 3, 2});
    for (int64_t f = 0; f < T; ++f) {
      t.xy[f][0] = torch::tensor({4.0f + shift * f, 5.0f});
      t.xy[f][1] = torch::tensor({30.0f, 20.0f - shift * f});
      t.xy[f][2] = torch::tensor({12.0f, 12.0f});
    }
    t.visible = torch::ones({T, 3}, torch::kBool);
    t.visible[7][1] = false;
    t.width = W * 8;
    t.height = H * 8;
    return t;
  }
};

// Streams `chunks` chunks, replacing the tracks before chunk 2, and checks every chunk against a full-sequence
// recomputation of the whole history with the reference attention.
enum class Reference { SlotPositions, PlainCausal };

void check_stream_against_full_sequence(int64_t S, int64_t Wn, int64_t chunks, Reference reference) {
  Fixture fx;
  const auto& c = fx.config;
  StreamConfig sc;
  sc.layout = {3, S, Wn};
  sc.seed = 42;
  StreamingGenerator gen(fx.model, sc, fx.text, fx.image_latent, fx.H, fx.W);
  gen.set_tracks(fx.tracks(1.0f));

  // The reference draws the same IDs and noise from the same seed, in the same order.
  auto rng = at::detail::createCPUGenerator(42);
  auto ids = draw_track_ids(3, rng);
  auto text_kv = fx.model->encode_text(fx.text);
  const auto steps = gen.timesteps();
  std::vector<at::Tensor> clean, conds, track_inputs;
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < chunks; ++i) {
    if (i == 2) gen.set_tracks(fx.tracks(-2.0f));
    const TrackSet now = fx.tracks(i >= 2 ? -2.0f : 1.0f);
    conds.push_back(image_condition(fx.image_latent, i * 3, 3));
    track_inputs.push_back(packed_track_input(now, ids, i * 3, 3, fx.H, fx.W, c.track_id_dim));
    auto streamed = gen.next_chunk();

    // Reference: the model over [clean chunks 0..i-1 at t = 0 | chunk i at t_k], reading off chunk i.
    auto full_velocity = [&](const at::Tensor& x, double t) {
      DitInput in;
      std::vector<at::Tensor> xs = clean;
      xs.push_back(x);
      in.noisy = at::cat(xs, 2);
      in.condition = at::cat(conds, 2);
      in.tracks = at::cat(track_inputs, 2);
      in.timesteps = torch::zeros({1, (i + 1) * 3});
      in.timesteps.narrow(1, i * 3, 3).fill_(t);
      if (reference == Reference::PlainCausal) {  // absolute positions and a block-causal mask over exactly these chunks
        const int64_t Lc = 3 * (fx.H / 2) * (fx.W / 2), L = (i + 1) * Lc;
        auto mask = torch::full({L, L}, -INFINITY);
        for (int64_t a = 0; a <= i; ++a) mask.narrow(0, a * Lc, Lc).narrow(1, 0, (a + 1) * Lc).zero_();
        MaskedSelfAttention causal(grid_positions((i + 1) * 3, fx.H / 2, fx.W / 2), c.head_dim(), mask);
        return fx.model->forward(in, text_kv, causal).narrow(2, i * 3, 3);
      }
      SlotPositionReference slots(S, Wn, {3, fx.H / 2, fx.W / 2}, c.head_dim());
      return fx.model->forward(in, text_kv, slots).narrow(2, i * 3, 3);
    };
    at::Tensor x = at::randn({1, c.latent_channels, 3, fx.H, fx.W}, rng), x0;
    for (size_t k = 0; k < steps.size(); ++k) {
      const double s = steps[k] / 1000.0;
      x0 = x - full_velocity(x, steps[k]) * s;
      if (k + 1 < steps.size()) x = x0 * (1 - steps[k + 1] / 1000.0) + at::randn(x.sizes(), rng) * (steps[k + 1] / 1000.0);
    }
    EXPECT_LT(test::max_abs_diff(streamed, x0), 1e-4) << "chunk " << i << " S=" << S << " W=" << Wn;
    clean.push_back(x0);
  }
}

}  // namespace

TEST(Streaming, SinkAndWindowMatchFullSequenceWithSlotPositions) {
  check_stream_against_full_sequence(1, 1, 5, Reference::SlotPositions);
}

TEST(Streaming, TwoSinksThreeWindowMatchFullSequence) { check_stream_against_full_sequence(2, 3, 7, Reference::SlotPositions); }

TEST(Streaming, NoSinkLargeWindowIsPlainCausalAttention) {
  check_stream_against_full_sequence(0, 100, 4, Reference::PlainCausal);
}

TEST(Streaming, StreamingMaskMatchesVisibility) {
  const StreamLayout layout{3, 1, 2};
  auto mask = streaming_attention_mask(5, 2, layout);  // chunk i attends to 0 (sink), i-2, i-1 (window), i
  auto visible = [&](int64_t i, int64_t j) { return mask[i * 2][j * 2].item<float>() == 0.0f; };
  EXPECT_TRUE(visible(4, 0));
  EXPECT_FALSE(visible(4, 1));
  EXPECT_TRUE(visible(4, 2));
  EXPECT_TRUE(visible(4, 3));
  EXPECT_TRUE(visible(4, 4));
  EXPECT_FALSE(visible(2, 3));
  EXPECT_EQ(visible_chunks(4, layout), (std::vector<int64_t>{0, 2, 3, 4}));
  EXPECT_EQ(visible_chunks(1, layout), (std::vector<int64_t>{0, 1}));
}

TEST(Streaming, CostStaysBoundedOver200Chunks) {
  DitConfig c = dit_preset("tiny");
  c.num_layers = 1;
  WanDiT model(c);
  StreamConfig sc;
  sc.layout = {3, 1, 1};
  sc.timesteps = {1000.0};
  StreamingGenerator gen(model, sc, torch::randn({1, 2, c.text_dim}), torch::randn({1, c.latent_channels, 2, 2}), 2, 2);
  const int64_t Lc = 3 * 1 * 1;
  const int64_t capacity = gen.cache().capacity_tokens();
  for (int i = 0; i < 200; ++i) {
    auto x = gen.next_chunk();
    ASSERT_TRUE(at::isfinite(x).all().item<bool>()) << "chunk " << i;
  }
  EXPECT_EQ(gen.chunks_done(), 200);
  EXPECT_EQ(gen.cache().cached_tokens(), (1 + 1) * Lc);
  EXPECT_EQ(gen.cache().capacity_tokens(), capacity);
  EXPECT_EQ(gen.cache().max_position_used(), sc.layout.position_limit());
  EXPECT_EQ(sc.layout.position_limit(), 8);  // slots 0, 1, 2 of 3 frames
}

TEST(Streaming, TracksSteerOnlyLaterChunksAndResetReplays) {
  Fixture fx;
  StreamConfig sc;
  sc.seed = 9;
  StreamingGenerator a(fx.model, sc, fx.text, fx.image_latent, fx.H, fx.W);
  StreamingGenerator b(fx.model, sc, fx.text, fx.image_latent, fx.H, fx.W);
  a.set_tracks(fx.tracks(1.0f));
  b.set_tracks(fx.tracks(1.0f));
  auto a0 = a.next_chunk(), b0 = b.next_chunk();
  EXPECT_TRUE(torch::equal(a0, b0));
  b.set_tracks(fx.tracks(-3.0f));  // a new drag direction from chunk 1 on
  auto a1 = a.next_chunk(), b1 = b.next_chunk();
  EXPECT_GT(test::max_abs_diff(a1, b1), 1e-3);
  a.reset();
  EXPECT_EQ(a.chunks_done(), 0);
  EXPECT_TRUE(torch::equal(a.next_chunk(), a0));
}

TEST(Streaming, BadSetupIsRefusedWithTheReason) {
  Fixture fx;
  StreamConfig sc;
  EXPECT_THROW(StreamingGenerator(fx.model, sc, fx.text, at::Tensor(), fx.H, fx.W), std::invalid_argument);
  EXPECT_THROW(StreamingGenerator(fx.model, sc, fx.text, fx.image_latent, 5, fx.W), std::invalid_argument);
  sc.timesteps = {1000, 1200};
  EXPECT_THROW(StreamingGenerator(fx.model, sc, fx.text, fx.image_latent, fx.H, fx.W), std::invalid_argument);
  sc.timesteps = {};
  sc.layout.sink_chunks = -1;
  EXPECT_THROW(StreamingGenerator(fx.model, sc, fx.text, fx.image_latent, fx.H, fx.W), std::invalid_argument);
}
