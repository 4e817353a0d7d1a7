#include "motionstream/diffusion/guidance.h"

#include <stdexcept>

namespace ms {

GuidanceMode parse_guidance_mode(const std::string& name) {
  if (name == "none") return GuidanceMode::kNone;
  if (name == "joint") return GuidanceMode::kJoint;
  if (name == "text") return GuidanceMode::kTextOnly;
  if (name == "motion") return GuidanceMode::kMotionOnly;
  throw std::invalid_argument("unknown guidance '" + name + "' (known: none, joint, text, motion)");
}

int Guidance::evaluations() const {
  switch (mode) {
    case GuidanceMode::kNone: return 1;
    case GuidanceMode::kJoint: return 3;
    default: return 2;
  }
}

at::Tensor guided_velocity(const Guidance& g, const at::Tensor& both, const at::Tensor& motion, const at::Tensor& text) {
  switch (g.mode) {
    case GuidanceMode::kNone:
      return both;
    case GuidanceMode::kTextOnly:  // CFG on text; motion is given to both branches
      return motion + g.text_weight * (both - motion);
    case GuidanceMode::kMotionOnly:  // CFG on motion; text is given to both branches
      return text + g.motion_weight * (both - text);
    case GuidanceMode::kJoint: {
      const double a = g.text_weight / (g.text_weight + g.motion_weight);
      auto base = motion * a + text * (1.0 - a);
      return base + g.text_weight * (both - motion) + g.motion_weight * (both - text);
    }
  }
  throw std::logic_error("unreachable guidance mode");
}

}  // namespace ms
