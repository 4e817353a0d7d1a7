#include "media/validation_report.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <vector>

#include "media/evaluation.h"
#include "media/video_io.h"
#include "motionstream/diffusion/flow_schedule.h"
#include "motionstream/diffusion/sampler.h"
#include "motionstream/model/motion_model.h"
#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/stream/streaming_generator.h"
#include "motionstream/tracks/track_warp.h"
#include "motionstream/train/motion_batch.h"
#include "motionstream/train/training_run.h"
#include "motionstream/util/progress.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ms::media {

namespace {

double model_shift(const LoadedMotionModel& m, double fallback) {
  return m.description.contains("shift") && m.description["shift"].is_number() ? m.description["shift"].get<double>()
                                                                                : fallback;
}

// The I2V condition's latents of a warp-hint model's batch: frame 0 the image's own, later frames the first frame
// warped along the tracks. -> [1, C, T, h, w]
at::Tensor condition_hint(const MotionBatch& batch) {
  const int64_t C = batch.x0.size(1);
  return batch.condition.narrow(1, batch.condition.size(1) - C, C);
}

// The method's video for one clip. -> [T, 3, H, W]
at::Tensor generate(const ValidationOptions& o, const world::Clip& clip, const MotionBatch& batch,
                    LoadedMotionModel* model, LatentCodec* codec) {
  const int64_t T = clip.video.size(0);
  const at::Tensor first = clip.video[0];  // [3, H, W]
  const TrackSet& tracks = batch.track_sets[0];
  if (o.method == "still") return first.unsqueeze(0).expand({T, -1, -1, -1}).contiguous();
  if (o.method == "truth") return clip.video;
  if (o.method == "warp") return warp_along_tracks(first, tracks, 0, T);
  if (o.method == "codec") return codec->decode(batch.x0)[0].narrow(0, 0, T);
  if (o.method == "hint") return codec->decode(condition_hint(batch))[0].narrow(0, 0, T);

  auto gen = at::detail::createCPUGenerator(o.seed * 7919 + clip.seed);
  if (o.method == "teacher") {
    const ClipConditions conditions{batch.condition, batch.tracks, batch.captions};
    at::Tensor start = at::randn(batch.x0.sizes(), gen);
    auto timesteps = FlowSchedule{model_shift(*model, 6.0)}.denoising_steps(o.steps > 0 ? o.steps : 20);
    if (o.hint_start < 1000) {
      timesteps.erase(std::remove_if(timesteps.begin(), timesteps.end(), [&](double t) { return t > o.hint_start; }),
                      timesteps.end());
      if (timesteps.empty() || timesteps.front() < o.hint_start) timesteps.insert(timesteps.begin(), o.hint_start);
      start = FlowSchedule::add_noise(condition_hint(batch), start, FlowSchedule::noise_level(o.hint_start));
    }
    const at::Tensor x0 = sample_clip(model->model, conditions, start, timesteps, o.guidance);
    return codec->decode(x0)[0].narrow(0, 0, T);
  }
  // student: streamed through the cache exactly as `generate` and the live server do.
  StreamConfig config;
  config.layout = o.layout;
  config.timesteps = FlowSchedule{model_shift(*model, 5.0)}.denoising_steps(o.steps > 0 ? o.steps : 3);
  config.seed = o.seed * 7919 + clip.seed;
  const at::Tensor text = model->model->prompt_context({clip.caption});
  const at::Tensor image_latent = codec->encode(first.view({1, 1, 3, o.height, o.width})).select(2, 0);
  StreamingGenerator generator(model->model->dit, config, text, image_latent, o.height / 8, o.width / 8);
  if (model->model->dit->config().image_branch())
    generator.set_image_tokens(model->model->image_tokens(first.view({1, 3, o.height, o.width})));
  if (model->model->dit->config().track_warp_hint) generator.set_warp_hint_source(*codec, first);
  generator.set_tracks(tracks);
  StreamingDecoder decoder(codec->vae());
  std::vector<at::Tensor> frames;
  int64_t have = 0;
  while (have < T) {
    const at::Tensor latents = generator.next_chunk();  // [1, C, chunk, h, w]
    for (int64_t f = 0; f < latents.size(2); ++f) {
      frames.push_back(decoder.push(codec->denormalize_frame(latents.select(2, f)))[0]);
      have += frames.back().size(0);
    }
  }
  return at::cat(frames).narrow(0, 0, T);
}

}  // namespace

