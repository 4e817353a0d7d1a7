// umT5 encoder benchmark: seconds per prompt of text_len tokens through the umT5-XXL layout on this machine, with
// random weights and only --blocks of the 24 blocks built (one XXL block is 193M parameters), so that it fits small
// machines; the full encoder's time is estimated as 24x a block. Prints JSON lines; never fails on a number.
//   umt5_bench [--blocks 1] [--tokens 512] [--dtype fp32|bf16] [--device cpu|cuda] [--threads 1] [--repeats 2]
#include <torch/cuda.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>

#include "motionstream/model/umt5.h"
#include "motionstream/util/cli_args.h"

using namespace ms;

int main(int argc, char** argv) try {
  CliArgs args(argc, argv, 1, {"blocks", "tokens", "dtype", "device", "threads", "repeats"});
  const at::Device device(args.str("device", "cpu"));
  const auto dtype = args.str("dtype", "fp32") == "bf16" ? at::kBFloat16 : at::kFloat;
  if (device.is_cpu()) torch::set_num_threads(static_cast<int>(args.integer("threads", 1)));
  Umt5Config config = umt5_preset("umt5-xxl");
  config.num_layers = args.integer("blocks", 1);
  config.vocab = 1024;  // the embedding is a lookup: its 1.05B parameters cost memory, not time
  const int64_t tokens = args.integer("tokens", 512), repeats = args.integer("repeats", 2);

  Umt5Encoder encoder(config);
  encoder->to(device, dtype);
  encoder->eval();
  torch::NoGradGuard no_grad;
  auto now = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  const auto ids = torch::randint(2, config.vocab, {1, tokens}, at::TensorOptions().dtype(at::kLong).device(device));
  const auto mask = torch::ones({1, tokens}, at::TensorOptions().dtype(at::kLong).device(device));
  encoder->forward(ids, mask);  // warm-up
  const double t0 = now();
  for (int64_t i = 0; i < repeats; ++i) encoder->forward(ids, mask);
  const double per_forward = (now() - t0) / static_cast<double>(repeats);
  const double per_block = per_forward / static_cast<double>(config.num_layers);
  std::cout << nlohmann::json{{"bench", "umt5"},
                              {"device", device.str()},
                              {"dtype", args.str("dtype", "fp32")},
                              {"threads", device.is_cpu() ? torch::get_num_threads() : 0},
                              {"tokens", tokens},
                              {"blocks", config.num_layers},
                              {"seconds_per_block", per_block},
                              {"estimated_seconds_per_prompt_umt5_xxl", per_block * 24}}
                   .dump()
            << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::cerr << "umt5_bench: " << e.what() << "\n";
  return 2;
}
