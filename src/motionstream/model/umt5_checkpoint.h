// Loading published umT5 encoder weights into Umt5Encoder: Wan's models_t5_umt5-xxl-enc-bf16 names and Hugging
// Face's UMT5EncoderModel names, each through its name table. Any stored float dtype (F32, F16, BF16) is converted
// to the module's dtype.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "motionstream/io/converted_state_dict.h"
#include "motionstream/io/name_table.h"
#include "motionstream/model/umt5.h"

namespace ms {

const io::NameTable& umt5_wan_names();  // token_embedding.weight, blocks.N.attn.q.weight, ... (our own names)
const io::NameTable& umt5_hf_names();   // shared.weight, encoder.block.N.layer.0.SelfAttention.q.weight, ...

// Fills `encoder` from `path`, whichever of the two layouts it holds. Throws io::SafetensorsError naming the file
// and the first offending tensor (wrong layout, missing, unexpected or wrongly shaped tensor, truncated file).
io::ConvertedLoadReport load_umt5_weights(Umt5Encoder& encoder, const std::string& path);

// A new encoder of `config` in `dtype`, loaded from `path`, in eval mode without gradients.
Umt5Encoder load_umt5_encoder(const std::string& path, const Umt5Config& config, at::ScalarType dtype = at::kBFloat16);

}  // namespace ms
