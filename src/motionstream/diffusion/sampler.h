// Whole-clip sampling with a bidirectional model (the teacher): Euler steps of the flow ODE from noise to a clean
// sample, with joint text-motion guidance. Used for the teacher's own results and for the ODE trajectories that
// initialise the causal student.
#pragma once

#include <vector>

#include "motionstream/diffusion/guidance.h"
#include "motionstream/model/motion_model.h"

namespace ms {

struct ClipConditions {
  at::Tensor condition;              // [B, 4 + C, T, h, w]
  at::Tensor tracks;                 // [B, 4 * id_dim, T, h, w]; all zero = no motion
  std::vector<std::string> prompts;  // B prompts; "" = no text
};

// The guided velocity at one point of the trajectory: 1-3 model evaluations batched into one pass.
// x: [B, C, T, h, w], t: timestep in [0, 1000].
at::Tensor guided_clip_velocity(MotionModel& model, const ClipConditions& c, const at::Tensor& x, double t,
                                const Guidance& guidance);

// Integrates the ODE from `noise` through `timesteps` (descending, in (0, 1000]) down to t = 0 with Euler steps.
// If `trajectory` is given, it receives the state at every timestep (before stepping from it) and finally x0.
at::Tensor sample_clip(MotionModel& model, const ClipConditions& c, const at::Tensor& noise,
                       const std::vector<double>& timesteps, const Guidance& guidance,
                       std::vector<at::Tensor>* trajectory = nullptr);

}  // namespace ms
