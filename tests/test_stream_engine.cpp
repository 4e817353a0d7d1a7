// The streaming engine's steady state (docs/ENGINE.md): buffers allocated once, the chunk loop against a plain loop
// written here, the cache cursor a captured graph relies on, and the overlapped decoder against a whole decode.
#include <gtest/gtest.h>

#include <map>

#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/stream/overlapped_decoder.h"
#include "motionstream/stream/streaming_generator.h"
#include "motionstream/tracks/track_raster.h"
#include "test_util.h"

using namespace ms;

namespace {

struct StreamSetup {
  DitConfig config = dit_preset("tiny");
  WanDiT model{config};
  int64_t H = 4, W = 6;  // latent size -> token grid 2x3
  at::Tensor text, image_latent;
  StreamSetup() {
    test::randomize(model, 21);
    torch::manual_seed(8);
    text = torch::randn({1, 5, config.text_dim});
    image_latent = torch::randn({1, config.latent_channels, H, W});
  }
  TrackSet tracks(float shift) const {  // two points on the 48x32 model image, moving by `shift` per frame
    TrackSet t;
    const int64_t T = 80;
    t.xy = torch::zeros({T, 2, 2});
    for (int64_t f = 0; f < T; ++f) {
      t.xy[f][0] = torch::tensor({3.0f + shift * f, 6.0f});
      t.xy[f][1] = torch::tensor({40.0f - shift * f, 25.0f});
    }
    t.visible = torch::ones({T, 2}, torch::kBool);
    t.width = W * 8;
    t.height = H * 8;
    return t;
  }
};

std::vector<const void*> storage_of(const std::vector<at::Tensor>& tensors) {
  std::vector<const void*> out;
  for (const auto& t : tensors) out.push_back(t.data_ptr());
  return out;
}

}  // namespace

TEST(StreamEngine, BuffersKeepTheirStorageAcrossChunks) {
  StreamSetup s;
  StreamConfig sc;
  sc.seed = 3;
  StreamingGenerator gen(s.model, sc, s.text, s.image_latent, s.H, s.W);
  gen.set_tracks(s.tracks(1.0f));
  const auto cache0 = storage_of(gen.cache().buffers());
  const auto inputs0 = storage_of(gen.buffers().all());
  ASSERT_EQ(cache0.size(), 4u * static_cast<size_t>(s.config.num_layers));  // keys, values, window keys, values
  // noise_host and noise (one tensor on an fp32 CPU model), latents, clean, timesteps, condition, tracks
  ASSERT_EQ(inputs0.size(), 7u);
  EXPECT_EQ(gen.buffers().noise.data_ptr(), gen.buffers().noise_host.data_ptr());
  for (int i = 0; i < 8; ++i) {
    if (i == 3) gen.set_tracks(s.tracks(-2.0f));  // a new drag
    if (i == 5) gen.clear_tracks();                // released
    if (i == 6) gen.set_prompt(torch::randn({1, 5, s.config.text_dim}));
    const at::Tensor chunk = gen.next_chunk();
    EXPECT_EQ(storage_of(gen.cache().buffers()), cache0) << "chunk " << i;
    EXPECT_EQ(storage_of(gen.buffers().all()), inputs0) << "chunk " << i;
    EXPECT_NE(chunk.data_ptr(), gen.buffers().clean.data_ptr()) << "the caller owns what next_chunk returns";
  }
  EXPECT_EQ(gen.engine_counts().eager_chunks, 8);
  EXPECT_EQ(gen.engine_counts().graph_replays, 0);
}

