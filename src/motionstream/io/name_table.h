// NameTable: how the tensor names of a foreign checkpoint layout map onto this project's names, as a short list of
// patterns. "{N}" in a pattern stands for a block index (a decimal number) and carries over to the target, e.g.
//   {"encoder.block.{N}.layer.0.SelfAttention.q.weight", "blocks.{N}.attn.q.weight"}.
// A rule with an empty target names tensors the layout stores but the model does not use (read past, never loaded);
// its pattern may end in "*" to cover everything under a prefix (Wan's CLIP file holds a text tower next to the
// vision tower: {"textual.*", ""}). Torch-free, so that any loader (and `motionstream inspect`) can use it.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ms::io {

struct NameRule {
  std::string stored;  // the name in the file, with at most one "{N}", or ending in "*" (empty `ours` only)
  std::string ours;    // the module's name; "{N}" receives the index matched in `stored`. Empty: a tensor that the
                       // layout stores but the model does not use
};

class NameTable {
 public:
  NameTable(std::string layout, std::vector<NameRule> rules);

  const std::string& layout() const { return layout_; }  // e.g. "umt5 (Hugging Face UMT5EncoderModel)"
  const std::vector<NameRule>& rules() const { return rules_; }
  // Our name for a stored one, or nullopt when no rule matches. The first matching rule wins; "" for a stored tensor
  // the model does not use.
  std::optional<std::string> to_ours(const std::string& stored) const;
  // The other way: what this layout calls one of our tensors (the first rule that produces it), for messages.
  std::optional<std::string> to_stored(const std::string& ours) const;

 private:
  std::string layout_;
  std::vector<NameRule> rules_;
};

}  // namespace ms::io
