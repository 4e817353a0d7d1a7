// Loading published CLIP ViT-H/14 vision weights into ClipVisionEncoder, from either layout they are shipped in:
//   - Wan's models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth: the vision tower under `visual.` (our names
//     after the prefix), beside the XLM-RoBERTa text tower (`textual.`) and `log_scale`, which are skipped;
//   - Hugging Face CLIPVisionModel(WithProjection) names under `vision_model.`, as in ComfyUI's
//     clip_vision_h.safetensors. These differ in more than names, and the differences are handled by filling views
//     of the module's tensors (clip_vision_hf_targets): q_proj, k_proj and v_proj are the three row blocks of our
//     fused to_qkv (weight and bias); class_embedding is [dim] where ours is [1, 1, dim]; position_embedding.weight
//     is [tokens, dim] where ours is [1, tokens, dim]; visual_projection.weight is [out_dim, dim], the transpose of
//     our head [dim, out_dim]. The patch convolution is [dim, 3, 14, 14] without bias in both. A file without
//     visual_projection (a plain CLIPVisionModel) loads too: the head is not part of the I2V tokens and keeps its
//     values. position_ids, a text tower (`text_model.`, `text_projection`) and `logit_scale` are skipped.
// Any stored float dtype (F32, F16, BF16) is converted to the module's dtype.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "motionstream/io/converted_state_dict.h"
#include "motionstream/io/name_table.h"
#include "motionstream/model/clip_vision.h"

namespace ms {

const io::NameTable& clip_vision_wan_names();  // visual.patch_embedding.weight, visual.transformer.N.attn.to_qkv.weight
const io::NameTable& clip_vision_hf_names();   // vision_model.embeddings.patch_embedding.weight, ...

// What the Hugging Face table's names stand for: the module's tensors as views in Hugging Face's shapes. Each fused
// to_qkv tensor appears as three row blocks, "transformer.N.attn.to_qkv.weight[q]" ("[k]", "[v]", and the same for
// .bias). `with_head`: whether "head" (as its transpose) is among them.
std::map<std::string, at::Tensor> clip_vision_hf_targets(ClipVisionEncoder& encoder, bool with_head = true);

// Fills `encoder` from `path`, whichever of the two layouts it holds (safetensors or a torch.save .pth). Throws
// io::SafetensorsError naming the file and the first offending tensor (wrong layout, missing, unexpected or
// wrongly shaped tensor, truncated file); a refused file leaves the encoder untouched.
io::ConvertedLoadReport load_clip_vision_weights(ClipVisionEncoder& encoder, const std::string& path);

// A new encoder of `config` in `dtype`, loaded from `path`, in eval mode without gradients. float32 by default:
// Wan itself runs CLIP in float32 on CPU.
ClipVisionEncoder load_clip_vision_encoder(const std::string& path, const ClipVisionConfig& config,
                                           at::ScalarType dtype = at::kFloat);

}  // namespace ms
