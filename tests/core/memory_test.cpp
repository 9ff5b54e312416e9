// keep_freed_memory_for_reuse: large blocks come from the heap and stay there
// after free, instead of fresh kernel pages per allocation (glibc's mmap).
// One process, one ordered test: mallopt settings are process-wide.
#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>

#include "core/memory.h"

namespace {

constexpr std::size_t kMiB = 1 << 20;

// Bytes glibc currently holds in mmap'ed blocks.
std::size_t mmapped_bytes() { return mallinfo2().hblkhd; }

// Allocates and touches `bytes`; returns how much of it came from mmap.
std::size_t mmapped_by_allocation(std::size_t bytes, void** out) {
  const std::size_t before = mmapped_bytes();
  void* p = std::malloc(bytes);
  EXPECT_NE(p, nullptr);
  std::memset(p, 1, bytes);
  *out = p;
  const std::size_t after = mmapped_bytes();
  return after > before ? after - before : 0;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARC_OWN_MALLOC 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SPARC_OWN_MALLOC 1
#endif

TEST(Memory, LargeBlocksStayInTheHeapForReuse) {
#ifdef SPARC_OWN_MALLOC
  GTEST_SKIP() << "AddressSanitizer replaces glibc's malloc: nothing of glibc's to tune";
#endif
  ASSERT_EQ(std::getenv("MALLOC_MMAP_THRESHOLD_"), nullptr) << "the test needs glibc's defaults";
  void* p = nullptr;
  // glibc's default: a 16 MiB block is mmap'ed (and its free raises the
  // dynamic threshold to 16 MiB, which is why the next check uses 24 MiB).
  EXPECT_GE(mmapped_by_allocation(16 * kMiB, &p), 16 * kMiB);
  std::free(p);

  // The opt-out leaves glibc alone: 24 MiB is still above its threshold.
  ASSERT_EQ(setenv("SPARC_MALLOC_DEFAULTS", "1", 1), 0);
  sparc::keep_freed_memory_for_reuse();
  EXPECT_GE(mmapped_by_allocation(24 * kMiB, &p), 24 * kMiB);
  std::free(p);

  ASSERT_EQ(unsetenv("SPARC_MALLOC_DEFAULTS"), 0);
  sparc::keep_freed_memory_for_reuse();
  EXPECT_EQ(mmapped_by_allocation(24 * kMiB, &p), 0u);
  std::free(p);
  // Freed, the block stays in the heap (not trimmed back to the kernel)...
  EXPECT_GE(mallinfo2().fordblks, 24 * kMiB);
  // ...and the next allocation of that size reuses it without growing the heap.
  const std::size_t arena = mallinfo2().arena;
  EXPECT_EQ(mmapped_by_allocation(24 * kMiB, &p), 0u);
  EXPECT_EQ(mallinfo2().arena, arena);
  std::free(p);
}

}  // namespace
