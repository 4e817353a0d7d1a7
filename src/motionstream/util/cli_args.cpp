#include "motionstream/util/cli_args.h"

#include <sstream>

namespace ms {

CliArgs::CliArgs(int argc, char** argv, int first, std::set<std::string> known, std::set<std::string> flags) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      positional_.push_back(arg);
      continue;
    }
    std::string key = arg.substr(2), value;
    const auto eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    if (!known.count(key) && !flags.count(key)) throw std::invalid_argument("unknown option --" + key);
    if (flags.count(key)) {
      values_[key] = "1";
    } else if (eq == std::string::npos) {
      if (i + 1 >= argc) throw std::invalid_argument("option --" + key + " needs a value");
      values_[key] = argv[++i];
    } else {
      values_[key] = value;
    }
  }
}

std::string CliArgs::str(const std::string& key, const std::string& fallback) const {
  auto it = values_.find(key);
  return it == values_.end() ? fallback : it->second;
}

int64_t CliArgs::integer(const std::string& key, int64_t fallback) const {
  if (!has(key)) return fallback;
  try {
    size_t used = 0;
    const int64_t v = std::stoll(values_.at(key), &used);
    if (used == values_.at(key).size()) return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("option --" + key + ": '" + values_.at(key) + "' is not an integer");
}

double CliArgs::number(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  try {
    size_t used = 0;
    const double v = std::stod(values_.at(key), &used);
    if (used == values_.at(key).size()) return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("option --" + key + ": '" + values_.at(key) + "' is not a number");
}

std::vector<int64_t> CliArgs::integers(const std::string& key, const std::vector<int64_t>& fallback) const {
  if (!has(key)) return fallback;
  std::vector<int64_t> out;
  std::stringstream ss(values_.at(key));
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      out.push_back(std::stoll(item));
    } catch (const std::exception&) {
      throw std::invalid_argument("option --" + key + ": '" + item + "' is not an integer");
    }
  }
  return out;
}

}  // namespace ms
