#include "motionstream/model/dit_checkpoint.h"

#include <algorithm>
#include <map>
#include <set>

#include "motionstream/io/tensor_file.h"
#include "motionstream/model/dit.h"

namespace ms {

namespace {

using io::NameRule;
using Leaves = std::vector<std::string>;
const Leaves kLinear{"weight", "bias"};
const Leaves kWeight{"weight"};

void add(std::vector<NameRule>& rules, const std::string& stored, const std::string& ours, const Leaves& leaves) {
  for (const auto& leaf : leaves) rules.push_back({stored + "." + leaf, ours + "." + leaf});
}

// Every tensor name of ours as a pattern ({N} for the block index).
std::vector<NameRule> wan_identity_rules() {
  std::vector<NameRule> r;
  auto same = [&](const std::string& name, const Leaves& leaves) { add(r, name, name, leaves); };
  same("patch_embedding", kLinear);
  for (const char* m : {"text_embedding.0", "text_embedding.2", "time_embedding.0", "time_embedding.2",
                        "time_projection.1"})
    same(m, kLinear);
  const std::string b = "blocks.{N}.";
  r.push_back({b + "modulation", b + "modulation"});
  for (const char* p : {"q", "k", "v", "o"}) same(b + "self_attn." + p, kLinear);
  for (const char* p : {"norm_q", "norm_k"}) same(b + "self_attn." + p, kWeight);
  for (const char* p : {"q", "k", "v", "o", "k_img", "v_img"}) same(b + "cross_attn." + p, kLinear);
  for (const char* p : {"norm_q", "norm_k", "norm_k_img"}) same(b + "cross_attn." + p, kWeight);
  same(b + "norm3", kLinear);
  same(b + "ffn.0", kLinear);
  same(b + "ffn.2", kLinear);
  r.push_back({"head.modulation", "head.modulation"});
  same("head.head", kLinear);
  for (const char* m : {"img_emb.proj.0", "img_emb.proj.1", "img_emb.proj.3", "img_emb.proj.4"}) same(m, kLinear);
  same("track_head", kLinear);  // MotionStream's own exports
  return r;
}

bool starts(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool is_float(io::DType d) {
  return d == io::DType::F64 || d == io::DType::F32 || d == io::DType::F16 || d == io::DType::BF16;
}

bool in_track_head(const std::string& ours) { return starts(ours, "track_head."); }
bool in_clip_branch(const std::string& ours) {
  return starts(ours, "img_emb.") || ours.find(".cross_attn.k_img.") != std::string::npos ||
         ours.find(".cross_attn.v_img.") != std::string::npos || ours.find(".cross_attn.norm_k_img.") != std::string::npos;
}

// A published patch embedding [D, Cs, 1, 2, 2] may fill ours [D, Co, 1, 2, 2] when Cs is where a published layout
// ends: the noisy latent alone (T2V) or with the I2V condition.
bool widenable(const std::vector<int64_t>& stored, const std::vector<int64_t>& ours, const DitConfig& c) {
  if (stored.size() != 5 || ours.size() != 5 || stored[1] >= ours[1]) return false;
  for (size_t i : {0, 2, 3, 4})
    if (stored[i] != ours[i]) return false;
  return stored[1] == c.latent_channels || (c.image_condition && stored[1] == 2 * c.latent_channels + 4);
}

}  // namespace

const io::NameTable& dit_wan_names() {
  static const io::NameTable table("Wan2.1 DiT (Wan names)", wan_identity_rules());
  return table;
}

// diffusers' scripts/convert_wan_to_diffusers.py renames, checked against WanTransformer3DModel's modules. Every
// tensor keeps Wan's shape: both modulation tables are [1, 6, D] and [1, 2, D] there too.
const io::NameTable& dit_diffusers_names() {
  static const io::NameTable table("Wan2.1 DiT (diffusers WanTransformer3DModel names)", [] {
    std::vector<NameRule> r;
    add(r, "patch_embedding", "patch_embedding", kLinear);
    const std::string ce = "condition_embedder.";
    add(r, ce + "text_embedder.linear_1", "text_embedding.0", kLinear);
    add(r, ce + "text_embedder.linear_2", "text_embedding.2", kLinear);
    add(r, ce + "time_embedder.linear_1", "time_embedding.0", kLinear);
    add(r, ce + "time_embedder.linear_2", "time_embedding.2", kLinear);
    add(r, ce + "time_proj", "time_projection.1", kLinear);
    add(r, ce + "image_embedder.norm1", "img_emb.proj.0", kLinear);
    add(r, ce + "image_embedder.ff.net.0.proj", "img_emb.proj.1", kLinear);
    add(r, ce + "image_embedder.ff.net.2", "img_emb.proj.3", kLinear);
    add(r, ce + "image_embedder.norm2", "img_emb.proj.4", kLinear);
    const std::string b = "blocks.{N}.";
    r.push_back({b + "scale_shift_table", b + "modulation"});
    const std::pair<const char*, const char*> projections[] = {{"to_q", "q"}, {"to_k", "k"}, {"to_v", "v"},
                                                               {"to_out.0", "o"}};
    for (const auto& [theirs, ours] : projections) {
      add(r, b + "attn1." + theirs, b + "self_attn." + ours, kLinear);
      add(r, b + "attn2." + theirs, b + "cross_attn." + ours, kLinear);
    }
    for (const char* n : {"norm_q", "norm_k"}) {
      add(r, b + "attn1." + n, b + "self_attn." + n, kWeight);
      add(r, b + "attn2." + n, b + "cross_attn." + n, kWeight);
    }
    add(r, b + "attn2.add_k_proj", b + "cross_attn.k_img", kLinear);
    add(r, b + "attn2.add_v_proj", b + "cross_attn.v_img", kLinear);
    add(r, b + "attn2.norm_added_k", b + "cross_attn.norm_k_img", kWeight);
    r.push_back({b + "attn2.norm_added_q.weight", ""});  // stored by the I2V conversions, used by no forward
    add(r, b + "norm2", b + "norm3", kLinear);  // diffusers counts its norms in call order: its norm2 is Wan's norm3
    add(r, b + "ffn.net.0.proj", b + "ffn.0", kLinear);
    add(r, b + "ffn.net.2", b + "ffn.2", kLinear);
    r.push_back({"scale_shift_table", "head.modulation"});
    add(r, "proj_out", "head.head", kLinear);
    return r;
  }());
  return table;
}

io::NameTable dit_training_names(const std::string& part) {
  const std::string model = (part.empty() ? "" : part + ".") + "model.";
  std::vector<NameRule> rules;
  for (const std::string& wrap : {model, model + "_fsdp_wrapped_module."})
    for (const auto& r : wan_identity_rules()) rules.push_back({wrap + r.stored, r.ours});
  return io::NameTable("Wan2.1 DiT (Self-Forcing/CausVid checkpoint, Wan names under '" + model + "')", rules);
}

const std::vector<std::string>& dit_training_parts() {
  static const std::vector<std::string> parts{"generator_ema", "generator", "critic"};
  return parts;
}

DitCheckpointPlan plan_dit_checkpoint(const std::vector<io::TensorInfo>& stored, const DitConfig& config,
                                      const std::string& part) {
  DitCheckpointPlan plan;
  auto has_prefix = [&](const std::string& prefix) {
    return std::any_of(stored.begin(), stored.end(), [&](const io::TensorInfo& t) { return starts(t.name, prefix); });
  };
  std::string chosen = part;
  if (chosen.empty())
    for (const auto& p : dit_training_parts())
      if (has_prefix(p + ".model.")) {
        chosen = p;
        break;
      }
  if (!chosen.empty() && !has_prefix(chosen + ".model.")) {
    std::string found;
    for (const auto& p : dit_training_parts())
      if (has_prefix(p + ".model.")) found += (found.empty() ? "" : ", ") + p;
    plan.problems.push_back("no tensor under '" + chosen + ".model.' (training-checkpoint parts in the file: " +
                            (found.empty() ? "none" : found) + ")");
    return plan;
  }
  // Outside the chosen part of a training checkpoint nothing is read (the critic, the other generator copy).
  auto other_part = [&](const std::string& name) { return !chosen.empty() && !starts(name, chosen + "."); };

  const io::NameTable training = dit_training_names(chosen);
  const io::NameTable* best = nullptr;
  size_t best_count = 0;
  for (const io::NameTable* t : {&dit_wan_names(), &dit_diffusers_names(), &training}) {
    const bool wrapped = t == &training;
    const size_t n = std::count_if(stored.begin(), stored.end(), [&](const io::TensorInfo& s) {
      return !(wrapped && other_part(s.name)) && t->to_ours(s.name).has_value();
    });
    if (n > best_count) best = t, best_count = n;
  }
  if (!best) {
    plan.problems.push_back(
        "not a Wan2.1 DiT checkpoint of any known layout (Wan, diffusers, Self-Forcing/CausVid names): no tensor "
        "name matches" + (stored.empty() ? std::string(" (the file holds no tensors)") : ", e.g. '" + stored.front().name + "'"));
    return plan;
  }
  plan.layout = best->layout();
  if (best == &training) plan.part = chosen;

  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, shape] : config.parameter_shapes()) shapes[name] = shape;
  std::set<std::string> filled;
  for (const auto& info : stored) {
    if (best == &training && other_part(info.name)) {
      plan.skipped.push_back(info.name);
      continue;
    }
    const auto ours = best->to_ours(info.name);
    if (ours && ours->empty()) {
      plan.skipped.push_back(info.name);
      continue;
    }
    const auto it = ours ? shapes.find(*ours) : shapes.end();
    if (it == shapes.end()) {
      plan.problems.push_back("tensor '" + info.name + "' is not part of the model (layout " + plan.layout +
                              (ours ? ", converted to '" + *ours + "'" : std::string(", no name rule matches")) + ")");
      continue;
    }
    if (!is_float(info.dtype)) {
      plan.problems.push_back("tensor '" + info.name + "' is " + io::dtype_name(info.dtype) +
                              ", which cannot fill a floating-point tensor");
      continue;
    }
    DitTensorPlan t{info.name, *ours, false};
    if (*ours == "patch_embedding.weight" && info.shape.size() > 1) plan.stored_in_channels = info.shape[1];
    if (info.shape != it->second) {
      if (*ours != "patch_embedding.weight" || !widenable(info.shape, it->second, config)) {
        plan.problems.push_back("tensor '" + info.name + "' has shape " + shape_str(info.shape) +
                                " but the model expects " + shape_str(it->second) + " for '" + *ours + "'");
        continue;
      }
      t.widened = true;
    }
    if (!filled.insert(*ours).second) {
      plan.problems.push_back("tensor '" + info.name + "' fills '" + *ours + "' a second time");
      continue;
    }
    plan.load.push_back(t);
  }

