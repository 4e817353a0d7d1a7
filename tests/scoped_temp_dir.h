// A fresh folder per test (under MS_TEST_TMP when set), removed when the test ends. Torch-free.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <string>

namespace ms::test {

class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& tag) {
    const char* env = std::getenv("MS_TEST_TMP");
    const std::filesystem::path base = env && *env ? std::filesystem::path(env) : std::filesystem::temp_directory_path();
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = base / ("ms_" + tag + "_" + test + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~ScopedTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::filesystem::path& path() const { return dir_; }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  size_t entries() const {
    return static_cast<size_t>(std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()));
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace ms::test
