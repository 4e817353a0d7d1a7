// Rectified-flow (flow matching) noise schedule with timestep shift.
//
//   x_s = (1 - s) x0 + s * noise,  the model predicts v = noise - x0,  so x0 = x_s - s v.
//   Shift k warps a noise level s in [0, 1] to s' = k s / (1 + (k - 1) s); the model's timestep is t = 1000 s'.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace ms {

struct FlowSchedule {
  double shift = 5.0;  // Self-Forcing / MotionStream student: 5; MotionStream teacher: 6

  double shifted(double s) const { return shift * s / (1.0 + (shift - 1.0) * s); }
  // Warp timesteps given on the unshifted scale [0, 1000] through the shift, e.g. with shift 5:
  // {1000, 750, 500, 250} -> {1000, 937.5, 833.3, 625}.
  std::vector<double> warp(const std::vector<double>& timesteps) const;
  // K evenly spaced timesteps 1000, 1000 (K-1)/K, ..., 1000/K, warped.
  std::vector<double> denoising_steps(int64_t steps) const;

  static double noise_level(double timestep) { return timestep / 1000.0; }
  // x0 = x_s - s v
  static at::Tensor x0_from_velocity(const at::Tensor& x_s, const at::Tensor& velocity, double s);
  // (1 - s) x0 + s noise: a clean sample pushed to noise level s with the given (fresh) noise
  static at::Tensor add_noise(const at::Tensor& x0, const at::Tensor& noise, double s);
  // the regression target of the flow loss
  static at::Tensor velocity_target(const at::Tensor& x0, const at::Tensor& noise) { return noise - x0; }
};

}  // namespace ms
