// safetensors files: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the raw tensor bytes. The reader memory-maps the file and copies out
// only the bytes asked for, so a rank can load its slice of a tensor without
// reading the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/file.h"

namespace sparc {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

std::size_t dtype_size(DType dtype);
// The safetensors spelling: "F32", "BF16", ...
const char* dtype_name(DType dtype);
// Parses a safetensors dtype name; throws InputError(where, ...) if unknown.
DType parse_dtype(std::string_view name, const std::string& where);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  // byte offsets into the data section
  std::uint64_t end = 0;
  std::int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in file order (sorted by begin offset)
  std::map<std::string, std::string> metadata;
};

// Validates a header against the size of the data section that follows it:
// JSON syntax, dtypes, shapes (non-negative, no overflow), offsets inside the
// data section and consistent with dtype x shape, no overlaps.
// `where` names the file in errors. Throws InputError.
SafetensorsHeader parse_safetensors_header(std::string_view json, std::uint64_t data_size,
                                           const std::string& where);

// A whole safetensors file held in memory: the 8-byte length, then the header
// (checked as above against the bytes that follow it). Sets *data_offset, when
// given, to where the data section starts. The reader's own checks, callable
// without a file (fuzzing).
SafetensorsHeader parse_safetensors_file(const std::uint8_t* data, std::uint64_t size,
                                         const std::string& where,
                                         std::uint64_t* data_offset = nullptr);

// The JSON header of a safetensors file as stored, neither parsed nor
// checked: up to `max_bytes` of the bytes its 8-byte length announces, fewer
// when the file ends first; empty when the file cannot be read or holds fewer
// than 8 bytes. Never throws: for fingerprints of model files (model/fingerprint.h).
std::string read_safetensors_header_text(const std::string& path, std::uint64_t max_bytes);

class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  bool contains(const std::string& name) const;
  // Throws InputError naming the file and the tensor when absent.
  const TensorInfo& info(const std::string& name) const;

  // The tensor's bytes inside the mapping (zero copy; valid while the reader lives).
  const std::uint8_t* data(const std::string& name) const;
  // Copies elements [first, first + count) of the flattened tensor into `out`.
  void read_elements(const std::string& name, std::int64_t first, std::int64_t count,
                     void* out) const;
  // Copies rows [row_begin, row_end) along dimension 0 into `out`.
  void read_rows(const std::string& name, std::int64_t row_begin, std::int64_t row_end,
                 void* out) const;
  // Copies the whole tensor into `out`.
  void read(const std::string& name, void* out) const;

  // Tensor bytes copied out so far (header excluded): lets tests prove that a
  // slice read touches only the slice.
  std::uint64_t bytes_read() const { return bytes_read_; }

 private:
  MappedFile file_;
  SafetensorsHeader header_;
  std::map<std::string, std::size_t> index_;
  std::uint64_t data_offset_ = 0;
  mutable std::uint64_t bytes_read_ = 0;
};

class SafetensorsWriter {
 public:
  // Copies `bytes` (must equal numel x dtype size) into the file to be written.
  void add(const std::string& name, DType dtype, const std::vector<std::int64_t>& shape,
           const void* data, std::size_t bytes);
  void set_metadata(const std::string& key, const std::string& value);
  // Writes the file (header padded to 8 bytes, tensors in insertion order).
  void write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> bytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes a safetensors file tensor by tensor, holding none of them: the
// header is fixed up front from every tensor's name, dtype and shape, then
// each tensor's bytes follow in that order (a 13.5 GB model is written with
// the memory of its largest tensor). The file is byte-identical to what
// SafetensorsWriter writes for the same tensors and metadata.
class SafetensorsStreamWriter {
 public:
  struct Spec {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
  };
  // Opens `path` and writes the header. Throws InputError naming the path.
  SafetensorsStreamWriter(const std::string& path, std::vector<Spec> tensors,
                          const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsStreamWriter();
  SafetensorsStreamWriter(const SafetensorsStreamWriter&) = delete;
  SafetensorsStreamWriter& operator=(const SafetensorsStreamWriter&) = delete;
  // The next tensor's bytes (numel x dtype size), in the order given.
  void write_next(const void* data, std::size_t bytes);
  // Checks that every tensor was written and closes the file.
  void finish();

 private:
  std::string path_;
  std::vector<Spec> specs_;
  std::size_t next_ = 0;
  std::FILE* file_ = nullptr;
};

}  // namespace sparc
