// The project's only CUDA-specific code (see gpu.h). Everything between `#ifdef MS_WITH_CUDA` and its `#endif` is
// written against PyTorch 2.x's C++ API (ATen/cuda, c10/cuda) and compiled only on machines whose Torch has CUDA.
#include "motionstream/util/gpu.h"

#include <stdexcept>

#ifdef MS_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace ms::gpu {

#ifdef MS_WITH_CUDA

namespace {
c10::DeviceIndex index_of(const at::Device& device) {
  return device.has_index() ? device.index() : c10::cuda::current_device();
}
}  // namespace

bool cuda_compiled() { return true; }

struct Mark::Impl {
  explicit Impl(bool timed) : event(timed ? cudaEventDefault : cudaEventDisableTiming), timed(timed) {}
  at::cuda::CUDAEvent event;
  bool timed;
};

struct Stream::Impl {
  explicit Impl(c10::DeviceIndex index) : stream(c10::cuda::getStreamFromPool(false, index)) {}
  c10::cuda::CUDAStream stream;
};

struct Stream::Scope::Impl {
  explicit Impl(const c10::cuda::CUDAStream& stream) : guard(stream) {}
  c10::cuda::CUDAStreamGuard guard;
};

struct Graph::Impl {
  std::unique_ptr<at::cuda::CUDAGraph> graph;
};

Mark mark_current(const at::Device& device, bool timed) {
  Mark m;
  if (!device.is_cuda()) return m;
  m.impl_ = std::make_unique<Mark::Impl>(timed);
  m.impl_->event.record(c10::cuda::getCurrentCUDAStream(index_of(device)));
  return m;
}

void Mark::wait_host() const {
  if (impl_) impl_->event.synchronize();
}

double Mark::ms_since(const Mark& earlier) const {
  if (!impl_ || !earlier.impl_ || !impl_->timed || !earlier.impl_->timed) return -1.0;
  return static_cast<double>(earlier.impl_->event.elapsed_time(impl_->event));
}

Stream::Stream(const at::Device& device) : device_(device) {
  if (device.is_cuda()) impl_ = std::make_unique<Impl>(index_of(device));
}

void Stream::wait_for_current() const {
  if (!impl_) return;
  at::cuda::CUDAEvent event;  // a wait binds to the event's record at the time of the call: the event may go
  event.record(c10::cuda::getCurrentCUDAStream(impl_->stream.device_index()));
  event.block(impl_->stream);
}

void Stream::join_into_current() const {
  if (!impl_) return;
  at::cuda::CUDAEvent event;
  event.record(impl_->stream);
  event.block(c10::cuda::getCurrentCUDAStream(impl_->stream.device_index()));
}

void Stream::wait(const Mark& mark) const {
  if (impl_ && mark.impl_) mark.impl_->event.block(impl_->stream);
}

Mark Stream::mark(bool timed) const {
  Mark m;
  if (!impl_) return m;
  m.impl_ = std::make_unique<Mark::Impl>(timed);
  m.impl_->event.record(impl_->stream);
  return m;
}

Stream::Scope::Scope(const Stream& stream) {
  if (stream.impl_) impl_ = std::make_unique<Impl>(stream.impl_->stream);
}

bool Graph::capture(const Stream& stream, const std::function<void()>& body, std::string* why) {
  impl_->graph.reset();
  if (!stream.impl_) {
    if (why) *why = "CUDA graphs need a CUDA device, the stream is on " + stream.device().str();
    return false;
  }
  // Everything queued before (the eager warm-up, uploads on other streams) finishes first, as torch.cuda.graph does.
  c10::cuda::device_synchronize();
  Stream::Scope scope(stream);
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  try {
    graph->capture_begin();
  } catch (const std::exception& e) {
    if (why) *why = std::string("capture_begin: ") + e.what();
    return false;
  }
  try {
    body();
  } catch (const std::exception& e) {
    if (why) *why = std::string("during capture: ") + e.what();
    try {
      graph->capture_end();  // ends the (invalidated) capture so that the stream is usable again
    } catch (const std::exception&) {
    }
    return false;
  }
  try {
    graph->capture_end();
  } catch (const std::exception& e) {
    if (why) *why = std::string("capture_end: ") + e.what();
    return false;
  }
  impl_->graph = std::move(graph);
  return true;
}

void Graph::replay() const {
  if (!impl_->graph) throw std::logic_error("gpu::Graph::replay: nothing was captured");
  impl_->graph->replay();
}

at::Tensor host_buffer(at::IntArrayRef sizes, at::ScalarType dtype, const at::Device& for_device) {
  return at::empty(sizes, at::TensorOptions().dtype(dtype).pinned_memory(for_device.is_cuda()));
}

MemoryStats memory_stats(const at::Device& device) {
  MemoryStats out;
  if (!device.is_cuda()) return out;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index_of(device));
  const size_t all = 0;  // StatType::AGGREGATE
  out.available = true;
  out.allocated_bytes = stats.allocated_bytes[all].current;
  out.reserved_bytes = stats.reserved_bytes[all].current;
  out.peak_allocated_bytes = stats.allocated_bytes[all].peak;
  out.peak_reserved_bytes = stats.reserved_bytes[all].peak;
  out.segments_created = stats.segment[all].allocated;
  out.allocation_requests = stats.allocation[all].allocated;
  return out;
}

void reset_peak_memory(const at::Device& device) {
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(index_of(device));
}

#else  // no CUDA code in this build: streams are the current one, marks are reached, graphs are unavailable

bool cuda_compiled() { return false; }

struct Mark::Impl {};
struct Stream::Impl {};
struct Stream::Scope::Impl {};
struct Graph::Impl {};

Mark mark_current(const at::Device&, bool) { return Mark(); }

void Mark::wait_host() const {}
double Mark::ms_since(const Mark&) const { return -1.0; }

// A CUDA model still runs here (eagerly, all on torch's current stream): ordering holds, copies from host memory
// are synchronous (host_buffer is not pinned), and marks cannot time anything.
Stream::Stream(const at::Device& device) : device_(device) {}
void Stream::wait_for_current() const {}
void Stream::join_into_current() const {}
void Stream::wait(const Mark&) const {}
Mark Stream::mark(bool) const { return Mark(); }
Stream::Scope::Scope(const Stream&) {}

bool Graph::capture(const Stream&, const std::function<void()>&, std::string* why) {
  if (why) *why = "this build has no CUDA (the Torch it was built against is CPU-only)";
  return false;
}

void Graph::replay() const { throw std::logic_error("gpu::Graph::replay: this build has no CUDA"); }

at::Tensor host_buffer(at::IntArrayRef sizes, at::ScalarType dtype, const at::Device&) {
  return at::empty(sizes, at::TensorOptions().dtype(dtype));
}

MemoryStats memory_stats(const at::Device&) { return MemoryStats(); }
void reset_peak_memory(const at::Device&) {}

#endif

// Shared by both builds: only the Impl definitions above differ.
Mark::Mark() = default;
Mark::~Mark() = default;
Mark::Mark(Mark&&) noexcept = default;
Mark& Mark::operator=(Mark&&) noexcept = default;
Stream::~Stream() = default;
bool Stream::is_cuda() const { return impl_ != nullptr; }
Stream::Scope::~Scope() = default;
Graph::Graph() : impl_(std::make_unique<Impl>()) {}
Graph::~Graph() = default;
bool Graph::captured() const {
#ifdef MS_WITH_CUDA
  return impl_->graph != nullptr;
#else
  return false;
#endif
}

}  // namespace ms::gpu
