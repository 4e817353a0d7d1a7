// Reading a config struct from JSON: unknown fields and malformed values are refused by name, missing fields keep
// their defaults, and the struct's validate() runs last. The struct needs nlohmann to_json/from_json (for example
// NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT) and a validate() method.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace ms {

template <class Config>
Config parse_config(const nlohmann::json& j, const std::string& type_name) {
  if (!j.is_object()) throw std::invalid_argument(type_name + ": expected a JSON object");
  const nlohmann::json known = Config{};
  for (const auto& [key, value] : j.items())
    if (!known.contains(key)) throw std::invalid_argument(type_name + "." + key + ": unknown field");
  Config out;
  try {
    out = j.get<Config>();
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(type_name + ": bad value (" + e.what() + ")");
  }
  out.validate();
  return out;
}

}  // namespace ms
