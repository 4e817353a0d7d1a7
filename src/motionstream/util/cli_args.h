// Minimal `--key value` / `--flag` command-line parsing shared by the CLI and the benchmarks.
// Unknown options and malformed values are errors that name the option.
#pragma once

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace ms {

class CliArgs {
 public:
  // known: option names without dashes; flags: the subset that takes no value.
  CliArgs(int argc, char** argv, int first, std::set<std::string> known, std::set<std::string> flags = {});

  bool has(const std::string& key) const { return values_.count(key) > 0; }
  std::string str(const std::string& key, const std::string& fallback) const;
  int64_t integer(const std::string& key, int64_t fallback) const;
  double number(const std::string& key, double fallback) const;
  std::vector<int64_t> integers(const std::string& key, const std::vector<int64_t>& fallback) const;  // "5,200"
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace ms
