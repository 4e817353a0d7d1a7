#include "motionstream/io/checkpoint_layout.h"

#include <algorithm>
#include <set>

namespace ms::io {

namespace {

bool starts(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

const TensorInfo* find_named(const std::vector<TensorInfo>& tensors, const std::string& name) {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

// The prefix every DiT/VAE name shares, found from a name the layout always has.
std::string prefix_of(const std::vector<TensorInfo>& tensors, const std::string& anchor) {
  for (const auto& t : tensors)
    if (t.name.size() >= anchor.size() && t.name.compare(t.name.size() - anchor.size(), anchor.size(), anchor) == 0)
      return t.name.substr(0, t.name.size() - anchor.size());
  return "";
}

int64_t count_blocks(const std::vector<TensorInfo>& tensors, const std::string& prefix) {
  std::set<std::string> blocks;
  for (const auto& t : tensors) {
    if (!starts(t.name, prefix + "blocks.")) continue;
    const auto rest = t.name.substr(prefix.size() + 7);
    blocks.insert(rest.substr(0, rest.find('.')));
  }
  return static_cast<int64_t>(blocks.size());
}

// ", 24 blocks, vocab 256384, dim 4096" from the embedding's shape and the block names.
std::string umt5_size(const std::vector<TensorInfo>& tensors, const std::string& embedding, const std::string& blocks,
                      const std::string& other_embedding) {
  std::set<std::string> indices;
  for (const auto& t : tensors) {
    if (!starts(t.name, blocks)) continue;
    const auto rest = t.name.substr(blocks.size());
    indices.insert(rest.substr(0, rest.find('.')));
  }
  std::string s = ", " + std::to_string(indices.size()) + " blocks";
  const TensorInfo* e = find_named(tensors, embedding);
  if (!e && !other_embedding.empty()) e = find_named(tensors, other_embedding);
  if (e && e->shape.size() == 2) s += ", vocab " + std::to_string(e->shape[0]) + ", dim " + std::to_string(e->shape[1]);
  return s;
}

// How many distinct block indices follow `stem` ("visual.transformer." -> 0, 1, ...); non-numeric segments are not
// counted (open_clip's own "visual.transformer.resblocks.N" names give 0).
int64_t count_indexed(const std::vector<TensorInfo>& tensors, const std::string& stem) {
  std::set<std::string> indices;
  for (const auto& t : tensors) {
    if (!starts(t.name, stem)) continue;
    const auto index = t.name.substr(stem.size(), t.name.find('.', stem.size()) - stem.size());
    if (!index.empty() && std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; }))
      indices.insert(index);
  }
  return static_cast<int64_t>(indices.size());
}

// "Wan names, dim 1280, 32 blocks, patch 14, 257 positions, with a text tower (not loaded)" for a CLIP vision tower.
std::string clip_vision_detail(const std::vector<TensorInfo>& tensors) {
  const bool hf = std::any_of(tensors.begin(), tensors.end(),
                              [](const TensorInfo& t) { return t.name.find("vision_model.") != std::string::npos; });
  const TensorInfo* patch = find_named(tensors, hf ? "vision_model.embeddings.patch_embedding.weight" : "visual.patch_embedding.weight");
  const TensorInfo* pos = find_named(tensors, hf ? "vision_model.embeddings.position_embedding.weight" : "visual.pos_embedding");
  if (!patch || patch->shape.size() != 4) return hf ? "Hugging Face names" : "names not loadable (not Wan's or Hugging Face's)";
  std::string s = std::string(hf ? "Hugging Face" : "Wan") + " names, dim " + std::to_string(patch->shape[0]) + ", " +
                  std::to_string(count_indexed(tensors, hf ? "vision_model.encoder.layers." : "visual.transformer.")) +
                  " blocks, patch " + std::to_string(patch->shape[2]);
  if (pos && pos->shape.size() >= 2) s += ", " + std::to_string(pos->shape[pos->shape.size() - 2]) + " positions";
  if (std::any_of(tensors.begin(), tensors.end(), [&](const TensorInfo& t) {
        return starts(t.name, hf ? "text_model." : "textual.");
      }))
    s += ", with a text tower (not loaded)";
  return s;
}

}  // namespace

LayoutGuess recognise_layout(const std::vector<TensorInfo>& tensors) {
  LayoutGuess g{"unknown", "", "", {}};
  for (const char* wrapper : {"generator.", "critic.", "generator_ema."})
    if (std::any_of(tensors.begin(), tensors.end(), [&](const TensorInfo& t) { return starts(t.name, wrapper); }))
      g.wrappers.push_back(std::string(wrapper).substr(0, std::string(wrapper).size() - 1));

  // CLIP first: its patch_embedding.weight would otherwise read as a DiT's.
  if (std::any_of(tensors.begin(), tensors.end(), [](const TensorInfo& t) {
        return starts(t.name, "visual.") || t.name.find("vision_model.") != std::string::npos;
      })) {
    g.kind = "clip-vision";
    g.detail = clip_vision_detail(tensors);
  } else if (const auto p = prefix_of(tensors, "patch_embedding.weight"); find_named(tensors, p + "patch_embedding.weight")) {
    const auto& patch = *find_named(tensors, p + "patch_embedding.weight");
    const int64_t in = patch.shape.size() > 1 ? patch.shape[1] : 0, dim = patch.shape.empty() ? 0 : patch.shape[0];
    const bool clip = find_named(tensors, p + "img_emb.proj.0.weight") || find_named(tensors, p + "img_emb.proj.1.weight");
    const std::string kind = in == 16 ? "text-to-video" : in == 36 ? "image-to-video" : in > 36 ? "image-to-video + track channels" : "custom";
    g = {"wan-dit", kind + ", " + std::to_string(in) + " input channels, dim " + std::to_string(dim) + ", " +
                        std::to_string(count_blocks(tensors, p)) + " blocks" + (clip ? ", CLIP image cross-attention" : ""),
         p, g.wrappers};
  } else if (find_named(tensors, "decoder.1.weight") && find_named(tensors, "encoder.0.weight") &&
             find_named(tensors, "decoder.3.conv.0.weight")) {
    const auto& first = *find_named(tensors, "decoder.1.weight");
    g = {"taehv", std::to_string(first.shape[1]) + " latent channels, decoder width " + std::to_string(first.shape[0]), "",
         g.wrappers};
  } else if (std::any_of(tensors.begin(), tensors.end(), [](const TensorInfo& t) {
               return t.name.find("decoder.conv_in") != std::string::npos || t.name.find("encoder.conv1") != std::string::npos;
             })) {
    g.kind = "wan-vae";
    // The published Wan2.1 VAE: encoder.conv1 [base_dim, 3, 3, 3, 3], conv2 [z_dim, z_dim, 1, 1, 1].
    const auto* first = find_named(tensors, "encoder.conv1.weight");
    const auto* latent = find_named(tensors, "conv2.weight");
    if (first && latent && first->shape.size() == 5 && latent->shape.size() == 5)
      g.detail = "base dim " + std::to_string(first->shape[0]) + ", " + std::to_string(latent->shape[0]) +
                 " latent channels";
  } else if (std::any_of(tensors.begin(), tensors.end(), [](const TensorInfo& t) {
               return t.name.find("relative_attention_bias") != std::string::npos;
             })) {
    g.kind = "umt5-encoder";
    g.detail = "Hugging Face names" + umt5_size(tensors, "shared.weight", "encoder.block.", "encoder.embed_tokens.weight");
  } else if (std::any_of(tensors.begin(), tensors.end(), [](const TensorInfo& t) {
               return starts(t.name, "blocks.") && t.name.find(".pos_embedding.embedding.weight") != std::string::npos;
             })) {
    g.kind = "umt5-encoder";  // Wan's models_t5_umt5-xxl-enc-bf16.pth names: per-block relative position tables
    g.detail = "Wan names" + umt5_size(tensors, "token_embedding.weight", "blocks.", "");
  }
  return g;
}

}  // namespace ms::io
