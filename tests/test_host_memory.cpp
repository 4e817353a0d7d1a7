// The programs' allocator setting (src/host_memory): large blocks come from the heap, not from fresh mmap'd pages.
#include <gtest/gtest.h>

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>

TEST(HostMemory, LargeBlocksComeFromTheHeapAndStayThere) {
  if (std::getenv("MS_DEFAULT_MALLOC")) GTEST_SKIP() << "MS_DEFAULT_MALLOC restores glibc's defaults";
  const size_t mmapped_before = mallinfo2().hblkhd;
  const size_t bytes = 64u << 20;  // far above glibc's default mmap threshold (128 KiB, adaptive up to 32 MiB)
  char* block = static_cast<char*>(std::malloc(bytes));
  ASSERT_NE(block, nullptr);
  block[0] = block[bytes - 1] = 1;
  EXPECT_EQ(mallinfo2().hblkhd, mmapped_before) << "a 64 MiB block was mmap'd: the setting is not in effect";
  const size_t heap_with_block = mallinfo2().arena;
  std::free(block);
  EXPECT_GE(mallinfo2().arena + (1u << 20), heap_with_block) << "the freed block went back to the kernel";
}
#endif
