#include "motionstream/model/umt5_checkpoint.h"

#include <c10/core/DefaultDtype.h>

namespace ms {

const io::NameTable& umt5_wan_names() {
  static const io::NameTable table("umt5 (Wan .pth names)", {
      {"token_embedding.weight", "token_embedding.weight"},
      {"blocks.{N}.norm1.weight", "blocks.{N}.norm1.weight"},
      {"blocks.{N}.attn.q.weight", "blocks.{N}.attn.q.weight"},
      {"blocks.{N}.attn.k.weight", "blocks.{N}.attn.k.weight"},
      {"blocks.{N}.attn.v.weight", "blocks.{N}.attn.v.weight"},
      {"blocks.{N}.attn.o.weight", "blocks.{N}.attn.o.weight"},
      {"blocks.{N}.norm2.weight", "blocks.{N}.norm2.weight"},
      {"blocks.{N}.ffn.gate.0.weight", "blocks.{N}.ffn.gate.0.weight"},
      {"blocks.{N}.ffn.fc1.weight", "blocks.{N}.ffn.fc1.weight"},
      {"blocks.{N}.ffn.fc2.weight", "blocks.{N}.ffn.fc2.weight"},
      {"blocks.{N}.pos_embedding.embedding.weight", "blocks.{N}.pos_embedding.embedding.weight"},
      {"norm.weight", "norm.weight"},
  });
  return table;
}

// Hugging Face's gated FFN computes wo(gelu(wi_0 x) * wi_1 x): wi_0 is Wan's gate, wi_1 its fc1.
const io::NameTable& umt5_hf_names() {
  static const io::NameTable table("umt5 (Hugging Face UMT5EncoderModel names)", {
      {"shared.weight", "token_embedding.weight"},
      {"encoder.embed_tokens.weight", "token_embedding.weight"},
      {"encoder.block.{N}.layer.0.layer_norm.weight", "blocks.{N}.norm1.weight"},
      {"encoder.block.{N}.layer.0.SelfAttention.q.weight", "blocks.{N}.attn.q.weight"},
      {"encoder.block.{N}.layer.0.SelfAttention.k.weight", "blocks.{N}.attn.k.weight"},
      {"encoder.block.{N}.layer.0.SelfAttention.v.weight", "blocks.{N}.attn.v.weight"},
      {"encoder.block.{N}.layer.0.SelfAttention.o.weight", "blocks.{N}.attn.o.weight"},
      {"encoder.block.{N}.layer.0.SelfAttention.relative_attention_bias.weight",
       "blocks.{N}.pos_embedding.embedding.weight"},
      {"encoder.block.{N}.layer.1.layer_norm.weight", "blocks.{N}.norm2.weight"},
      {"encoder.block.{N}.layer.1.DenseReluDense.wi_0.weight", "blocks.{N}.ffn.gate.0.weight"},
      {"encoder.block.{N}.layer.1.DenseReluDense.wi_1.weight", "blocks.{N}.ffn.fc1.weight"},
      {"encoder.block.{N}.layer.1.DenseReluDense.wo.weight", "blocks.{N}.ffn.fc2.weight"},
      {"encoder.final_layer_norm.weight", "norm.weight"},
  });
  return table;
}

io::ConvertedLoadReport load_umt5_weights(Umt5Encoder& encoder, const std::string& path) {
  return io::load_converted_state_dict(*encoder, path, {&umt5_wan_names(), &umt5_hf_names()});
}

Umt5Encoder load_umt5_encoder(const std::string& path, const Umt5Config& config, at::ScalarType dtype) {
  // Built directly in `dtype`: umT5-XXL in float32 first would take 23 GB on the way to an 11 GB bf16 model.
  const caffe2::TypeMeta previous = c10::get_default_dtype();
  c10::set_default_dtype(c10::scalarTypeToTypeMeta(dtype));
  Umt5Encoder encoder(nullptr);
  try {
    encoder = Umt5Encoder(config);
  } catch (...) {
    c10::set_default_dtype(previous);
    throw;
  }
  c10::set_default_dtype(previous);
  load_umt5_weights(encoder, path);
  encoder->eval();
  for (auto& p : encoder->parameters()) p.set_requires_grad(false);
  return encoder;
}

}  // namespace ms
