#include "motionstream/diffusion/sampler.h"

#include <torch/utils.h>

namespace ms {

at::Tensor guided_clip_velocity(MotionModel& model, const ClipConditions& c, const at::Tensor& x, double t,
                                const Guidance& guidance) {
  const int64_t B = x.size(0), T = x.size(2);
  // Branches side by side in the batch: (text, motion), then (no text, motion), then (text, no motion).
  std::vector<std::string> prompts = c.prompts;
  std::vector<at::Tensor> tracks{c.tracks};
  const bool need_motion_only = guidance.mode == GuidanceMode::kJoint || guidance.mode == GuidanceMode::kTextOnly;
  const bool need_text_only = guidance.mode == GuidanceMode::kJoint || guidance.mode == GuidanceMode::kMotionOnly;
  if (need_motion_only) {
    prompts.insert(prompts.end(), static_cast<size_t>(B), "");
    tracks.push_back(c.tracks);
  }
  if (need_text_only) {
    prompts.insert(prompts.end(), c.prompts.begin(), c.prompts.end());
    tracks.push_back(at::zeros_like(c.tracks));
  }
  const int64_t branches = static_cast<int64_t>(tracks.size());
  // The motion-free branch has no hint either (latent copy, warp hint): the later frames' condition latents zeroed,
  // as in a training sample whose tracks were dropped.
  std::vector<at::Tensor> conditions(static_cast<size_t>(branches), c.condition);
  if (need_text_only) conditions.back() = condition_without_motion(c.condition);
  DitInput in;
  in.noisy = x.repeat({branches, 1, 1, 1, 1});
  in.timesteps = at::full({B * branches, T}, t, x.options().dtype(at::kFloat));
  in.condition = at::cat(conditions, 0);
  in.tracks = at::cat(tracks, 0);
  auto attn = MaskedSelfAttention::bidirectional({T, x.size(3) / 2, x.size(4) / 2}, model->dit->config().head_dim());
  auto v = model->dit->forward(in, model->encode_prompts(prompts), attn).split(B, 0);
  const at::Tensor both = v[0];
  const at::Tensor motion = need_motion_only ? v[1] : at::Tensor();
  const at::Tensor text = need_text_only ? v[need_motion_only ? 2 : 1] : at::Tensor();
  return guided_velocity(guidance, both, motion, text);
}

at::Tensor sample_clip(MotionModel& model, const ClipConditions& c, const at::Tensor& noise,
                       const std::vector<double>& timesteps, const Guidance& guidance,
                       std::vector<at::Tensor>* trajectory) {
  torch::NoGradGuard no_grad;
  at::Tensor x = noise;
  for (size_t i = 0; i < timesteps.size(); ++i) {
    if (trajectory) trajectory->push_back(x);
    const double s = timesteps[i] / 1000.0, next = i + 1 < timesteps.size() ? timesteps[i + 1] / 1000.0 : 0.0;
    x = x + (next - s) * guided_clip_velocity(model, c, x, timesteps[i], guidance);  // dx/ds = v
  }
  if (trajectory) trajectory->push_back(x);
  return x;
}

}  // namespace ms
