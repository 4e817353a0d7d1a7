#include "motionstream/train/teacher_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>

#include "motionstream/diffusion/flow_schedule.h"
#include "motionstream/model/motion_model.h"
#include "motionstream/train/checkpoint.h"
#include "motionstream/train/clip_pool.h"
#include "motionstream/train/data_parallel.h"
#include "motionstream/train/training_run.h"
#include "motionstream/util/progress.h"

namespace fs = std::filesystem;

namespace ms {

void TeacherTrainConfig::validate() const {
  if (width % 16 || height % 16 || width <= 0 || height <= 0)
    throw std::invalid_argument("TeacherTrainConfig: width and height must be positive multiples of 16");
  if (frames < 5 || (frames - 1) % 4) throw std::invalid_argument("TeacherTrainConfig.frames must be 1 + 4k, k >= 1");
  if (batch < 1 || steps < 1 || !(lr > 0) || !(ema >= 0 && ema < 1) || !(shift > 0))
    throw std::invalid_argument("TeacherTrainConfig: batch, steps, lr, shift must be positive and ema in [0, 1)");
  if (!(uniform_fraction >= 0 && uniform_fraction <= 1))
    throw std::invalid_argument("TeacherTrainConfig.uniform_fraction must be in [0, 1], got " +
                                std::to_string(uniform_fraction));
  if (validate_every < 1 || validation_clips < 1)
    throw std::invalid_argument("TeacherTrainConfig: validate_every and validation_clips must be >= 1");
  data().validate();
  DistributedConfig{rank, world_size, master_addr, master_port}.validate();
  if (batch % world_size)
    throw std::invalid_argument("TeacherTrainConfig: batch " + std::to_string(batch) + " does not split over " +
                                std::to_string(world_size) + " processes");
  if (umt5.empty() != umt5_tokenizer.empty())
    throw std::invalid_argument("TeacherTrainConfig: umt5 and umt5_tokenizer go together (got umt5 '" + umt5 +
                                "', umt5_tokenizer '" + umt5_tokenizer + "')");
  const DitConfig model = ms::dit_preset(dit_preset);
  if (!model.image_condition || model.track_channels == 0)
    throw std::invalid_argument("TeacherTrainConfig.dit_preset '" + dit_preset +
                                "' has no image condition or no track head");
}

namespace {

// The words of the world's captions (photo descriptions included): the prompt vocabulary of a run.
std::vector<std::string> world_vocabulary(const world::WorldSpec& spec, const world::PhotoBank* photos) {
  std::vector<std::string> captions;
  for (uint64_t s = 0; s < 3000; ++s) captions.push_back(world::make_scene(spec, 7'000'000'000ULL + s, photos).caption);
  return build_vocabulary(captions);
}

// Built once per run and kept in the run folder (only the writing rank writes it; the others build the same list).
std::vector<std::string> run_vocabulary(const fs::path& dir, const world::WorldSpec& spec, const world::PhotoBank* photos,
                                        bool writer) {
  const fs::path path = dir / "vocabulary.json";
  if (fs::exists(path)) return nlohmann::json::parse(std::ifstream(path)).get<std::vector<std::string>>();
  auto vocabulary = world_vocabulary(spec, photos);
  if (writer) std::ofstream(path) << nlohmann::json(vocabulary).dump() << "\n";
  return vocabulary;
}

// Rectified-flow loss at noise levels s [B] with the given noise: || v(x_s) - (noise - x0) ||^2
at::Tensor flow_loss(MotionModel& model, const MotionBatch& b, const at::Tensor& s, const at::Tensor& noise) {
  const int64_t B = b.x0.size(0), T = b.x0.size(2);
  auto level = s.view({B, 1, 1, 1, 1});
  DitInput in;
  in.noisy = (1 - level) * b.x0 + level * noise;
  in.timesteps = (s * 1000.0).unsqueeze(1).expand({B, T}).contiguous();
  in.condition = b.condition;
  in.tracks = b.tracks;
  auto attn = MaskedSelfAttention::bidirectional({T, b.x0.size(3) / 2, b.x0.size(4) / 2}, model->dit->config().head_dim());
  auto velocity = model->dit->forward(in, model->encode_prompts(b.captions), attn);
  return (velocity - FlowSchedule::velocity_target(b.x0, noise)).pow(2).mean();
}

// Deterministic validation: fixed clips, every track given, noise levels 0.3 / 0.6 / 0.9, fixed noise. Also the same
// loss with the motion taken away (no tracks, no hint in the condition): the gap between the two is what the model
// makes of the tracks, zero for a model that ignores them however low its loss.
struct ValidationLoss {
  double with_motion = 0, without_motion = 0;
};

ValidationLoss validation_loss(MotionModel& model, const TeacherTrainConfig& c, LatentCodec& codec,
                               const world::PhotoBank* photos, const at::Device& device) {
  torch::NoGradGuard no_grad;
  model->eval();
  MotionDataConfig all = c.data();
  all.text_dropout = all.track_dropout = all.frame_zero_prob = 0;
  ValidationLoss total;
  int count = 0;
  for (uint64_t seed : world::validation_seeds(c.validation_clips)) {
    const world::Clip clip = world::render_clip(world_spec(c.width, c.height, c.frames), seed, photos, device);
    auto gen = at::detail::createCPUGenerator(seed);
    auto latents = codec.encode(clip.video.to(device).unsqueeze(0));  // [1, C, T, h, w]
    auto batch = make_motion_batch({&clip}, {latents[0]}, model->dit->config(), all, gen, &codec);
    MotionBatch still = batch;
    still.tracks = at::zeros_like(batch.tracks);
    still.condition = condition_without_motion(batch.condition);
    for (double s : {0.3, 0.6, 0.9}) {
      auto noise = at::randn(batch.x0.sizes(), gen).to(device);
      const auto level = at::full({1}, s, batch.x0.options());
      total.with_motion += flow_loss(model, batch, level, noise).item<double>();
      total.without_motion += flow_loss(model, still, level, noise).item<double>();
      ++count;
    }
  }
  model->train();
  return {total.with_motion / count, total.without_motion / count};
}

// Copies every parameter and buffer of the model folder into `model` (same architecture and vocabulary).
void start_from(MotionModelImpl& model, const std::string& folder) {
  torch::NoGradGuard no_grad;
  LoadedMotionModel source = load_motion_model(folder);
  if (source.model->uses_umt5() != model.uses_umt5())
    throw std::invalid_argument("init_from " + folder + ": its prompt encoder is " +
                                (source.model->uses_umt5() ? "umT5" : "a learned word encoder") + ", this run's is " +
                                (model.uses_umt5() ? "umT5" : "a learned word encoder"));
  if (!model.uses_umt5() && source.model->text->vocabulary() != model.text->vocabulary())
    throw std::invalid_argument("init_from " + folder + ": its prompt vocabulary differs from this run's");
  auto copy = [&](auto to, auto from, const char* what) {
    for (const auto& item : to) {
      const at::Tensor* value = from.find(item.key());
      if (!value || value->sizes() != item.value().sizes())
        throw std::invalid_argument("init_from " + folder + ": " + what + " '" + item.key() + "' is missing or of another shape");
      item.value().copy_(*value);
    }
  };
  copy(model.named_parameters(), source.model->named_parameters(), "parameter");
  copy(model.named_buffers(), source.model->named_buffers(), "buffer");
}

}  // namespace

at::Tensor training_noise_levels(int64_t count, double shift, double uniform_fraction, at::Generator& gen) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto u = at::rand({count}, gen, f64);
  auto s = shift * u / (1 + (shift - 1) * u);  // more time at high noise, where the layout is decided
  if (uniform_fraction > 0) s = at::where(at::rand({count}, gen, f64) < uniform_fraction, u, s);
  return s.to(at::kFloat);
}

int64_t train_teacher(const TeacherTrainConfig& c, const std::string& run_dir, const RunLimits& limits) {
  c.validate();
  const fs::path dir(run_dir);
  DataParallel parallel({c.rank, c.world_size, c.master_addr, c.master_port});
  if (parallel.is_writer())
    record_run_config(run_dir, c, {"steps", "checkpoint_minutes", "device", "render_device", "validate_every", "rank",
                                   "world_size", "master_port", "master_addr"},
                      TeacherTrainConfig{});
  const at::Device device(c.device);
  auto photos = open_photo_bank(c.photos);
  LatentCodec codec(c.codec, device);

  torch::manual_seed(c.seed);  // initial weights are part of the run
  DitConfig dit = dit_preset(c.dit_preset);
  dit.track_latent_copy = c.track_latent_copy;
  dit.track_warp_hint = c.track_warp_hint;
  dit.validate();
  MotionModel model{nullptr}, ema{nullptr};
  if (c.umt5.empty()) {
    const auto vocabulary = run_vocabulary(dir, world_spec(c.width, c.height, c.frames), photos.get(), parallel.is_writer());
    model = MotionModel(dit, vocabulary);
    ema = MotionModel(dit, vocabulary);
  } else {
    const Umt5TextSpec spec{fs::absolute(c.umt5).string(), fs::absolute(c.umt5_tokenizer).string(),
                            c.prompt_cache.empty() ? "" : fs::absolute(c.prompt_cache).string()};
    auto umt5 = open_umt5_prompt_encoder(spec, device);
    model = MotionModel(dit, umt5, spec);
    ema = MotionModel(dit, umt5, spec);
  }
  init_dit_weights(*model->dit, c.seed);
  // Only a fresh run starts from init_from; a resumed run has its own weights (and may outlive that folder).
  if (!c.init_from.empty() && !Checkpoints(run_dir).latest()) start_from(*model, c.init_from);
  model->to(device);
  ema->to(device);
  ema_update(*ema, *model, 0.0);  // start equal
  torch::optim::AdamW optimizer(model->parameters(),
                                torch::optim::AdamWOptions(c.lr).weight_decay(c.weight_decay).betas({0.9, 0.99}));
  TrainingRun run(run_dir, "teacher", c.steps, c.checkpoint_minutes, limits,
                  {{"model", model.get()}, {"ema", ema.get()}}, {{"optimizer", &optimizer}}, parallel.is_writer());
  ClipPool pool(clip_pool_config(world_spec(c.width, c.height, c.frames), c.batch, c.pool_size, c.fresh_per_step,
                                 c.seed, device, c.render_device),
                photos.get(), run.step());
  LatentCache latent_cache(codec, static_cast<size_t>(std::max(c.batch, c.pool_size)));
  const FlowSchedule schedule{c.shift};
  double smoothed = -1;
  for (bool more = run.wants_steps(); more;) {
    const int64_t step = run.step();
    for (auto& group : optimizer.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(scheduled_lr(c.lr, step, c.warmup_steps, c.steps));
    auto gen = at::detail::createCPUGenerator(c.seed * 104729 + static_cast<uint64_t>(step));
    auto clips = pool.next(step);
    // Every rank draws the whole global batch from the same seeds, then trains on its own rows.
    auto batch = make_motion_batch(clips, latent_cache.latents(clips, device), dit, c.data(), gen, &codec);
    auto s = training_noise_levels(c.batch, schedule.shift, c.uniform_fraction, gen).to(device);
    auto noise = at::randn(batch.x0.sizes(), gen).to(device);
    const int64_t first = parallel.slice_begin(c.batch), rows = parallel.slice_size(c.batch);
    auto loss = flow_loss(model, slice_batch(batch, first, rows), s.narrow(0, first, rows), noise.narrow(0, first, rows));
    optimizer.zero_grad();
    loss.backward();
    parallel.average_gradients(*model);
    torch::nn::utils::clip_grad_norm_(model->parameters(), c.grad_clip);
    optimizer.step();
    ema_update(*ema, *model, c.ema);

    const double value = loss.item<double>();
    smoothed = smoothed < 0 ? value : 0.98 * smoothed + 0.02 * value;
    nlohmann::json row{{"loss", value}};
    if (parallel.is_writer() && ((step + 1) % c.validate_every == 0 || step + 1 == c.steps)) {
      const ValidationLoss v = validation_loss(ema, c, codec, photos.get(), device);
      row["val_loss_ema"] = v.with_motion;
      row["val_loss_ema_no_motion"] = v.without_motion;
      std::fprintf(stderr, "\nstep %lld: validation flow loss (EMA) %.4f, without the motion %.4f\n",
                   static_cast<long long>(step + 1), v.with_motion, v.without_motion);
    }
    char figures[64];
    std::snprintf(figures, sizeof figures, "loss %.4f", smoothed);
    more = run.finish_step(row, figures);
  }
  if (!run.export_due() || !parallel.is_writer()) return run.step();
  const fs::path out = dir / "model";
  save_motion_model(ema, out.string(), fs::relative(fs::absolute(c.codec), fs::absolute(out)).string(),
                    {{"stage", "teacher"}, {"shift", c.shift}, {"steps", run.step()}});
  return run.step();
}

}  // namespace ms
