#include "core/storage.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "core/error.h"

namespace sparc {

void write_file(const std::string& path, const std::string& text) {
  write_file(path, text.data(), text.size());
}

void write_file(const std::string& path, const char* data, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw StorageError(path + ": " + errno_text("cannot create"));
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      const std::string why = errno_text("write");
      ::close(fd);
      ::unlink(path.c_str());
      throw StorageError(path + ": " + why);
    }
    done += std::size_t(n);
  }
  if (::close(fd) != 0) {  // network file systems report a full disk here
    const std::string why = errno_text("close");
    ::unlink(path.c_str());
    throw StorageError(path + ": " + why);
  }
}

}  // namespace sparc
