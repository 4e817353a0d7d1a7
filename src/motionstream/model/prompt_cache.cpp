#include "motionstream/model/prompt_cache.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace ms {

namespace {

constexpr const char* kFormat = "motionstream prompt embedding v1";

uint64_t fnv1a(const std::string& bytes, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

at::ScalarType scalar_type(io::DType d) {
  switch (d) {
    case io::DType::F32: return at::kFloat;
    case io::DType::F16: return at::kHalf;
    case io::DType::BF16: return at::kBFloat16;
    default: throw std::invalid_argument(std::string("prompt cache: cannot store ") + io::dtype_name(d));
  }
}

}  // namespace

PromptEmbeddingCache::PromptEmbeddingCache(std::string folder, std::string encoder_identity, io::DType stored_dtype)
    : folder_(std::move(folder)), identity_(std::move(encoder_identity)), dtype_(stored_dtype) {
  scalar_type(dtype_);  // refuses integer dtypes early
  std::filesystem::create_directories(folder_);
}

std::string PromptEmbeddingCache::entry_path(const std::string& prompt) const {
  // A NUL between the two, which neither contains, so that text cannot move from one to the other unnoticed.
  char name[32];
  std::snprintf(name, sizeof name, "%016llx.safetensors",
                static_cast<unsigned long long>(fnv1a(prompt, fnv1a(identity_ + '\0'))));
  return (std::filesystem::path(folder_) / name).string();
}

std::optional<at::Tensor> PromptEmbeddingCache::find(const std::string& prompt) const {
  const std::string path = entry_path(prompt);
  if (!std::filesystem::exists(path)) return std::nullopt;
  try {
    io::SafetensorsFile file(path);
    const auto& meta = file.metadata();
    const auto field = [&](const char* key) { auto it = meta.find(key); return it == meta.end() ? std::string() : it->second; };
    if (field("format") != kFormat || field("encoder") != identity_ || field("prompt") != prompt) return std::nullopt;
    const io::TensorInfo* info = file.find("context");
    if (!info || info->shape.size() != 3) return std::nullopt;
    at::Tensor t = at::empty(info->shape, at::TensorOptions().dtype(scalar_type(info->dtype)));
    std::memcpy(t.data_ptr(), file.data(*info), info->nbytes());
    return t;
  } catch (const std::exception&) {
    return std::nullopt;  // truncated or corrupt: recomputed and rewritten by get_or_compute
  }
}

at::Tensor PromptEmbeddingCache::store(const std::string& prompt, const at::Tensor& context) const {
  at::Tensor t = context.detach().to(at::kCPU, scalar_type(dtype_)).contiguous();
  io::write_safetensors(entry_path(prompt), {{"context", dtype_, t.sizes().vec(), t.data_ptr()}},
                        {{"format", kFormat}, {"encoder", identity_}, {"prompt", prompt}});
  return t;
}

at::Tensor PromptEmbeddingCache::get_or_compute(const std::string& prompt, const std::function<at::Tensor()>& compute) const {
  if (auto hit = find(prompt)) return *hit;
  return store(prompt, compute());
}

std::string encoder_file_identity(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path absolute = fs::weakly_canonical(fs::absolute(path));
  const auto modified = fs::last_write_time(absolute).time_since_epoch();
  return absolute.string() + " size " + std::to_string(fs::file_size(absolute)) + " mtime " +
         std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(modified).count());
}

}  // namespace ms
