// motionstream: the command-line front end of the library.
//   motionstream info [--preset NAME]                 a model preset (DiT; umT5: umt5-xxl, umt5-tiny; wan-vae;
//                                                     CLIP vision: clip-vit-h-14, clip-tiny): config,
//                                                     tensor and parameter counts
//   motionstream inspect FILE [--preset NAME] [--prefix P] [--part P]
//                                                     tensors of a safetensors or torch.save (.pth) file; with
//                                                     --preset (a DiT, umT5 or Wan VAE preset), which tensors are
//                                                     missing, unexpected or of the wrong shape for that model
//                                                     (umT5 presets read Wan or Hugging Face names; DiT presets
//                                                     Wan, diffusers or Self-Forcing/CausVid names, --part picking
//                                                     generator_ema, generator or critic, and say what loading the
//                                                     file would widen, keep or zero)
//   motionstream generate | tracks | eval ...         offline generation, track tools, evaluation (docs/USAGE.md;
//                                                     built when OpenCV is present)
//   motionstream clip-tokens --clip FILE --image IMG --out tokens.safetensors
//                                                     the CLIP image tokens of Wan's I2V (docs/FORMATS.md; OpenCV)
//   motionstream demo | serve [...]                   the live server and web app (docs/PROTOCOL.md; built when
//                                                     OpenCV, Boost.Beast and TurboJPEG are present)
//   motionstream train vae|teacher|causal|dmd --run DIR [--config FILE] [--FIELD VALUE ...] [--max-minutes M] [--max-steps N]
//                                                     [--export] (also export the EMA model now: --max-steps 0 --export)
//                                                     a training stage on the world (resumes DIR; the limits end
//                                                     this invocation early, with a checkpoint)
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

#include "motionstream/io/checkpoint_layout.h"
#include "motionstream/io/safetensors.h"
#include "motionstream/io/tensor_file.h"
#include "motionstream/model/clip_vision.h"
#include "motionstream/model/dit_checkpoint.h"
#include "motionstream/model/dit_config.h"
#include "motionstream/model/published_model.h"
#include "motionstream/model/umt5_checkpoint.h"
#include "motionstream/model/vae/wan_vae_config.h"
#include "motionstream/train/causal_init.h"
#include "motionstream/train/dmd.h"
#include "motionstream/train/teacher_trainer.h"
#include "motionstream/train/vae_trainer.h"
#include "motionstream/util/json_config.h"
#ifdef MS_WITH_MEDIA
#include "clip_command.h"
#include "media_commands.h"
#endif
#ifdef MS_WITH_SERVE
#include "serve_command.h"
#endif
#include "motionstream/util/cli_args.h"

