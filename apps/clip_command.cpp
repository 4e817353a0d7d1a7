// motionstream clip-tokens --clip FILE --image IMG --out tokens.safetensors [--preset clip-vit-h-14]
//   Reads the CLIP vision weights (Wan's models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth or a Hugging Face
//   clip_vision_h.safetensors), prepares the image as Wan does (bicubic resize to 224x224, mean/std) and writes the
//   tokens Wan's I2V reads, [257, 1280] float32, as tensor "clip_tokens" (docs/FORMATS.md).
#include "clip_command.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "media/video_io.h"
#include "motionstream/io/safetensors.h"
#include "motionstream/model/clip_vision.h"
#include "motionstream/model/clip_vision_checkpoint.h"
#include "motionstream/util/cli_args.h"

using namespace ms;

int clip_tokens_command(int argc, char** argv) try {
  const CliArgs args(argc, argv, 2, {"clip", "image", "out", "preset"});
  if (!args.positional().empty())
    throw std::invalid_argument("unexpected argument '" + args.positional().front() + "' (options start with --)");
  for (const char* key : {"clip", "image", "out"})
    if (!args.has(key))
      throw std::invalid_argument(std::string("--") + key +
                                  " is required (usage: motionstream clip-tokens --clip FILE --image IMG --out "
                                  "tokens.safetensors [--preset clip-vit-h-14])");
  const ClipVisionConfig config = clip_vision_preset(args.str("preset", "clip-vit-h-14"));
  const std::string image_path = args.str("image", ""), clip_path = args.str("clip", ""), out = args.str("out", "");

  const at::Tensor images = clip_preprocess(media::read_image(image_path), config);  // [1, 3, 224, 224]
  ClipVisionEncoder encoder = load_clip_vision_encoder(clip_path, config);
  at::Tensor tokens;
  {
    at::NoGradGuard no_grad;
    tokens = encoder->forward(images)[0].to(at::kFloat).contiguous();  // [257, 1280]
  }
  io::write_safetensors(out, {{"clip_tokens", io::DType::F32, tokens.sizes().vec(), tokens.data_ptr()}},
                        {{"format", "motionstream-clip-tokens"}, {"version", "1"}, {"preset", config.name},
                         {"image", image_path}, {"clip", clip_path}});
  std::printf("%s: clip_tokens [%lld, %lld] from %s\n", out.c_str(), static_cast<long long>(tokens.size(0)),
              static_cast<long long>(tokens.size(1)), image_path.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "motionstream clip-tokens: %s\n", e.what());
  return 2;
}
