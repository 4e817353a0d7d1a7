// From the files users of Wan2.1 hold to a model folder this project streams, trains and serves (docs/USAGE.md):
//   the DiT (Wan, diffusers or Self-Forcing names) -> dit.safetensors in our names, with the MotionStream input
//   channels the published model lacks set to zero; umT5 -> named in model.json (frozen, cached prompts);
//   TAEHV -> a codec folder (TAEHV works in the DiT's own normalised latents: identity statistics).
#pragma once

#include <string>

#include "motionstream/model/motion_model.h"

namespace ms {

// taew2_1.pth (or a safetensors file in the same names) -> `folder`/model.safetensors + vae.json, a folder that
// LatentCodec opens.
void import_taehv_codec(const std::string& taehv_file, const std::string& folder, const std::string& preset = "taehv-wan");

}  // namespace ms
