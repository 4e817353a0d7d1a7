#include "motionstream/util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace ms {

Progress::Progress(std::string label, int64_t total, int64_t start, double log_interval_s)
    : label_(std::move(label)), total_(total), start_(start), step_(start), log_interval_s_(log_interval_s),
      tty_(isatty(fileno(stderr)) != 0), began_(std::chrono::steady_clock::now()), last_draw_(began_) {}

double Progress::steps_per_second() const {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - began_).count();
  return s > 0 ? static_cast<double>(step_ - start_) / s : 0.0;
}

void Progress::update(int64_t step, const std::string& figures) {
  step_ = step;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since < (tty_ ? 0.2 : log_interval_s_)) return;
  last_draw_ = now;
  draw(figures, false);
}

void Progress::finish(const std::string& figures) { draw(figures, true); }

void Progress::draw(const std::string& figures, bool final_line) {
  const double rate = steps_per_second();
  const double eta = rate > 0 ? static_cast<double>(total_ - step_) / rate : 0.0;
  const int width = 24;
  const int filled = total_ > 0 ? static_cast<int>(width * step_ / total_) : 0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld  %.2f it/s  ETA %dm%02ds  %s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               bar.c_str(), static_cast<long long>(step_), static_cast<long long>(total_), rate,
               static_cast<int>(eta) / 60, static_cast<int>(eta) % 60, figures.c_str(),
               (final_line || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace ms