json validation_report(const ValidationOptions& o) {
  static const std::vector<std::string> methods{"still", "truth", "warp", "codec", "hint", "teacher", "student"};
  if (std::find(methods.begin(), methods.end(), o.method) == methods.end()) {
    std::string names;
    for (const auto& m : methods) names += (names.empty() ? "" : ", ") + m;
    throw std::invalid_argument("method must be one of " + names + ", got '" + o.method + "'");
  }
  if (!(o.hint_start > 0 && o.hint_start <= 1000))
    throw std::invalid_argument("hint_start must be in (0, 1000], got " + std::to_string(o.hint_start));
  if (o.clips < 1 || o.tracks < 1) throw std::invalid_argument("clips and tracks must be >= 1");
  if ((o.frames - 1) % 4 != 0) throw std::invalid_argument("frames must be 1 + 4k, got " + std::to_string(o.frames));
  const bool learned = o.method == "teacher" || o.method == "student";
  const bool needs_model = learned || o.method == "codec" || o.method == "hint";  // codec, hint: the folder's codec
  if (needs_model && o.model_dir.empty()) throw std::invalid_argument("method " + o.method + " needs --model DIR");
  torch::NoGradGuard no_grad;

  std::unique_ptr<LoadedMotionModel> model;
  std::unique_ptr<LatentCodec> codec;
  DitConfig dit = dit_preset("tiny-motion");  // the batch layout for the baselines (only the tracks are used)
  if (needs_model) {
    model = std::make_unique<LoadedMotionModel>(load_motion_model(o.model_dir));
    model->model->eval();
    codec = std::make_unique<LatentCodec>(model->codec_folder);
    dit = model->model->dit->config();
  }
  if (o.method == "hint" && !dit.track_warp_hint)
    throw std::invalid_argument("method hint needs a model trained with the warp hint, got " + o.model_dir);
  if (o.hint_start < 1000 && !(o.method == "teacher" && dit.track_warp_hint))
    throw std::invalid_argument("hint_start needs a teacher trained with the warp hint, got method " + o.method +
                                (o.model_dir.empty() ? "" : " (" + o.model_dir + ")"));
  if (!o.videos_dir.empty()) fs::create_directories(o.videos_dir);

  const auto photos = open_photo_bank("");
  const world::WorldSpec spec = world_spec(o.width, o.height, o.frames);
  MotionDataConfig data;
  data.min_tracks = data.max_tracks = o.tracks;
  data.text_dropout = data.track_dropout = data.frame_zero_prob = 0.0;

  json clips = json::array();
  double epe = 0, epe_reliable = 0, psnr_sum = 0, ssim_sum = 0;
  int64_t epe_count = 0, epe_reliable_count = 0, psnr_count = 0;
  Progress progress("evaluate " + o.method, o.clips);
  int64_t done = 0;
  for (uint64_t seed : world::validation_seeds(o.clips)) {
    const world::Clip clip = world::render_clip(spec, seed, photos.get());
    // The same tracks for every method: drawn from the clip's seed.
    auto gen = at::detail::createCPUGenerator(seed);
    const at::Tensor latents = codec ? codec->encode(clip.video.unsqueeze(0))[0]
                                     : at::zeros({dit.latent_channels, (o.frames - 1) / 4 + 1, o.height / 8, o.width / 8});
    const MotionBatch batch = make_motion_batch({&clip}, {latents}, dit, data, gen, codec.get());
    const at::Tensor video = generate(o, clip, batch, model.get(), codec.get()).clamp(0.0, 1.0);  // [T, 3, H, W]
    // The EPE also over the points the tracker follows on the real clip (within 2 px on every visible frame).
    const EvalReport report = evaluate_video(video, batch.track_sets[0], clip.video);
    json row = to_json(report);
    row["seed"] = seed;
    row["caption"] = clip.caption;
    clips.push_back(row);
    if (std::isfinite(report.motion.epe)) epe += report.motion.epe, ++epe_count;
    if (std::isfinite(report.motion_reliable.epe)) epe_reliable += report.motion_reliable.epe, ++epe_reliable_count;
    if (std::isfinite(report.psnr)) psnr_sum += report.psnr, ssim_sum += report.ssim, ++psnr_count;
    if (!o.videos_dir.empty()) {
      VideoWriter writer((fs::path(o.videos_dir) / ("clip-" + std::to_string(seed) + ".mp4")).string(), 2 * o.width,
                         o.height, spec.fps);
      writer.write(at::cat({clip.video, video}, 3));
      // A contact sheet: ground truth above, the method below, every 4th frame.
      const at::Tensor picks = at::arange(0, o.frames, 4);
      auto strip = [&](const at::Tensor& v) { return at::cat(v.index_select(0, picks).unbind(0), 2); };  // [3, H, W*n]
      write_image((fs::path(o.videos_dir) / ("clip-" + std::to_string(seed) + ".png")).string(),
                  at::cat({strip(clip.video), strip(video)}, 1));
    }
    progress.update(++done);
  }
  progress.finish();
  json mean = {{"epe", epe_count ? json(epe / epe_count) : json()},
               {"epe_reliable", epe_reliable_count ? json(epe_reliable / epe_reliable_count) : json()},
               {"psnr", psnr_count ? json(psnr_sum / psnr_count) : json()},
               {"ssim", psnr_count ? json(ssim_sum / psnr_count) : json()}};
  json report = {{"method", o.method},   {"model", o.model_dir},  {"clips", clips},       {"mean", mean},
                 {"width", o.width},     {"height", o.height},    {"frames", o.frames},   {"tracks", o.tracks}};
  static const char* modes[] = {"none", "joint", "text", "motion"};
  if (o.method == "teacher")
    report["guidance"] = {{"mode", modes[static_cast<int>(o.guidance.mode)]},
                          {"text_weight", o.guidance.text_weight},
                          {"motion_weight", o.guidance.motion_weight}};
  if (o.method == "student")
    report["layout"] = {{"chunk", o.layout.chunk_frames}, {"sink", o.layout.sink_chunks}, {"window", o.layout.window_chunks}};
  if (learned) report["steps"] = o.steps > 0 ? o.steps : (o.method == "teacher" ? 20 : 3);
  if (o.hint_start < 1000) report["hint_start"] = o.hint_start;
  return report;
}

}  // namespace ms::media
