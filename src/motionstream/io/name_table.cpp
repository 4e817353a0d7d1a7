#include "motionstream/io/name_table.h"

#include <cctype>
#include <stdexcept>
#include <utility>

namespace ms::io {

namespace {

constexpr const char* kIndex = "{N}";
constexpr size_t kIndexSize = 3;

// Matches `name` against `pattern`; on success `index` holds the digits that stood for {N} (empty without one).
bool match(const std::string& pattern, const std::string& name, std::string* index) {
  if (!pattern.empty() && pattern.back() == '*') {  // everything under a prefix
    index->clear();
    return name.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  }
  const size_t at = pattern.find(kIndex);
  if (at == std::string::npos) {
    index->clear();
    return pattern == name;
  }
  const size_t tail = pattern.size() - at - kIndexSize;
  if (name.size() < at + tail + 1 || name.compare(0, at, pattern, 0, at) != 0 ||
      name.compare(name.size() - tail, tail, pattern, at + kIndexSize, tail) != 0)
    return false;
  *index = name.substr(at, name.size() - tail - at);
  for (char c : *index)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return index->size() == 1 || (*index)[0] != '0';  // "07" is not a block index
}

}  // namespace

NameTable::NameTable(std::string layout, std::vector<NameRule> rules)
    : layout_(std::move(layout)), rules_(std::move(rules)) {
  for (const auto& r : rules_) {
    const bool stored_indexed = r.stored.find(kIndex) != std::string::npos;
    const bool ours_indexed = r.ours.find(kIndex) != std::string::npos;
    if ((stored_indexed != ours_indexed && !r.ours.empty()) || (stored_indexed && r.stored.find(kIndex, r.stored.find(kIndex) + 1) != std::string::npos))
      throw std::invalid_argument("name table " + layout_ + ": rule '" + r.stored + "' -> '" + r.ours +
                                  "' must use {N} once on both sides (or leave ours empty) or not at all");
    const size_t star = r.stored.find('*');
    if (star != std::string::npos && (star + 1 != r.stored.size() || star == 0 || !r.ours.empty() || stored_indexed))
      throw std::invalid_argument("name table " + layout_ + ": rule '" + r.stored + "' -> '" + r.ours +
                                  "': '*' may only end a prefix without {N}, in a rule whose target is empty");
  }
}

namespace {
std::optional<std::string> translate(const std::vector<NameRule>& rules, const std::string& name, bool to_ours) {
  std::string index;
  for (const auto& r : rules) {
    if (!to_ours && r.ours.empty()) continue;  // an unused stored tensor has no name of ours
    if (!match(to_ours ? r.stored : r.ours, name, &index)) continue;
    std::string out = to_ours ? r.ours : r.stored;
    if (const size_t at = out.find(kIndex); at != std::string::npos) out.replace(at, kIndexSize, index);
    return out;
  }
  return std::nullopt;
}
}  // namespace

std::optional<std::string> NameTable::to_ours(const std::string& stored) const { return translate(rules_, stored, true); }

std::optional<std::string> NameTable::to_stored(const std::string& ours) const { return translate(rules_, ours, false); }

}  // namespace ms::io
