// Process-wide allocator settings for training: tensors of a step are
// allocated and freed thousands of times, and glibc's default gives every
// block above its mmap threshold fresh pages from the kernel, so each new
// activation pays a page fault per 4 KiB before it is written (measured on a
// 2-core VM: x * sigmoid(x) on 3M floats, 46 ms with the defaults, 1.8 ms
// with freed memory kept for reuse).
#pragma once

namespace sparc {

// Keeps freed blocks up to 32 MiB (glibc's largest mmap threshold) in the
// heap for reuse and stops trimming the heap back to the kernel. Does nothing
// when the user set MALLOC_MMAP_THRESHOLD_ (their glibc tuning wins) or
// SPARC_MALLOC_DEFAULTS=1. Call once, first thing in main.
void keep_freed_memory_for_reuse();

}  // namespace sparc
