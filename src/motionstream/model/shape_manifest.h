// A model's parameter manifest (name and shape of every tensor, nothing allocated) and its total size. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ms {

using ShapeManifest = std::vector<std::pair<std::string, std::vector<int64_t>>>;

inline int64_t manifest_parameter_count(const ShapeManifest& manifest) {
  int64_t total = 0;
  for (const auto& [name, shape] : manifest) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    total += n;
  }
  return total;
}

}  // namespace ms