  // Model tensors the file lacks: whole new parts are fine (see the header), anything else is a problem.
  std::vector<std::string> missing;
  for (const auto& [name, shape] : config.parameter_shapes())
    if (!filled.count(name)) missing.push_back(name);
  auto none_filled = [&](bool (*in_group)(const std::string&)) {
    return std::none_of(filled.begin(), filled.end(), in_group);
  };
  const bool tracks_new = config.track_channels > 0 && plan.stored_in_channels > 0 &&
                          plan.stored_in_channels < config.in_channels() && none_filled(in_track_head);
  const bool clip_new = config.image_branch() && none_filled(in_clip_branch);
  std::vector<std::string> absent;
  for (const auto& name : missing) {
    if (tracks_new && in_track_head(name)) {
      plan.kept.push_back(name);
    } else if (clip_new && in_clip_branch(name)) {
      (name.find(".cross_attn.v_img.") != std::string::npos ? plan.zeroed : plan.kept).push_back(name);
    } else {
      absent.push_back(name);
    }
  }
  for (const auto& name : absent)
    plan.problems.push_back("tensor '" + best->to_stored(name).value_or(name) +
                            "' is missing (the model's '" + name + "'; layout " + plan.layout + ", " +
                            std::to_string(absent.size()) + " model tensors absent from the file)");
  return plan;
}

