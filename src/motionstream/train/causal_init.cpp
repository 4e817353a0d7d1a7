#include "motionstream/train/causal_init.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "motionstream/diffusion/flow_schedule.h"
#include "motionstream/diffusion/sampler.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/stream/kv_cache.h"
#include "motionstream/train/checkpoint.h"
#include "motionstream/train/clip_pool.h"
#include "motionstream/train/data_parallel.h"
#include "motionstream/train/motion_batch.h"
#include "motionstream/train/training_run.h"
#include "motionstream/util/progress.h"

namespace fs = std::filesystem;

namespace ms {

std::vector<double> CausalInitConfig::student_timesteps() const {
  return FlowSchedule{student_shift}.denoising_steps(student_steps);
}

std::vector<double> CausalInitConfig::teacher_timesteps() const {
  auto coarse = student_timesteps();
  coarse.push_back(0.0);
  std::vector<double> fine;
  for (size_t i = 0; i + 1 < coarse.size(); ++i)
    for (int64_t j = 0; j < teacher_substeps; ++j)
      fine.push_back(coarse[i] + (coarse[i + 1] - coarse[i]) * static_cast<double>(j) / static_cast<double>(teacher_substeps));
  return fine;  // student timestep k sits at index k * teacher_substeps
}

void CausalInitConfig::validate() const {
  if (width % 16 || height % 16 || width <= 0 || height <= 0)
    throw std::invalid_argument("CausalInitConfig: width and height must be positive multiples of 16");
  if (frames < 5 || (frames - 1) % 4) throw std::invalid_argument("CausalInitConfig.frames must be 1 + 4k, k >= 1");
  const int64_t latent_frames = 1 + (frames - 1) / 4;
  if (chunk_frames < 1 || latent_frames % chunk_frames)
    throw std::invalid_argument("CausalInitConfig: " + std::to_string(latent_frames) +
                                " latent frames are not a whole number of chunks of " + std::to_string(chunk_frames));
  if (sinks.empty() || windows.empty()) throw std::invalid_argument("CausalInitConfig: sinks and windows need values");
  for (auto s : sinks) StreamLayout{chunk_frames, s, 1}.validate();
  for (auto w : windows) StreamLayout{chunk_frames, 0, w}.validate();
  if (student_steps < 1 || teacher_substeps < 1 || batch < 1 || steps < 1 || !(lr > 0) || !(ema >= 0 && ema < 1))
    throw std::invalid_argument("CausalInitConfig: steps, substeps, batch, lr must be positive and ema in [0, 1)");
  if (rollout_reuse < 1)
    throw std::invalid_argument("CausalInitConfig.rollout_reuse must be >= 1, got " + std::to_string(rollout_reuse));
  if (validate_every < 1 || validation_clips < 1)
    throw std::invalid_argument("CausalInitConfig: validate_every and validation_clips must be >= 1");
  parse_guidance_mode(guidance);
  MotionDataConfig{min_tracks, max_tracks, 0, 0, 0}.validate();
  DistributedConfig{rank, world_size, master_addr, master_port}.validate();
  if (batch % world_size)
    throw std::invalid_argument("CausalInitConfig: batch " + std::to_string(batch) + " does not split over " +
                                std::to_string(world_size) + " processes");
}

namespace {

struct Rollout {
  ClipConditions conditions;
  std::vector<at::Tensor> states;  // the teacher's trajectory at each student timestep: [B, C, T, h, w]
  at::Tensor x0;                   // the teacher's clean result
};

// Rows [first, first + rows) of the batch the clips make (the data-parallel share; every rank draws the whole batch
// and its noise from the same generator, so the shares add up to the one-process run).
Rollout teacher_rollout(MotionModel& teacher, const CausalInitConfig& c, const std::vector<const world::Clip*>& clips,
                        const std::vector<at::Tensor>& latents, LatentCodec& codec, at::Generator& gen, int64_t first,
                        int64_t rows) {
  const MotionDataConfig data{c.min_tracks, c.max_tracks, 0, 0, 0};  // the guided result is the target: no dropout
  MotionBatch whole = make_motion_batch(clips, latents, teacher->dit->config(), data, gen, &codec);
  auto noise = at::randn(whole.x0.sizes(), gen).narrow(0, first, rows).to(whole.x0.device());
  const MotionBatch b = slice_batch(whole, first, rows);
  Rollout r;
  r.conditions = {b.condition, b.tracks, b.captions};
  std::vector<at::Tensor> trajectory;
  const Guidance guidance{parse_guidance_mode(c.guidance), c.text_weight, c.motion_weight};
  r.x0 = sample_clip(teacher, r.conditions, noise, c.teacher_timesteps(), guidance, &trajectory);
  for (int64_t k = 0; k < c.student_steps; ++k) r.states.push_back(trajectory[static_cast<size_t>(k * c.teacher_substeps)]);
  return r;
}

// The student streams the clip chunk by chunk: from the teacher's state at its timestep k (one drawn per chunk) it
// predicts x0 and is pulled to the teacher's result; the teacher's clean chunk then enters the cache as context.
at::Tensor causal_loss(MotionModel& student, const Rollout& r, const StreamLayout& layout,
                       const std::vector<double>& timesteps, const std::vector<int64_t>& step_per_chunk) {
  const int64_t B = r.x0.size(0), c = layout.chunk_frames, chunks = r.x0.size(2) / c;
  const int64_t h = r.x0.size(3), w = r.x0.size(4);
  KvCache cache(student->dit->config(), layout, B, {c, h / 2, w / 2}, r.x0.options());
  TextKv text = student->encode_prompts(r.conditions.prompts);
  at::Tensor loss = at::zeros({}, r.x0.options());
  for (int64_t i = 0; i < chunks; ++i) {
    auto part = [&](const at::Tensor& t) { return t.narrow(2, i * c, c); };
    const double t = timesteps[static_cast<size_t>(step_per_chunk[static_cast<size_t>(i)])];
    DitInput in{part(r.states[static_cast<size_t>(step_per_chunk[static_cast<size_t>(i)])]),
                at::full({B, c}, t, r.x0.options()), part(r.conditions.condition), part(r.conditions.tracks)};
    cache.set_commit(false);
    auto x0 = FlowSchedule::x0_from_velocity(in.noisy, student->dit->forward(in, text, cache), t / 1000.0);
    loss = loss + (x0 - part(r.x0)).pow(2).mean();
    torch::NoGradGuard no_grad;  // the clean pass writes context; no gradient through the past
    cache.set_commit(true);
    student->dit->forward(DitInput{part(r.x0), at::zeros({B, c}, r.x0.options()), in.condition, in.tracks}, text, cache);
  }
  return loss / static_cast<double>(chunks);
}

}  // namespace

int64_t train_causal_init(const CausalInitConfig& c, const std::string& run_dir, const RunLimits& limits) {
  c.validate();
  const fs::path dir(run_dir);
  DataParallel parallel({c.rank, c.world_size, c.master_addr, c.master_port});
  if (parallel.is_writer())
    record_run_config(run_dir, c, {"steps", "checkpoint_minutes", "device", "render_device", "validate_every", "rank",
                                   "world_size", "master_port", "master_addr"},
                      CausalInitConfig{});
  const at::Device device(c.device);
  auto photos = open_photo_bank(c.photos);
  auto teacher = load_motion_model(c.teacher, device);
  LatentCodec codec(teacher.codec_folder, device);
  const std::string& init = c.student_init.empty() ? c.teacher : c.student_init;
  auto student = load_motion_model(init, device).model;
  auto ema = load_motion_model(init, device).model;
  if (nlohmann::json(student->dit->config()) != nlohmann::json(teacher.model->dit->config()))
    throw std::invalid_argument("CausalInitConfig.student_init: " + init + " is not a model of the teacher's shape");
  student->train();
  torch::optim::AdamW optimizer(student->parameters(),
                                torch::optim::AdamWOptions(c.lr).weight_decay(c.weight_decay).betas({0.9, 0.99}));
  TrainingRun run(run_dir, "causal-init", c.steps, c.checkpoint_minutes, limits,
                  {{"model", student.get()}, {"ema", ema.get()}}, {{"optimizer", &optimizer}}, parallel.is_writer());
  const ClipPoolConfig pool_config = clip_pool_config(world_spec(c.width, c.height, c.frames), c.batch, c.pool_size,
                                                      c.fresh_per_step, c.seed, device, c.render_device);
  ClipPool pool(pool_config, photos.get(), run.step());
  LatentCache latent_cache(codec, static_cast<size_t>(std::max(c.batch, c.pool_size)));
  const auto timesteps = c.student_timesteps();
  const int64_t chunks = (1 + (c.frames - 1) / 4) / c.chunk_frames;
  // A chunk sees window context only once the sink is full and a chunk has gone by: S + 2 chunks per clip.
  if (parallel.is_writer() && chunks < *std::min_element(c.sinks.begin(), c.sinks.end()) + 2)
    std::fprintf(stderr, "causal init: %lld chunks per clip never fill the window after the sink: the student learns no "
                 "window context (a longer --frames does)\n", static_cast<long long>(chunks));

  auto pick = [](const std::vector<int64_t>& options, at::Generator& gen) {
    return options[static_cast<size_t>(at::randint(static_cast<int64_t>(options.size()), {1}, gen).item<int64_t>())];
  };
  double smoothed = -1;
  Rollout rollout;
  int64_t rollout_step = -1;  // the step whose batch `rollout` was sampled for
  for (bool more = run.wants_steps(); more;) {
    const int64_t step = run.step();
    for (auto& group : optimizer.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(scheduled_lr(c.lr, step, c.warmup_steps, c.steps));
    const auto clips = pool.next(step);  // every step, so that the pool stays the one a resumed run rebuilds
    // Steps [source, source + rollout_reuse) share the rollout of step source's batch, drawn from source's seed.
    const int64_t source = step - step % c.rollout_reuse;
    if (source != rollout_step) {
      std::optional<ClipPool> replay;  // resumed inside a block: rebuild the batch its first step drew
      if (source != step) replay.emplace(pool_config, photos.get(), source);
      const auto batch_clips = replay ? replay->next(source) : clips;
      auto rollout_gen = at::detail::createCPUGenerator(c.seed * 130363 + static_cast<uint64_t>(source));
      rollout = teacher_rollout(teacher.model, c, batch_clips, latent_cache.latents(batch_clips, device), codec,
                                rollout_gen, parallel.slice_begin(c.batch), parallel.slice_size(c.batch));
      rollout_step = source;
    }
    auto gen = at::detail::createCPUGenerator(c.seed * 130363 + static_cast<uint64_t>(step) + (uint64_t{1} << 40));
    const StreamLayout layout{c.chunk_frames, pick(c.sinks, gen), pick(c.windows, gen)};
    std::vector<int64_t> step_per_chunk;
    for (int64_t i = 0; i < chunks; ++i) step_per_chunk.push_back(at::randint(c.student_steps, {1}, gen).item<int64_t>());
    auto loss = causal_loss(student, rollout, layout, timesteps, step_per_chunk);
    optimizer.zero_grad();
    loss.backward();
    parallel.average_gradients(*student);
    torch::nn::utils::clip_grad_norm_(student->parameters(), c.grad_clip);
    optimizer.step();
    ema_update(*ema, *student, c.ema);

    const double value = loss.item<double>();
    smoothed = smoothed < 0 ? value : 0.98 * smoothed + 0.02 * value;
    nlohmann::json row{{"loss", value}, {"sink", layout.sink_chunks}, {"window", layout.window_chunks}};
    if (parallel.is_writer() && ((step + 1) % c.validate_every == 0 || step + 1 == c.steps)) {
      torch::NoGradGuard no_grad;
      double total = 0;
      for (uint64_t seed : world::validation_seeds(c.validation_clips)) {
        const world::Clip clip = world::render_clip(world_spec(c.width, c.height, c.frames), seed, photos.get(), device);
        auto vgen = at::detail::createCPUGenerator(seed);
        const Rollout r = teacher_rollout(teacher.model, c, {&clip}, latent_cache.latents({&clip}, device), codec, vgen, 0, 1);
        total += causal_loss(ema, r, {c.chunk_frames, c.sinks.front(), c.windows.front()}, timesteps,
                             std::vector<int64_t>(static_cast<size_t>(chunks), 0))
                     .item<double>();
      }
      row["val_loss_ema"] = total / static_cast<double>(c.validation_clips);
      std::fprintf(stderr, "\nstep %lld: validation x0 loss from noise (EMA) %.4f\n", static_cast<long long>(step + 1),
                   row["val_loss_ema"].get<double>());
    }
    char figures[64];
    std::snprintf(figures, sizeof figures, "loss %.4f", smoothed);
    more = run.finish_step(row, figures);
  }
  if (!run.export_due() || !parallel.is_writer()) return run.step();
  const fs::path out = dir / "model";
  save_motion_model(ema, out.string(), fs::relative(fs::absolute(teacher.codec_folder), fs::absolute(out)).string(),
                    {{"stage", "causal-init"},
                     {"stream", {{"chunk_frames", c.chunk_frames}, {"timesteps", timesteps}, {"shift", c.student_shift}}},
                     {"steps", run.step()}});
  return run.step();
}

}  // namespace ms
