#include "motionstream/train/dmd.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

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

void DmdConfig::validate() const {
  if (width % 16 || height % 16 || width <= 0 || height <= 0)
    throw std::invalid_argument("DmdConfig: width and height must be positive multiples of 16");
  if (frames < 5 || (frames - 1) % 4) throw std::invalid_argument("DmdConfig.frames must be 1 + 4k, k >= 1");
  if ((1 + (frames - 1) / 4) % chunk_frames)
    throw std::invalid_argument("DmdConfig: the latent frames are not a whole number of chunks");
  if (sinks.empty() || windows.empty()) throw std::invalid_argument("DmdConfig: sinks and windows need values");
  if (student_steps < 1 || critic_steps < 1 || batch < 1 || steps < 1 || !(lr > 0) || !(critic_lr > 0))
    throw std::invalid_argument("DmdConfig: steps, critic_steps, batch and learning rates must be positive");
  if (!(min_timestep > 0 && min_timestep < max_timestep && max_timestep < 1000))
    throw std::invalid_argument("DmdConfig: need 0 < min_timestep < max_timestep < 1000");
  parse_guidance_mode(guidance);
  MotionDataConfig{min_tracks, max_tracks, 0, 0, 0}.validate();
  DistributedConfig{rank, world_size, master_addr, master_port}.validate();
  if (batch % world_size)
    throw std::invalid_argument("DmdConfig: batch " + std::to_string(batch) + " does not split over " +
                                std::to_string(world_size) + " processes");
}

namespace {

// A data-parallel rank's rows [begin, begin + count) of a global batch of `total`. Random tensors are drawn for the
// whole batch and cut, so that the ranks' shares add up to exactly the one-process run.
struct Rows {
  int64_t begin = 0, count = 1, total = 1;
  at::Tensor randn(std::vector<int64_t> shape, at::Generator& gen, const at::TensorOptions& opts) const {
    shape[0] = total;
    return at::randn(shape, gen).narrow(0, begin, count).to(opts);
  }
};

// The student's self-rollout through the streaming cache: [B, C, T, h, w], gradient through one random denoising
// step per chunk (its x0 is where that chunk's rollout stops), nothing through the cached past.
at::Tensor self_rollout(MotionModel& student, const ClipConditions& c, const StreamLayout& layout,
                        const std::vector<double>& timesteps, int64_t latent_frames, const Rows& rows,
                        at::Generator& gen, bool with_gradient) {
  const int64_t B = c.condition.size(0), C = c.condition.size(1) - 4, h = c.condition.size(3), w = c.condition.size(4);
  const int64_t f = layout.chunk_frames;
  const auto opts = c.condition.options();
  KvCache cache(student->dit->config(), layout, B, {f, h / 2, w / 2}, opts);
  std::optional<torch::NoGradGuard> no_grad_all;
  if (!with_gradient) no_grad_all.emplace();
  TextKv text = student->encode_prompts(c.prompts);
  std::vector<at::Tensor> chunks;
  for (int64_t i = 0; i < latent_frames / f; ++i) {
    auto part = [&](const at::Tensor& t) { return t.narrow(2, i * f, f); };
    const int64_t exit = at::randint(static_cast<int64_t>(timesteps.size()), {1}, gen).item<int64_t>();
    at::Tensor x = rows.randn({B, C, f, h, w}, gen, opts), x0;
    cache.set_commit(false);
    for (int64_t k = 0; k <= exit; ++k) {
      std::optional<torch::NoGradGuard> no_grad;
      if (k != exit) no_grad.emplace();
      const double t = timesteps[static_cast<size_t>(k)];
      DitInput in{x, at::full({B, f}, t, opts), part(c.condition), part(c.tracks)};
      x0 = FlowSchedule::x0_from_velocity(x, student->dit->forward(in, text, cache), t / 1000.0);
      if (k < exit)
        x = FlowSchedule::add_noise(x0, rows.randn(x.sizes().vec(), gen, opts), timesteps[static_cast<size_t>(k + 1)] / 1000.0);
    }
    chunks.push_back(x0);
    torch::NoGradGuard no_grad;  // the chunk's clean pass: context for the chunks after it
    cache.set_commit(true);
    student->dit->forward(DitInput{x0.detach(), at::zeros({B, f}, opts), part(c.condition), part(c.tracks)}, text, cache);
  }
  return at::cat(chunks, 2);
}

// A noise level for the score models: uniform, warped by the shift, kept inside [min, max].
double score_timestep(const DmdConfig& c, at::Generator& gen) {
  const double u = at::rand({1}, gen, at::TensorOptions().dtype(at::kDouble)).item<double>();
  const double t = 1000.0 * FlowSchedule{c.score_shift}.shifted(u);
  return std::min(c.max_timestep, std::max(c.min_timestep, t));
}

at::Tensor predict_x0(MotionModel& model, const ClipConditions& c, const at::Tensor& x_t, double t, const Guidance& g) {
  return FlowSchedule::x0_from_velocity(x_t, guided_clip_velocity(model, c, x_t, t, g), t / 1000.0);
}

}  // namespace

