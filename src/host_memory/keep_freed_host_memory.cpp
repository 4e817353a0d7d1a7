// Linked into every program of the project: before main, tells glibc's allocator to keep freed memory.
//
// Why: torch allocates and frees the same large buffers at every training step and every streamed chunk. With
// glibc's defaults, blocks over a few MiB are mmap'd and unmapped again on each free, so the next step gets them back
// as fresh zero-filled pages. On the 2-core development CPU that page-fault traffic cost as much as the arithmetic:
// serving every block from the heap and keeping 1 GiB of slack at its top took the bundled model's stream from 41 to
// 69-70 FPS and `train vae` from 0.07 to 0.24 steps/s (docs/PERFORMANCE.md), at about the same peak resident memory.
// Kept out of the library so that programs embedding it keep their own allocator settings.
#include <cstdlib>  // first: defines __GLIBC__

#if defined(__GLIBC__)
#include <malloc.h>

namespace {

struct KeepFreedHostMemory {
  KeepFreedHostMemory() {
    // MS_DEFAULT_MALLOC=1 measures the defaults; glibc's own tunables (GLIBC_TUNABLES, MALLOC_*_) still apply.
    if (std::getenv("MS_DEFAULT_MALLOC")) return;
    mallopt(M_MMAP_MAX, 0);        // no block is mmap'd: freed ones return to the heap for the next step
    mallopt(M_TOP_PAD, 1 << 30);   // grow the heap in 1 GiB strides and trim only beyond that slack
  }
} keep_freed_host_memory;

}  // namespace
#endif