// The chunk loop as first written: fresh tensors for everything, noise drawn pass by pass, a cache of its own.
TEST(StreamEngine, StreamedLatentsEqualTheStraightforwardLoop) {
  StreamSetup s;
  const auto& c = s.config;
  StreamConfig sc;
  sc.seed = 17;
  StreamingGenerator gen(s.model, sc, s.text, s.image_latent, s.H, s.W);
  gen.set_tracks(s.tracks(1.0f));

  torch::NoGradGuard no_grad;
  auto rng = at::detail::createCPUGenerator(17);
  const at::Tensor ids = draw_track_ids(2, rng);  // set_tracks draws the IDs first, from the stream's generator
  KvCache cache(c, sc.layout, 1, {3, s.H / 2, s.W / 2}, at::TensorOptions());
  const TextKv text_kv = s.model->encode_text(s.text);
  const std::vector<double> steps = gen.timesteps();
  for (int64_t i = 0; i < 7; ++i) {
    if (i == 4) gen.set_tracks(s.tracks(-1.5f));
    if (i == 5) gen.clear_tracks();
    if (i == 6) gen.set_tracks(s.tracks(-1.5f));
    const bool has_tracks = i != 5;
    const at::Tensor streamed = gen.next_chunk();

    DitInput in;
    in.condition = image_condition(s.image_latent, i * 3, 3);
    if (has_tracks) in.tracks = packed_track_input(s.tracks(i >= 4 ? -1.5f : 1.0f), ids, i * 3, 3, s.H, s.W, c.track_id_dim);
    at::Tensor x = at::randn({1, c.latent_channels, 3, s.H, s.W}, rng), x0;
    cache.set_commit(false);
    for (size_t k = 0; k < steps.size(); ++k) {
      in.noisy = x;
      in.timesteps = torch::full({1, 3}, steps[k]);
      x0 = x - s.model->forward(in, text_kv, cache) * (steps[k] / 1000.0);
      if (k + 1 < steps.size()) {
        const double next = steps[k + 1] / 1000.0;
        x = x0 * (1.0 - next) + at::randn(x.sizes(), rng) * next;
      }
    }
    cache.set_commit(true);
    in.noisy = x0;
    in.timesteps = torch::zeros({1, 3});
    s.model->forward(in, text_kv, cache);
    // Without tracks the loop above passes none and the generator an all-zero raster: the track head's 1x1 conv of
    // zeros is its bias either way, so the two agree exactly as well.
    EXPECT_TRUE(torch::equal(streamed, x0)) << "chunk " << i << ": max abs diff " << test::max_abs_diff(streamed, x0);
  }
}

// What a captured graph relies on: once steady, a chunk moves the cache's cursor as a function of its ring phase only,
// and set_cursor restores exactly what cursor() saved.
TEST(StreamEngine, SteadyCacheCursorDependsOnlyOnTheRingPhase) {
  StreamSetup s;
  StreamConfig sc;
  sc.layout = {3, 1, 3};
  sc.timesteps = {1000.0};
  StreamingGenerator gen(s.model, sc, s.text, s.image_latent, s.H, s.W);
  std::map<int64_t, KvCache::Cursor> after_phase;
  std::vector<int64_t> phases;
  for (int64_t n = 0; n < 11; ++n) {
    const bool steady = gen.cache().steady();
    EXPECT_EQ(steady, n >= 1 + 3) << "chunk " << n;  // the sink chunk and three window chunks first
    const int64_t phase = gen.cache().ring_phase();
    gen.next_chunk();
    const KvCache::Cursor after = gen.cache().cursor();
    EXPECT_EQ(after.chunks_committed, n + 1);
    if (!steady) continue;
    phases.push_back(phase);
    EXPECT_EQ(after.max_position_used, sc.layout.position_limit());
    auto [it, fresh] = after_phase.emplace(phase, after);
    if (!fresh) {
      EXPECT_EQ(after.sink_filled, it->second.sink_filled);
      EXPECT_EQ(after.window_filled, it->second.window_filled);
      EXPECT_EQ(after.window_oldest, it->second.window_oldest);
      EXPECT_EQ(after.max_position_used, it->second.max_position_used);
    }
  }
  // Phases before steady chunks 4..10: the oldest window entry moves on by one per chunk once the window is full.
  EXPECT_EQ(phases, (std::vector<int64_t>{0, 1, 2, 0, 1, 2, 0}));

  KvCache cache(s.config, sc.layout, 1, {3, s.H / 2, s.W / 2}, at::TensorOptions());
  KvCache::Cursor c{1, 2, 1, 9, 8};
  cache.set_cursor(c);
  const auto back = cache.cursor();
  EXPECT_EQ(back.sink_filled, 1);
  EXPECT_EQ(back.window_filled, 2);
  EXPECT_EQ(back.window_oldest, 1);
  EXPECT_EQ(back.chunks_committed, 9);
  EXPECT_EQ(back.max_position_used, 8);
  EXPECT_EQ(cache.cached_chunks(), 3);
  EXPECT_THROW((cache.set_cursor({2, 0, 0, 0, -1})), c10::Error);  // more sink chunks than the layout has
  EXPECT_THROW((cache.set_cursor({1, 3, 3, 0, -1})), c10::Error);  // ring index outside the window
}

