// The few CUDA facilities the streaming engine uses (docs/ENGINE.md): a stream of its own, marks that order work
// across streams and time it, graph capture and replay, pinned host buffers and the caching allocator's statistics.
//
// This header carries no CUDA types. gpu.cpp is the one file that includes CUDA headers, and only when the Torch found
// at configure time has CUDA (MS_WITH_CUDA, set by CMakeLists.txt). For a CPU device, or in a build without that code,
// a stream is the current one (on the CPU: the host itself): work runs in order, every mark is already reached,
// nothing is timed, host buffers are not pinned, and graphs are unavailable.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>

namespace ms::gpu {

// True when this build has the CUDA code (the Torch it was built against has CUDA).
bool cuda_compiled();

// A point in the work queued on a stream. Default-constructed: already reached.
class Mark {
 public:
  Mark();
  ~Mark();
  Mark(Mark&&) noexcept;
  Mark& operator=(Mark&&) noexcept;
  void wait_host() const;  // blocks the host until the device has passed the mark
  // Device milliseconds from `earlier` to this mark, both recorded with timing and both reached; -1 when not
  // measurable (CPU, or a mark without timing).
  double ms_since(const Mark& earlier) const;

 private:
  friend class Stream;
  friend Mark mark_current(const at::Device&, bool);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A mark at the end of the work queued so far on the calling thread's current stream of `device`.
Mark mark_current(const at::Device& device, bool timed = false);

class Stream {
 public:
  // On a CUDA device: a stream from torch's pool (never the default stream); on the CPU: the host.
  // is_cuda() says which: false in a build without the CUDA code, whatever the device.
  explicit Stream(const at::Device& device);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  bool is_cuda() const;
  const at::Device& device() const { return device_; }
  // This stream waits (on the device) for all work queued so far on the current stream.
  void wait_for_current() const;
  // The current stream waits (on the device) for all work queued so far on this stream.
  void join_into_current() const;
  void wait(const Mark& mark) const;
  Mark mark(bool timed = false) const;  // a mark at the end of the work queued so far on this stream

  // Makes this stream the current one of its device until the scope ends (nothing on the CPU).
  class Scope {
   public:
    explicit Scope(const Stream& stream);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
  };

 private:
  friend class Graph;
  struct Impl;
  at::Device device_;
  std::unique_ptr<Impl> impl_;
};

// One captured CUDA graph: the kernels a body queues on a stream, replayed later without running the body's host
// code. The body may only queue device work on the current stream: no host synchronisation (.item(), printing a
// tensor), no copies from pageable host memory, no new random numbers from a CPU generator.
class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Captures body on `stream` (a CUDA side stream that already ran the same work eagerly once, so that library
  // handles and workspaces exist). Returns false with the reason in `why` when the capture failed: the graph is
  // then empty and the body's device work did not run. On success the body's work has not run either: replay it.
  bool capture(const Stream& stream, const std::function<void()>& body, std::string* why);
  bool captured() const;
  void replay() const;  // on the current stream

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A host tensor the device can copy to and from asynchronously: pinned when `for_device` is CUDA.
at::Tensor host_buffer(at::IntArrayRef sizes, at::ScalarType dtype, const at::Device& for_device);

// The CUDA caching allocator's statistics for a device (available = false elsewhere).
struct MemoryStats {
  bool available = false;
  int64_t allocated_bytes = 0, reserved_bytes = 0;            // now
  int64_t peak_allocated_bytes = 0, peak_reserved_bytes = 0;  // since the last reset_peak_memory()
  int64_t segments_created = 0;     // device memory segments (cudaMalloc) created so far
  int64_t allocation_requests = 0;  // tensor allocations served so far, from the cache or not
};
MemoryStats memory_stats(const at::Device& device);
void reset_peak_memory(const at::Device& device);

}  // namespace ms::gpu
