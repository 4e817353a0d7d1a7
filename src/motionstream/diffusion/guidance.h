// Joint text-motion guidance (SPEC.md section 3): three velocities per step,
//   v = v_base + w_t (v(c_t, c_m) - v(0, c_m)) + w_m (v(c_t, c_m) - v(c_t, 0)),
//   v_base = a v(0, c_m) + (1 - a) v(c_t, 0),  a = w_t / (w_t + w_m).
// Text-only guidance ignores the tracks' strength (plain CFG on text with motion always on); motion-only the text's.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace ms {

enum class GuidanceMode { kNone, kJoint, kTextOnly, kMotionOnly };
GuidanceMode parse_guidance_mode(const std::string& name);  // "none", "joint", "text", "motion"

struct Guidance {
  GuidanceMode mode = GuidanceMode::kJoint;
  double text_weight = 3.0;    // w_t
  double motion_weight = 1.5;  // w_m
  // Model evaluations per step: 1 (none), 2 (text-only, motion-only) or 3 (joint).
  int evaluations() const;
};

// Combines the velocities. both = v(c_t, c_m); motion = v(0, c_m); text = v(c_t, 0) (undefined when not needed).
at::Tensor guided_velocity(const Guidance& g, const at::Tensor& both, const at::Tensor& motion, const at::Tensor& text);

}  // namespace ms
