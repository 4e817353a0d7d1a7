#include "motionstream/model/clip_vision_checkpoint.h"

#include <c10/core/DefaultDtype.h>

#include "motionstream/io/tensor_file.h"

namespace ms {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

const io::NameTable& clip_vision_wan_names() {
  static const io::NameTable table(
      "clip-vision (Wan open-clip .pth names)",
      {
          {"visual.patch_embedding.weight", "patch_embedding.weight"},
          {"visual.cls_embedding", "cls_embedding"},
          {"visual.pos_embedding", "pos_embedding"},
          {"visual.pre_norm.weight", "pre_norm.weight"},
          {"visual.pre_norm.bias", "pre_norm.bias"},
          {"visual.transformer.{N}.norm1.weight", "transformer.{N}.norm1.weight"},
          {"visual.transformer.{N}.norm1.bias", "transformer.{N}.norm1.bias"},
          {"visual.transformer.{N}.attn.to_qkv.weight", "transformer.{N}.attn.to_qkv.weight"},
          {"visual.transformer.{N}.attn.to_qkv.bias", "transformer.{N}.attn.to_qkv.bias"},
          {"visual.transformer.{N}.attn.proj.weight", "transformer.{N}.attn.proj.weight"},
          {"visual.transformer.{N}.attn.proj.bias", "transformer.{N}.attn.proj.bias"},
          {"visual.transformer.{N}.norm2.weight", "transformer.{N}.norm2.weight"},
          {"visual.transformer.{N}.norm2.bias", "transformer.{N}.norm2.bias"},
          {"visual.transformer.{N}.mlp.0.weight", "transformer.{N}.mlp.0.weight"},
          {"visual.transformer.{N}.mlp.0.bias", "transformer.{N}.mlp.0.bias"},
          {"visual.transformer.{N}.mlp.2.weight", "transformer.{N}.mlp.2.weight"},
          {"visual.transformer.{N}.mlp.2.bias", "transformer.{N}.mlp.2.bias"},
          {"visual.post_norm.weight", "post_norm.weight"},
          {"visual.post_norm.bias", "post_norm.bias"},
          {"visual.head", "head"},
          {"textual.*", ""},  // the XLM-RoBERTa text tower
          {"log_scale", ""},  // the contrastive temperature
      });
  return table;
}

const io::NameTable& clip_vision_hf_names() {
  static const io::NameTable table(
      "clip-vision (Hugging Face CLIPVisionModel names)",
      {
          {"vision_model.embeddings.patch_embedding.weight", "patch_embedding.weight"},
          {"vision_model.embeddings.class_embedding", "cls_embedding"},
          {"vision_model.embeddings.position_embedding.weight", "pos_embedding"},
          {"vision_model.pre_layrnorm.weight", "pre_norm.weight"},  // sic: Hugging Face's spelling
          {"vision_model.pre_layrnorm.bias", "pre_norm.bias"},
          {"vision_model.encoder.layers.{N}.layer_norm1.weight", "transformer.{N}.norm1.weight"},
          {"vision_model.encoder.layers.{N}.layer_norm1.bias", "transformer.{N}.norm1.bias"},
          {"vision_model.encoder.layers.{N}.self_attn.q_proj.weight", "transformer.{N}.attn.to_qkv.weight[q]"},
          {"vision_model.encoder.layers.{N}.self_attn.q_proj.bias", "transformer.{N}.attn.to_qkv.bias[q]"},
          {"vision_model.encoder.layers.{N}.self_attn.k_proj.weight", "transformer.{N}.attn.to_qkv.weight[k]"},
          {"vision_model.encoder.layers.{N}.self_attn.k_proj.bias", "transformer.{N}.attn.to_qkv.bias[k]"},
          {"vision_model.encoder.layers.{N}.self_attn.v_proj.weight", "transformer.{N}.attn.to_qkv.weight[v]"},
          {"vision_model.encoder.layers.{N}.self_attn.v_proj.bias", "transformer.{N}.attn.to_qkv.bias[v]"},
          {"vision_model.encoder.layers.{N}.self_attn.out_proj.weight", "transformer.{N}.attn.proj.weight"},
          {"vision_model.encoder.layers.{N}.self_attn.out_proj.bias", "transformer.{N}.attn.proj.bias"},
          {"vision_model.encoder.layers.{N}.layer_norm2.weight", "transformer.{N}.norm2.weight"},
          {"vision_model.encoder.layers.{N}.layer_norm2.bias", "transformer.{N}.norm2.bias"},
          {"vision_model.encoder.layers.{N}.mlp.fc1.weight", "transformer.{N}.mlp.0.weight"},
          {"vision_model.encoder.layers.{N}.mlp.fc1.bias", "transformer.{N}.mlp.0.bias"},
          {"vision_model.encoder.layers.{N}.mlp.fc2.weight", "transformer.{N}.mlp.2.weight"},
          {"vision_model.encoder.layers.{N}.mlp.fc2.bias", "transformer.{N}.mlp.2.bias"},
          {"vision_model.post_layernorm.weight", "post_norm.weight"},
          {"vision_model.post_layernorm.bias", "post_norm.bias"},
          {"visual_projection.weight", "head"},
          {"vision_model.embeddings.position_ids", ""},  // a buffer older transformers versions saved
          {"text_model.*", ""},                          // a whole CLIPModel's text side
          {"text_projection.*", ""},
          {"logit_scale", ""},
      });
  return table;
}

std::map<std::string, at::Tensor> clip_vision_hf_targets(ClipVisionEncoder& encoder, bool with_head) {
  const ClipVisionConfig& c = encoder->config();
  std::map<std::string, at::Tensor> views;
  for (auto& [name, tensor] : io::module_tensors(*encoder)) {
    const at::Tensor t = tensor.detach();  // shares the storage: writing a view writes the module's tensor
    if (name == "cls_embedding") {
      views[name] = t.view({c.dim});
    } else if (name == "pos_embedding") {
      views[name] = t.view({c.tokens(), c.dim});
    } else if (name == "head") {
      if (with_head) views[name] = t.t();  // [out_dim, dim]
    } else if (ends_with(name, ".attn.to_qkv.weight") || ends_with(name, ".attn.to_qkv.bias")) {
      const char* parts[] = {"q", "k", "v"};
      for (int64_t i = 0; i < 3; ++i) views[name + "[" + parts[i] + "]"] = t.narrow(0, i * c.dim, c.dim);
    } else {
      views[name] = t;
    }
  }
  return views;
}

io::ConvertedLoadReport load_clip_vision_weights(ClipVisionEncoder& encoder, const std::string& path) {
  const io::TensorFile file(path);
  const io::NameTable& table = io::pick_name_table(file, {&clip_vision_wan_names(), &clip_vision_hf_names()});
  if (&table == &clip_vision_wan_names()) return io::load_converted_tensors(file, io::module_tensors(*encoder), table);
  return io::load_converted_tensors(file, clip_vision_hf_targets(encoder, file.find("visual_projection.weight") != nullptr), table);
}

ClipVisionEncoder load_clip_vision_encoder(const std::string& path, const ClipVisionConfig& config,
                                           at::ScalarType dtype) {
  // Built directly in `dtype`, so that a half-precision model never exists in float32 on the way.
  const caffe2::TypeMeta previous = c10::get_default_dtype();
  c10::set_default_dtype(c10::scalarTypeToTypeMeta(dtype));
  ClipVisionEncoder encoder(nullptr);
  try {
    encoder = ClipVisionEncoder(config);
  } catch (...) {
    c10::set_default_dtype(previous);
    throw;
  }
  c10::set_default_dtype(previous);
  load_clip_vision_weights(encoder, path);
  encoder->eval();
  for (auto& p : encoder->parameters()) p.set_requires_grad(false);
  return encoder;
}

}  // namespace ms
