// Published Wan2.1 DiT checkpoints as users hold them, read into WanDiT: one name table per layout, one plan that
// says what each stored tensor becomes (shared by the loader and `motionstream inspect`), and one loader.
//
// Layouts (each a NameTable, stored -> ours):
//   - Wan's own names (Wan-AI/Wan2.1-*: diffusion_pytorch_model*.safetensors), identical to ours;
//   - diffusers WanTransformer3DModel (Wan-AI/Wan2.1-*-Diffusers: transformer/): same tensors and shapes under other
//     names (blocks.N.attn1.to_q, blocks.N.norm2 = our norm3, scale_shift_table = head.modulation, ...); its I2V files
//     also store blocks.N.attn2.norm_added_q, which the model never uses: read past;
//   - Self-Forcing / CausVid training checkpoints (.pt): Wan names under "<part>.model." with part generator,
//     generator_ema or critic (FSDP's "<part>.model._fsdp_wrapped_module." too), or under a bare "model.".
//
// The MotionStream initialisation (what lets a published model start a MotionStream one):
//   - a patch embedding stored with fewer input channels (16: T2V; 36: I2V) fills the first channels, the model's
//     extra ones (I2V condition, track features) are zeroed, so those inputs add nothing;
//   - the track head, absent from published files, keeps its values (its output only meets zeroed weights);
//   - a file without the CLIP branch (T2V) into a model with it: img_emb, k_img and norm_k_img keep their values
//     and v_img (weight and bias) is zeroed, so the image attention adds exactly 0 (its values are zero, whatever
//     the attention weights) and the model computes what the file's model does; training can then grow the branch.
// Torch-free: apps include it to check a file against a preset without building a model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "motionstream/io/name_table.h"
#include "motionstream/io/safetensors.h"
#include "motionstream/model/dit_config.h"

namespace ms {

class WanDiTImpl;

const io::NameTable& dit_wan_names();        // patch_embedding.weight, blocks.N.self_attn.q.weight, ... (ours)
const io::NameTable& dit_diffusers_names();  // condition_embedder.time_embedder.linear_1.weight, blocks.N.attn1.to_q...
// Wan names under "<part>.model." (and "<part>.model._fsdp_wrapped_module."); part "" = under "model.".
io::NameTable dit_training_names(const std::string& part);

// The parts of a Self-Forcing / CausVid file, in the order a loader prefers them.
const std::vector<std::string>& dit_training_parts();  // generator_ema, generator, critic

struct DitTensorPlan {
  std::string stored, ours;
  bool widened = false;  // patch embedding: stored input channels fill the first of ours, the rest become zero
};

struct DitCheckpointPlan {
  std::string layout;                     // the name table used
  std::string part;                       // the training-checkpoint part read, "" for other layouts
  std::vector<DitTensorPlan> load;        // in file order
  std::vector<std::string> skipped;       // stored names not read: other parts, tensors the model does not use
  std::vector<std::string> kept;          // ours, absent from the file, keeping their values (track head, CLIP)
  std::vector<std::string> zeroed;        // ours, absent from the file, set to zero (v_img: a silent CLIP branch)
  int64_t stored_in_channels = 0;         // patch embedding input channels in the file (0 if absent)
  std::vector<std::string> problems;      // one line each, naming the stored tensor; empty = loadable
};

// How `stored` (names, dtypes, shapes) reads as a model of `config`. `part` picks a training-checkpoint part;
// "" = generator_ema when the file has one, else generator, else a bare "model." prefix or no prefix at all.
DitCheckpointPlan plan_dit_checkpoint(const std::vector<io::TensorInfo>& stored, const DitConfig& config,
                                      const std::string& part = "");

struct PublishedDitOptions {
  std::string part;  // see plan_dit_checkpoint
};

// Fills `model` from a safetensors file, a sharded one (its .safetensors.index.json) or a torch.save'd state dict
// (.pth/.pt), F32/F16/BF16 converted to the model's dtype. All-or-nothing: a file with problems throws
// io::SafetensorsError naming the file and the first offending tensor, and leaves the model untouched.
DitCheckpointPlan load_published_dit(WanDiTImpl& model, const std::string& path,
                                     const PublishedDitOptions& options = {});

}  // namespace ms
