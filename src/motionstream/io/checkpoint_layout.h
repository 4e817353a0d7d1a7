// Which known model layout a checkpoint holds, from its tensor names and shapes alone (no weights read).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "motionstream/io/safetensors.h"

namespace ms::io {

struct LayoutGuess {
  std::string kind;    // "wan-dit", "taehv", "wan-vae", "umt5-encoder", "clip-vision", "unknown"
  std::string detail;  // e.g. "image-to-video, 36 input channels, dim 1536, 30 blocks";
                       // "Wan names, 24 blocks, vocab 256384, dim 4096" for a umT5 encoder;
                       // "Hugging Face names, dim 1280, 32 blocks, patch 14, 257 positions" for a CLIP vision tower
  std::string prefix;  // what stands before the model's own names ("model.", "generator.model.", ...), or ""
  std::vector<std::string> wrappers;  // Self-Forcing style top-level parts found: generator, critic, generator_ema
};

LayoutGuess recognise_layout(const std::vector<TensorInfo>& tensors);

}  // namespace ms::io
