// A one-line progress display for long jobs: step, rate, ETA and the caller's figures. Redraws in place on a
// terminal; elsewhere (logs, CI) prints a line at most every `log_interval_s` seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ms {

class Progress {
 public:
  Progress(std::string label, int64_t total, int64_t start = 0, double log_interval_s = 30.0);
  // Advances to `step` and shows `figures` (e.g. "loss 0.0123  psnr 27.1").
  void update(int64_t step, const std::string& figures = "");
  void finish(const std::string& figures = "");
  double steps_per_second() const;

 private:
  void draw(const std::string& figures, bool final_line);
  std::string label_;
  int64_t total_, start_, step_;
  double log_interval_s_;
  bool tty_;
  std::chrono::steady_clock::time_point began_, last_draw_;
};

}  // namespace ms