TEST(StreamEngine, GraphsAreRefusedWithoutCudaAndTheReasonIsGiven) {
  StreamSetup s;
  StreamConfig sc;
  sc.cuda_graphs = true;
  try {
    StreamingGenerator gen(s.model, sc, s.text, s.image_latent, s.H, s.W);
    FAIL() << "a CPU model accepted cuda_graphs";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cuda_graphs"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cpu"), std::string::npos) << e.what();
  }
}

TEST(StreamEngine, ANewPromptIsWrittenInPlaceAndTakesEffect) {
  StreamSetup s;
  StreamConfig sc;
  sc.seed = 5;
  const at::Tensor other = torch::randn({1, 5, s.config.text_dim});
  StreamingGenerator a(s.model, sc, s.text, s.image_latent, s.H, s.W);
  StreamingGenerator b(s.model, sc, other, s.image_latent, s.H, s.W);
  const at::Tensor a0 = a.next_chunk();
  a.reset();
  a.set_prompt(other);
  const at::Tensor a0_other = a.next_chunk(), b0 = b.next_chunk();
  EXPECT_TRUE(torch::equal(a0_other, b0));
  EXPECT_GT(test::max_abs_diff(a0, b0), 1e-4);  // the prompt does matter
}

// Chunk by chunk through the overlapped decoder (inline on the CPU) = the whole latent sequence decoded at once.
TEST(StreamEngine, OverlappedDecoderFramesEqualAWholeDecode) {
  torch::manual_seed(12);
  TinyVaeConfig vc;
  vc.latent_channels = 4;
  vc.encoder_width = 8;
  vc.decoder_widths = {8, 8, 8, 8};
  TinyVae vae(vc);
  vae->eval();
  LatentCodec codec(vae, {0.5, -0.2, 0.1, 0.0}, {1.5, 0.7, 1.0, 2.0});
  OverlappedDecoder decoder(codec, at::kCPU);
  std::vector<at::Tensor> chunks, frames;
  for (int i = 0; i < 3; ++i) {
    chunks.push_back(torch::randn({1, 4, 3, 2, 3}));
    decoder.submit(chunks.back());
    EXPECT_TRUE(decoder.pending());
    EXPECT_THROW(decoder.submit(chunks.back()), std::logic_error);  // one chunk in flight at a time
    const auto out = decoder.collect();
    EXPECT_GE(out.decode_ms, 0.0);
    frames.push_back(out.frames.clone());  // the host buffer is reused by the next chunk
  }
  EXPECT_EQ(frames[0].size(1), 4 * 3 - 3);
  EXPECT_EQ(frames[1].size(1), 4 * 3);
  const at::Tensor whole = codec.decode(at::cat(chunks, 2));  // [1, 4T - 3, 3, 16, 24]
  const at::Tensor streamed = at::cat(frames, 1);
  ASSERT_EQ(streamed.sizes(), whole.sizes());
  EXPECT_LT(test::max_abs_diff(streamed, whole), 1e-5);

  decoder.reset();  // a new stream: the first chunk drops the leading frames again
  decoder.submit(chunks[0]);
  EXPECT_TRUE(torch::allclose(decoder.collect().frames, frames[0], 1e-6, 1e-6));
}
