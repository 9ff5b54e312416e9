#include "core/memory.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace sparc {

void keep_freed_memory_for_reuse() {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr) return;
  const char* opt_out = std::getenv("SPARC_MALLOC_DEFAULTS");
  if (opt_out != nullptr && std::strcmp(opt_out, "1") == 0) return;
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest glibc accepts on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);   // freed heap stays until 1 GiB sits unused at its top
  mallopt(M_TOP_PAD, 64 << 20);         // grow the heap in 64 MiB steps, not per block
#endif
}

}  // namespace sparc