using namespace ms;

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool is_umt5_preset(const std::string& name) {
  const auto names = umt5_preset_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool is_clip_preset(const std::string& name) {
  const auto names = clip_vision_preset_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

int info(int argc, char** argv) {
  CliArgs args(argc, argv, 2, {"preset"});
  std::vector<std::string> names = args.has("preset") ? std::vector<std::string>{args.str("preset", "")}
                                                      : dit_preset_names();
  for (const auto& name : names) {
    if (is_umt5_preset(name)) {
      const Umt5Config u = umt5_preset(name);
      std::cout << nlohmann::json{{"name", u.name}, {"vocab", u.vocab}, {"dim", u.dim}, {"num_heads", u.num_heads},
                                  {"head_dim", u.head_dim}, {"ffn_dim", u.ffn_dim}, {"num_layers", u.num_layers},
                                  {"tensors", u.parameter_shapes().size()}, {"parameters", u.parameter_count()}}
                       .dump()
                << "\n";
      continue;
    }
    if (is_clip_preset(name)) {
      const ClipVisionConfig c = clip_vision_preset(name);
      std::cout << nlohmann::json{{"name", c.name}, {"image_size", c.image_size}, {"patch_size", c.patch_size},
                                  {"dim", c.dim}, {"num_heads", c.num_heads}, {"mlp_dim", c.mlp_dim},
                                  {"num_layers", c.num_layers}, {"output_blocks", c.output_blocks},
                                  {"tokens", c.tokens()}, {"tensors", c.parameter_shapes().size()},
                                  {"parameters", c.parameter_count()}}
                       .dump()
                << "\n";
      continue;
    }
    if (is_wan_vae_preset(name)) {
      const WanVaeConfig c = wan_vae_preset(name);
      std::cout << nlohmann::json{{"name", c.name}, {"base_dim", c.base_dim}, {"z_dim", c.z_dim},
                                  {"dim_mult", c.dim_mult}, {"num_res_blocks", c.num_res_blocks},
                                  {"temporal_downsample", c.temporal_downsample},
                                  {"tensors", c.parameter_shapes().size()}, {"parameters", c.parameter_count()}}
                       .dump()
                << "\n";
      continue;
    }
    const DitConfig c = dit_preset(name);
    nlohmann::json j = c;
    j["tensors"] = c.parameter_shapes().size();
    j["parameters"] = c.parameter_count();
    j["in_channels"] = c.in_channels();
    std::cout << j.dump() << "\n";
  }
  return 0;
}

// A DiT preset: the stored names read through the DiT name tables, as load_published_dit would read them.
int inspect_dit(const io::TensorFile& file, const std::string& preset, const std::string& part) {
  const DitCheckpointPlan plan = plan_dit_checkpoint(file.tensors(), dit_preset(preset), part);
  if (!plan.layout.empty())
    std::printf("names read as: %s%s\n", plan.layout.c_str(), plan.part.empty() ? "" : (", part " + plan.part).c_str());
  if (!plan.skipped.empty()) std::printf("not read    %zu tensors (other parts, unused by the model)\n", plan.skipped.size());
  for (const auto& t : plan.load)
    if (t.widened)
      std::printf("widened     %s: %lld stored input channels, the model's others start at zero\n", t.ours.c_str(),
                  static_cast<long long>(plan.stored_in_channels));
  for (const auto& name : plan.kept) std::printf("new         %s (not in the file; keeps its initial values)\n", name.c_str());
  for (const auto& name : plan.zeroed) std::printf("new, zero   %s (the CLIP branch then adds nothing)\n", name.c_str());
  for (const auto& problem : plan.problems) std::printf("problem     %s\n", problem.c_str());
  std::printf("%s: %zu problem(s) against preset %s\n", file.path().c_str(), plan.problems.size(), preset.c_str());
  return plan.problems.empty() ? 0 : 1;
}

int inspect(int argc, char** argv) {
  CliArgs args(argc, argv, 2, {"preset", "prefix", "part"});
  if (args.positional().size() != 1) throw std::invalid_argument("usage: motionstream inspect FILE [--preset NAME]");
  io::TensorFile file(args.positional()[0]);  // safetensors, or a torch.save'd state dict (.pth)
  int64_t total = 0;
  std::map<std::string, std::vector<int64_t>> stored;
  const std::string prefix = args.str("prefix", "");
  for (const auto& t : file.tensors()) {
    std::printf("%-60s %-5s %s\n", t.name.c_str(), io::dtype_name(t.dtype), shape_str(t.shape).c_str());
    total += t.numel();
    if (t.name.rfind(prefix, 0) == 0) stored[t.name.substr(prefix.size())] = t.shape;
  }
  std::printf("%zu tensors, %lld parameters\n", file.tensors().size(), static_cast<long long>(total));
  const io::LayoutGuess layout = io::recognise_layout(file.tensors());
  std::string wrappers;
  for (const auto& w : layout.wrappers) wrappers += (wrappers.empty() ? "" : ", ") + w;
  std::printf("layout: %s%s%s%s\n", layout.kind.c_str(), layout.detail.empty() ? "" : (" (" + layout.detail + ")").c_str(),
              layout.prefix.empty() ? "" : (", names under '" + layout.prefix + "'").c_str(),
              wrappers.empty() ? "" : (", parts: " + wrappers).c_str());
  if (!args.has("preset")) return 0;

  const std::string preset = args.str("preset", "");
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  if (is_umt5_preset(preset)) {
    // Stored names go through the umT5 name table (Wan or Hugging Face names, whichever matches more of them);
    // the lines below speak of the model's (Wan) names.
    shapes = umt5_preset(preset).parameter_shapes();
    const io::NameTable* table = &umt5_wan_names();
    auto matches = [&](const io::NameTable& t) {
      return std::count_if(stored.begin(), stored.end(), [&](const auto& kv) { return t.to_ours(kv.first).has_value(); });
    };
    if (matches(umt5_hf_names()) > matches(*table)) table = &umt5_hf_names();
    std::map<std::string, std::vector<int64_t>> converted;
    for (const auto& [name, shape] : stored) converted[table->to_ours(name).value_or(name)] = shape;
    stored = std::move(converted);
    std::printf("names read as: %s\n", table->layout().c_str());
  } else if (is_wan_vae_preset(preset)) {
    shapes = wan_vae_preset(preset).parameter_shapes();
  } else {
    return inspect_dit(file, preset, args.str("part", ""));
  }
  int problems = 0;
  std::map<std::string, bool> expected;
  for (const auto& [name, shape] : shapes) {
    expected[name] = true;
    auto it = stored.find(name);
    if (it == stored.end()) {
      std::printf("missing     %s %s\n", name.c_str(), shape_str(shape).c_str());
      ++problems;
    } else if (it->second != shape) {
      std::printf("wrong shape %s: file %s, model %s\n", name.c_str(), shape_str(it->second).c_str(),
                  shape_str(shape).c_str());
      ++problems;
    }
  }
  for (const auto& [name, shape] : stored)
    if (!expected.count(name)) {
      std::printf("unexpected  %s\n", name.c_str());
      ++problems;
    }
  std::printf("%s: %d problem(s) against preset %s\n", file.path().c_str(), problems, preset.c_str());
  return problems == 0 ? 0 : 1;
}

// A training config: the JSON of --config (if any), then every --FIELD VALUE on the command line on top
// (VALUE parsed as JSON where it parses, else taken as a string). Unknown fields are refused by the config itself.
nlohmann::json training_config(int argc, char** argv, int first, std::string& run_dir, RunLimits& limits) {
  nlohmann::json config = nlohmann::json::object();
  for (int i = first; i < argc; ++i) {
    std::string key = argv[i];
    if (key == "--export") {  // a flag: export the EMA model when this invocation ends, complete or not
      limits.export_now = true;
      continue;
    }
    if (key.rfind("--", 0) != 0 || i + 1 >= argc) throw std::invalid_argument("expected --FIELD VALUE, got '" + key + "'");
    key = key.substr(2);
    const std::string value = argv[++i];
    if (key == "run") {
      run_dir = value;
    } else if (key == "max-steps") {
      limits.max_steps = std::stoll(value);
    } else if (key == "max-minutes") {
      limits.max_minutes = std::stod(value);
    } else if (key == "config") {
      std::ifstream in(value);
      if (!in) throw std::invalid_argument(value + ": cannot read the config file");
      try {
        config.update(nlohmann::json::parse(in));
      } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(value + ": not valid JSON (" + e.what() + ")");
      }
    } else {
      config[key] = nlohmann::json::accept(value) ? nlohmann::json::parse(value) : nlohmann::json(value);
    }
  }
  if (run_dir.empty()) throw std::invalid_argument("--run DIR is required (the run's folder; an existing one resumes)");
  return config;
}

int train(int argc, char** argv) {
  if (argc < 3) throw std::invalid_argument("usage: motionstream train vae|teacher|causal|dmd --run DIR [--config FILE] [--FIELD VALUE ...]");
  const std::string stage = argv[2];
  std::string run_dir;
  RunLimits limits;
  nlohmann::json config = training_config(argc, argv, 3, run_dir, limits);
  if (stage == "vae") {
    train_vae(parse_config<VaeTrainConfig>(config, "VaeTrainConfig"), run_dir, limits);
    return 0;
  }
  if (stage == "teacher") {
    train_teacher(parse_config<TeacherTrainConfig>(config, "TeacherTrainConfig"), run_dir, limits);
    return 0;
  }
  if (stage == "causal") {
    train_causal_init(parse_config<CausalInitConfig>(config, "CausalInitConfig"), run_dir, limits);
    return 0;
  }
  if (stage == "dmd") {
    train_dmd(parse_config<DmdConfig>(config, "DmdConfig"), run_dir, limits);
    return 0;
  }
  throw std::invalid_argument("unknown training stage '" + stage + "' (known: vae, teacher, causal, dmd)");
}

// A model folder from published Wan2.1 files (docs/USAGE.md, "From published Wan2.1 files").
int import_wan(int argc, char** argv) {
  CliArgs args(argc, argv, 2, {"out", "dit", "part", "preset", "umt5", "tokenizer", "prompt-cache", "taehv", "clip", "dtype"});
  auto need = [&](const char* key) {
    if (!args.has(key)) throw std::invalid_argument(std::string("import-wan: --") + key + " is required");
    return args.str(key, "");
  };
  PublishedFiles files;
  files.dit = need("dit");
  files.dit_part = args.str("part", "");
  files.config = dit_preset(args.str("preset", "wan-1.3b-motion"));
  files.text.weights = need("umt5");
  files.text.tokenizer = need("tokenizer");
  files.text.cache = args.str("prompt-cache", "");
  files.taehv = need("taehv");
  files.clip = args.str("clip", "");
  const std::string dtype = args.str("dtype", "bf16");
  if (dtype != "bf16" && dtype != "f32") throw std::invalid_argument("import-wan: --dtype must be bf16 or f32, got '" + dtype + "'");
  files.dtype = dtype == "bf16" ? io::DType::BF16 : io::DType::F32;
  const std::string out = need("out");
  const DitCheckpointPlan plan = import_published_model(files, out);
  std::printf("%s: %s (%zu tensors read%s%s), input channels %lld -> %lld\n", out.c_str(), plan.layout.c_str(),
              plan.load.size(), plan.part.empty() ? "" : (", part " + plan.part).c_str(),
              plan.zeroed.empty() ? "" : ", silent CLIP branch", static_cast<long long>(plan.stored_in_channels),
              static_cast<long long>(files.config.in_channels()));
  return 0;
}

void usage() {
  std::fprintf(stderr,
               "usage: motionstream <command> [options]\n"
               "  info [--preset NAME]                          model presets: config, tensors, parameters\n"
               "  inspect FILE [--preset NAME] [--prefix P] [--part P]  tensors of a safetensors or .pth file, checked against a\n"
               "                                                preset (DiT, umT5 or wan-vae)\n"
               "  import-wan --out DIR --dit FILE [--part P] [--preset wan-1.3b-motion] --umt5 FILE --tokenizer FILE\n"
               "             [--prompt-cache DIR] --taehv FILE [--clip FILE] [--dtype bf16|f32]\n"
               "                                                a model folder from published Wan2.1 files\n"
               "  train vae|teacher|causal|dmd --run DIR [--config FILE] [--FIELD VALUE ...] [--max-minutes M] [--max-steps N] [--export]\n"
               "                                                a training stage on the synthetic world (resumable)\n"
#ifdef MS_WITH_MEDIA
               "  generate --model DIR --image FILE --prompt TEXT [--tracks FILE | --drag ... | --camera ...] --out FILE.mp4\n"
               "  tracks draw|grid|pins|camera|show|transfer ...  make, check and transfer point tracks\n"
               "  eval --video FILE --tracks FILE [--reference FILE]   motion-following EPE, PSNR, SSIM (JSON)\n"
               "  world --out DIR [--count N] [--validation]        sample clips of the synthetic world, tracks drawn\n"
               "  evaluate --method still|truth|warp|teacher|student [--model DIR] [--clips 8] [--out FILE.json] [--videos DIR]\n"
               "           [--hint-start T]\n"
               "                                                EPE / PSNR / SSIM on the world's validation clips\n"
               "  clip-tokens --clip FILE --image IMG --out tokens.safetensors [--preset clip-vit-h-14]\n"
               "                                                Wan's CLIP image tokens [257, 1280] for an I2V model\n"
               "  (see docs/USAGE.md)\n"
#endif
#ifdef MS_WITH_SERVE
               "  demo [--port 8080] [--model DIR]              the live demo in the browser (bundled model)\n"
               "  serve [--model DIR | --backend warp] [--port P] [--host H] ...   the live server (docs/PROTOCOL.md)\n"
#endif
               );
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string command = argv[1];
  if (command == "info") return info(argc, argv);
  if (command == "inspect") return inspect(argc, argv);
  if (command == "import-wan") return import_wan(argc, argv);
  if (command == "train") return train(argc, argv);
#ifdef MS_WITH_MEDIA
  if (command == "generate") return generate_command(argc, argv);
  if (command == "tracks") return tracks_command(argc, argv);
  if (command == "eval") return eval_command(argc, argv);
  if (command == "world") return world_command(argc, argv);
  if (command == "evaluate") return evaluate_command(argc, argv);
  if (command == "clip-tokens") return clip_tokens_command(argc, argv);
#endif
#ifdef MS_WITH_SERVE
  if (command == "demo" || command == "serve") return serve_command(argc, argv, command == "demo");
#endif
  usage();
  return 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "motionstream: %s\n", e.what());
  return 2;
}
