// Flow-matching schedule: shift, warped step lists, x0 from velocity.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "motionstream/diffusion/flow_schedule.h"

using namespace ms;

TEST(FlowSchedule, SelfForcingStepListWarpsThroughShift5) {
  const auto t = FlowSchedule{5.0}.warp({1000, 750, 500, 250});
  ASSERT_EQ(t.size(), 4u);
  EXPECT_NEAR(t[0], 1000.0, 1e-9);
  EXPECT_NEAR(t[1], 937.5, 1e-9);
  EXPECT_NEAR(t[2], 833.3333333, 1e-6);
  EXPECT_NEAR(t[3], 625.0, 1e-9);
  const auto three = FlowSchedule{5.0}.denoising_steps(3);  // 1000, 666.7, 333.3 warped
  EXPECT_NEAR(three[1], 1000.0 * (5.0 * 2 / 3) / (1 + 4.0 * 2 / 3), 1e-9);
  EXPECT_NEAR(three[2], 1000.0 * (5.0 / 3) / (1 + 4.0 / 3), 1e-9);
  EXPECT_NEAR(FlowSchedule{1.0}.shifted(0.3), 0.3, 1e-12);  // shift 1 is the identity
  EXPECT_THROW(FlowSchedule{5.0}.warp({1001}), std::invalid_argument);
  EXPECT_THROW(FlowSchedule{5.0}.denoising_steps(0), std::invalid_argument);
}

TEST(FlowSchedule, VelocityRecoversTheCleanSample) {
  torch::manual_seed(0);
  auto x0 = torch::randn({2, 3, 4}), noise = torch::randn({2, 3, 4});
  for (double s : {0.0, 0.25, 0.9, 1.0}) {
    auto xs = FlowSchedule::add_noise(x0, noise, s);
    auto back = FlowSchedule::x0_from_velocity(xs, FlowSchedule::velocity_target(x0, noise), s);
    EXPECT_LT((back - x0).abs().max().item<double>(), 1e-6) << s;
  }
  EXPECT_TRUE(torch::allclose(FlowSchedule::add_noise(x0, noise, 1.0), noise));
}
