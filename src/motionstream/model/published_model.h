// From the files users of Wan2.1 hold to a model folder this project streams, trains and serves (docs/USAGE.md):
//   the DiT (Wan, diffusers or Self-Forcing names) -> dit.safetensors in our names, with the MotionStream input
//   channels the published model lacks set to zero; umT5 -> named in model.json (frozen, cached prompts);
//   TAEHV -> a codec folder (TAEHV works in the DiT's own normalised latents: identity statistics).
#pragma once

#include <string>

#include "motionstream/model/dit_checkpoint.h"
#include "motionstream/model/motion_model.h"

namespace ms {

struct PublishedFiles {
  std::string dit;                          // Wan / diffusers / Self-Forcing DiT file (dit_checkpoint.h)
  std::string dit_part;                     // Self-Forcing part; "" = generator_ema, else generator
  DitConfig config = dit_preset("wan-1.3b-motion");  // the model the DiT file is read into
  Umt5TextSpec text;                        // umT5 weights, tokenizer, prompt cache
  std::string taehv;                        // taew2_1.pth -> <folder>/codec
  std::string taehv_preset = "taehv-wan";
  std::string clip;                         // CLIP ViT-H/14 weights, for models with the CLIP image branch
  std::string clip_preset = "clip-vit-h-14";
  io::DType dtype = io::DType::BF16;        // of dit.safetensors (published 1.3B files are bf16 or f32)
};

// Writes a model folder (dit.safetensors, model.json, codec/) from published files; paths in model.json are
// absolute. Throws naming the file and the first offending tensor; nothing is written then. -> how the DiT was read
DitCheckpointPlan import_published_model(const PublishedFiles& files, const std::string& folder);

// taew2_1.pth (or a safetensors file in the same names) -> `folder`/model.safetensors + vae.json, a folder that
// LatentCodec opens.
void import_taehv_codec(const std::string& taehv_file, const std::string& folder, const std::string& preset = "taehv-wan");

}  // namespace ms
