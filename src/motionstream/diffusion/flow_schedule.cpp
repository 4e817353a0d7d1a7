#include "motionstream/diffusion/flow_schedule.h"

#include <stdexcept>
#include <string>

namespace ms {

std::vector<double> FlowSchedule::warp(const std::vector<double>& timesteps) const {
  std::vector<double> out;
  out.reserve(timesteps.size());
  for (double t : timesteps) {
    if (!(t >= 0.0 && t <= 1000.0))
      throw std::invalid_argument("FlowSchedule::warp: timestep " + std::to_string(t) + " outside [0, 1000]");
    out.push_back(1000.0 * shifted(t / 1000.0));
  }
  return out;
}

std::vector<double> FlowSchedule::denoising_steps(int64_t steps) const {
  if (steps < 1) throw std::invalid_argument("FlowSchedule: denoising steps must be >= 1, got " + std::to_string(steps));
  std::vector<double> base;
  for (int64_t i = 0; i < steps; ++i) base.push_back(1000.0 * static_cast<double>(steps - i) / static_cast<double>(steps));
  return warp(base);
}

at::Tensor FlowSchedule::x0_from_velocity(const at::Tensor& x_s, const at::Tensor& velocity, double s) {
  return x_s - velocity * s;
}

at::Tensor FlowSchedule::add_noise(const at::Tensor& x0, const at::Tensor& noise, double s) {
  return x0 * (1.0 - s) + noise * s;
}

}  // namespace ms