int64_t train_dmd(const DmdConfig& c, const std::string& run_dir, const RunLimits& limits) {
  c.validate();
  const fs::path dir(run_dir);
  DataParallel parallel({c.rank, c.world_size, c.master_addr, c.master_port});
  if (parallel.is_writer())
    record_run_config(run_dir, c, {"steps", "checkpoint_minutes", "device", "render_device", "rank", "world_size",
                                   "master_port", "master_addr"});
  const at::Device device(c.device);
  auto photos = open_photo_bank(c.photos);
  auto teacher = load_motion_model(c.teacher, device);
  auto loaded_student = load_motion_model(c.student, device);
  auto student = loaded_student.model;
  auto ema = load_motion_model(c.student, device).model;
  auto critic = load_motion_model(c.teacher, device).model;  // the fake score starts as the real one
  LatentCodec codec(loaded_student.codec_folder, device);
  student->train();
  critic->train();
  auto adamw = [](MotionModel& m, double lr) {  // betas (0, 0.999) as in DMD
    return torch::optim::AdamW(m->parameters(), torch::optim::AdamWOptions(lr).betas({0.0, 0.999}).weight_decay(0.01));
  };
  auto student_optimizer = adamw(student, c.lr);
  auto critic_optimizer = adamw(critic, c.critic_lr);
  TrainingRun run(run_dir, "dmd", c.steps, c.checkpoint_minutes, limits,
                  {{"model", student.get()}, {"ema", ema.get()}, {"critic", critic.get()}},
                  {{"optimizer", &student_optimizer}, {"critic_optimizer", &critic_optimizer}}, parallel.is_writer());
  ClipPool pool(clip_pool_config(world_spec(c.width, c.height, c.frames), c.batch, c.pool_size, c.fresh_per_step,
                                 c.seed, device, c.render_device),
                photos.get(), run.step());
  LatentCache latent_cache(codec, static_cast<size_t>(std::max(c.batch, c.pool_size)));
  const auto timesteps = FlowSchedule{c.student_shift}.denoising_steps(c.student_steps);
  const int64_t latent_frames = 1 + (c.frames - 1) / 4;
  const Guidance real_guidance{parse_guidance_mode(c.guidance), c.text_weight, c.motion_weight};
  const Guidance no_guidance{GuidanceMode::kNone};

  auto pick = [](const std::vector<int64_t>& options, at::Generator& gen) {
    return options[static_cast<size_t>(at::randint(static_cast<int64_t>(options.size()), {1}, gen).item<int64_t>())];
  };
  for (bool more = run.wants_steps(); more;) {
    const int64_t step = run.step();
    auto gen = at::detail::createCPUGenerator(c.seed * 15485863 + static_cast<uint64_t>(step));
    auto clips = pool.next(step);
    const Rows rows{parallel.slice_begin(c.batch), parallel.slice_size(c.batch), c.batch};
    const MotionBatch b = slice_batch(make_motion_batch(clips, latent_cache.latents(clips, device),
                                                        student->dit->config(),
                                                        MotionDataConfig{c.min_tracks, c.max_tracks, 0, 0, 0}, gen,
                                                        &codec),
                                      rows.begin, rows.count);
    const ClipConditions conditions{b.condition, b.tracks, b.captions};
    const StreamLayout layout{c.chunk_frames, pick(c.sinks, gen), pick(c.windows, gen)};

    // The critic learns the student's current distribution with the plain flow loss.
    double critic_loss_sum = 0;
    for (int64_t j = 0; j < c.critic_steps; ++j) {
      auto x = self_rollout(student, conditions, layout, timesteps, latent_frames, rows, gen, false);
      const double s = score_timestep(c, gen) / 1000.0;
      auto noise = rows.randn(x.sizes().vec(), gen, x.options());
      DitInput in{FlowSchedule::add_noise(x, noise, s), at::full({x.size(0), latent_frames}, s * 1000.0, x.options()),
                  b.condition, b.tracks};
      auto attn = MaskedSelfAttention::bidirectional({latent_frames, x.size(3) / 2, x.size(4) / 2},
                                                     critic->dit->config().head_dim());
      auto loss = (critic->dit->forward(in, critic->encode_prompts(b.captions), attn) -
                   FlowSchedule::velocity_target(x, noise)).pow(2).mean();
      critic_optimizer.zero_grad();
      loss.backward();
      parallel.average_gradients(*critic);
      torch::nn::utils::clip_grad_norm_(critic->parameters(), c.grad_clip);
      critic_optimizer.step();
      critic_loss_sum += loss.item<double>();
    }

    // The student follows the difference between the critic's and the teacher's denoised estimates.
    auto x = self_rollout(student, conditions, layout, timesteps, latent_frames, rows, gen, true);
    const double t = score_timestep(c, gen);
    at::Tensor target;
    {
      torch::NoGradGuard no_grad;
      auto x_t = FlowSchedule::add_noise(x.detach(), rows.randn(x.sizes().vec(), gen, x.options()), t / 1000.0);
      auto real = predict_x0(teacher.model, conditions, x_t, t, real_guidance);
      auto fake = predict_x0(critic, conditions, x_t, t, no_guidance);
      auto scale = (x.detach() - real).abs().flatten(1).mean(1).clamp_min(1e-6).view({-1, 1, 1, 1, 1});
      target = x.detach() - (fake - real) / scale;
    }
    auto loss = 0.5 * (x - target).pow(2).mean();
    student_optimizer.zero_grad();
    loss.backward();
    parallel.average_gradients(*student);
    torch::nn::utils::clip_grad_norm_(student->parameters(), c.grad_clip);
    student_optimizer.step();
    ema_update(*ema, *student, c.ema);

    nlohmann::json row{{"dmd_loss", loss.item<double>()},
                       {"critic_loss", critic_loss_sum / static_cast<double>(c.critic_steps)},
                       {"timestep", t}, {"sink", layout.sink_chunks}, {"window", layout.window_chunks}};
    char figures[80];
    std::snprintf(figures, sizeof figures, "dmd %.4f  critic %.4f", row["dmd_loss"].get<double>(),
                  row["critic_loss"].get<double>());
    more = run.finish_step(row, figures);
  }
  if (!run.export_due() || !parallel.is_writer()) return run.step();
  const fs::path out = dir / "model";
  nlohmann::json extra = loaded_student.description;
  extra.erase("dit");
  extra.erase("vocabulary");
  extra.erase("text_encoder");
  extra.erase("codec");
  extra["stage"] = "dmd";
  extra["steps"] = run.step();
  save_motion_model(ema, out.string(),
                    fs::relative(fs::absolute(loaded_student.codec_folder), fs::absolute(out)).string(), extra);
  return run.step();
}

}  // namespace ms
