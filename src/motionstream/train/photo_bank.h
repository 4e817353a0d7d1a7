// PhotoBank: the real photographs the synthetic world crops its photo backgrounds and photo-filled objects from.
// Stored as data/photos.safetensors (see data/PHOTOS.md): one U8 tensor [H, W, 3] per photo, with the caption
// words ("description.<name>") and the licence ("licence.<name>") in the metadata.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ms::world {

struct Photo {
  std::string name;         // tensor name in the file, e.g. "chelsea"
  std::string description;  // caption words, e.g. "a cat"
  std::string licence;
  at::Tensor image;   // [3, H, W] float32 in [0, 1], CPU
  bool grey = false;  // three equal channels: the world tints it
};

class PhotoBank {
 public:
  // Throws std::runtime_error naming the file when it is missing, corrupt, empty, or holds a tensor that is not
  // U8 [H, W, 3].
  explicit PhotoBank(const std::string& path);

  const std::string& path() const { return path_; }
  int64_t size() const { return static_cast<int64_t>(photos_.size()); }
  const Photo& photo(int64_t index) const { return photos_.at(static_cast<size_t>(index)); }
  const std::vector<Photo>& photos() const { return photos_; }

 private:
  std::string path_;
  std::vector<Photo> photos_;  // in file order
};

// data/photos.safetensors found by walking up from `start` (default: the current directory), so that binaries
// run from build/ or from the source root find the bundled file. Empty string when no folder above holds it.
std::string find_photo_bank(const std::string& start = "");

}  // namespace ms::world