DitCheckpointPlan load_published_dit(WanDiTImpl& model, const std::string& path, const PublishedDitOptions& options) {
  io::TensorFile file(path);
  DitCheckpointPlan plan = plan_dit_checkpoint(file.tensors(), model.config(), options.part);
  if (!plan.problems.empty())
    throw io::SafetensorsError(path + ": " + plan.problems.front() +
                               (plan.problems.size() > 1
                                    ? " (and " + std::to_string(plan.problems.size() - 1) + " more problems)"
                                    : std::string()));

  std::map<std::string, at::Tensor> params;
  for (const auto& p : model.named_parameters()) params[p.key()] = p.value();
  auto param = [&](const std::string& name) -> at::Tensor& {
    const auto it = params.find(name);
    if (it == params.end())  // the manifest and the module disagree: a bug here, not in the file
      throw std::logic_error("load_published_dit: the model has no parameter '" + name + "'");
    return it->second;
  };
  for (const auto& t : plan.load) param(t.ours);  // every target exists before anything is written
  for (const auto& name : plan.zeroed) param(name);

  at::NoGradGuard no_grad;
  for (const auto& t : plan.load) {
    at::Tensor& target = param(t.ours);
    const at::Tensor value = file.read(*file.find(t.stored));
    if (t.widened) {  // [D, Cs, 1, 2, 2] into [D, Co, 1, 2, 2]: new input channels start at zero
      const int64_t cs = value.size(1);
      target.narrow(1, 0, cs).copy_(value);
      target.narrow(1, cs, target.size(1) - cs).zero_();
    } else {
      target.copy_(value);
    }
  }
  for (const auto& name : plan.zeroed) param(name).zero_();
  return plan;
}

}  // namespace ms
