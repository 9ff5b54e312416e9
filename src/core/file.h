// Read-only access to files: whole-file reads for small text files, and a
// memory mapping for large binary ones (weights), so only the pages that are
// used are ever read from disk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sparc {

// Reads a whole file; throws InputError naming the path when it cannot.
std::string read_text_file(const std::string& path);

bool file_exists(const std::string& path);
// mkdir -p; throws InputError naming the first directory that cannot be made.
void make_directories(const std::string& path);
bool is_directory(const std::string& path);

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path` read-only. Throws InputError naming the path on failure.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops this process's resident pages of [offset, offset + length) (whole
  // pages around it); the mapping stays valid and refaults from the page
  // cache. Lets a reader copy tensors out without the mapping's pages
  // counting as its memory for the rest of the load.
  void drop_pages(std::size_t offset, std::size_t length) const;

 private:
  void release();
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace sparc
