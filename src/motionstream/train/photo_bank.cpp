#include "motionstream/train/photo_bank.h"

#include <filesystem>
#include <stdexcept>

#include "motionstream/io/safetensors.h"
#include "motionstream/io/state_dict.h"

namespace ms::world {
namespace {

std::string metadata_or(const std::map<std::string, std::string>& metadata, const std::string& key,
                        const std::string& fallback) {
  auto it = metadata.find(key);
  return it == metadata.end() ? fallback : it->second;
}

Photo read_photo(const io::SafetensorsFile& file, const io::TensorInfo& info) {
  if (info.dtype != io::DType::U8 || info.shape.size() != 3 || info.shape[2] != 3 || info.shape[0] < 1 ||
      info.shape[1] < 1)
    throw std::runtime_error("tensor '" + info.name + "' must be U8 [H, W, 3]");
  Photo photo;
  photo.name = info.name;
  photo.description = metadata_or(file.metadata(), "description." + info.name, "a photo");
  photo.licence = metadata_or(file.metadata(), "licence." + info.name, "");
  // [H, W, 3] bytes -> [3, H, W] float in [0, 1]
  photo.image = io::read_tensor(file, info).permute({2, 0, 1}).to(at::kFloat).div_(255.0).contiguous();
  const auto spread = (photo.image.amax(0) - photo.image.amin(0)).max().item<float>();
  photo.grey = spread < 1.5f / 255.0f;
  return photo;
}

}  // namespace

PhotoBank::PhotoBank(const std::string& path) : path_(path) {
  try {
    io::SafetensorsFile file(path);
    for (const auto& info : file.tensors()) photos_.push_back(read_photo(file, info));
  } catch (const std::exception& e) {
    const std::string why = e.what();  // safetensors errors already start with the path
    throw std::runtime_error("photo bank: " + (why.find(path) == std::string::npos ? path + ": " + why : why));
  }
  if (photos_.empty()) throw std::runtime_error("photo bank " + path + ": holds no photos");
}

std::string find_photo_bank(const std::string& start) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::path dir = start.empty() ? fs::current_path(error) : fs::path(start);
  if (error) return "";
  dir = fs::absolute(dir, error);
  for (; !dir.empty(); dir = dir.parent_path()) {
    const fs::path candidate = dir / "data" / "photos.safetensors";
    if (fs::is_regular_file(candidate, error)) return candidate.string();
    if (dir == dir.root_path()) break;
  }
  return "";
}

}  // namespace ms::world
