#include "formats/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "core/error.h"

namespace sparc {
namespace {

using json = nlohmann::json;

// Larger headers are refused before parsing, so a corrupt length field cannot
// make us parse (or allocate for) gigabytes of JSON. Real headers are far
// smaller: a few hundred bytes per tensor.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

constexpr DType kAllDTypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                                DType::I32, DType::I16, DType::I8,  DType::U8,   DType::BOOL};

std::string tensor_where(const std::string& where, const std::string& name) {
  return where + ": tensor '" + name + "'";
}

// Product of `shape`, or false if a dimension is negative or the product
// overflows int64.
bool checked_numel(const std::vector<std::int64_t>& shape, std::int64_t* out) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return false;
  }
  *out = n;
  return true;
}

std::string range_text(std::int64_t a, std::int64_t b) {
  return "[" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

TensorInfo parse_entry(const std::string& name, const json& entry, std::uint64_t data_size,
                       const std::string& where) {
  const std::string at = tensor_where(where, name);
  if (!entry.is_object())
    throw InputError(at, "entry is not a JSON object, expected {dtype, shape, data_offsets}");
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) throw InputError(at, std::string("missing field '") + key + "'");
  }

  TensorInfo t;
  t.name = name;
  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) throw InputError(at, "'dtype' is not a string");
  t.dtype = parse_dtype(dtype.get_ref<const std::string&>(), at);

  const json& shape = entry["shape"];
  if (!shape.is_array()) throw InputError(at, "'shape' is not an array of integers");
  for (const json& d : shape) {
    // nlohmann stores non-negative literals as unsigned, negative ones as
    // signed; floats and everything else are rejected.
    if (d.is_number_unsigned()) {
      if (d.get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        throw InputError(at, "shape dimension " + d.dump() + " is too large");
      t.shape.push_back(d.get<std::int64_t>());
    } else if (d.is_number_integer()) {
      throw InputError(at, "shape dimension " + d.dump() + " is negative, expected >= 0");
    } else {
      throw InputError(at, "shape dimension " + d.dump() + " is not an integer");
    }
  }
  std::int64_t numel = 0;
  if (!checked_numel(t.shape, &numel)) throw InputError(at, "shape " + shape.dump() + " overflows");
  std::uint64_t nbytes = 0;
  if (__builtin_mul_overflow(static_cast<std::uint64_t>(numel), dtype_size(t.dtype), &nbytes))
    throw InputError(at, "shape " + shape.dump() + " overflows");

  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    throw InputError(at, "'data_offsets' is " + offsets.dump() +
                             ", expected [begin, end] with non-negative integers");
  t.begin = offsets[0].get<std::uint64_t>();
  t.end = offsets[1].get<std::uint64_t>();
  if (t.begin > t.end)
    throw InputError(at, "data_offsets " + offsets.dump() + " begin after they end");
  if (t.end > data_size)
    throw InputError(at, "data_offsets " + offsets.dump() +
                             " end past the data section, which is " + std::to_string(data_size) +
                             " bytes");
  if (t.end - t.begin != nbytes)
    throw InputError(at, "data_offsets " + offsets.dump() + " span " +
                             std::to_string(t.end - t.begin) + " bytes, but " +
                             dtype.get<std::string>() + " shape " + shape.dump() + " needs " +
                             std::to_string(nbytes));
  return t;
}

// The header length: the first 8 bytes, little-endian.
std::uint64_t header_length(const std::uint8_t* first8) {
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | first8[i];
  return n;
}

}  // namespace

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL:
      return 1;
  }
  throw std::logic_error("dtype_size: invalid DType");
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F64:
      return "F64";
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
    case DType::I16:
      return "I16";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::BOOL:
      return "BOOL";
  }
  throw std::logic_error("dtype_name: invalid DType");
}

DType parse_dtype(std::string_view name, const std::string& where) {
  std::string known;
  for (DType d : kAllDTypes) {
    if (name == dtype_name(d)) return d;
    known += known.empty() ? "" : ", ";
    known += dtype_name(d);
  }
  throw InputError(where, "unknown dtype '" + std::string(name) + "', expected one of " + known);
}

std::int64_t TensorInfo::numel() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;  // validated against overflow when parsed
  return n;
}

SafetensorsHeader parse_safetensors_header(std::string_view text, std::uint64_t data_size,
                                           const std::string& where) {
  // nlohmann keeps the last of duplicate keys silently; a duplicated tensor
  // name is a corrupt file, so spot top-level keys as they are parsed.
  std::set<std::string> seen;
  std::string duplicate;
  auto spot_duplicates = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && duplicate.empty() &&
        !seen.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };

  json root;
  try {
    root = json::parse(text.data(), text.data() + text.size(), spot_duplicates);
  } catch (const json::exception& e) {
    std::string msg = e.what();  // "[json.exception.parse_error.101] parse error at ..."
    if (msg.rfind("[json.exception", 0) == 0) msg.erase(0, msg.find("] ") + 2);
    throw InputError(where, "header is not valid JSON: " + msg);
  }
  if (!root.is_object())
    throw InputError(where, "header is a JSON " + std::string(root.type_name()) +
                                ", expected an object of tensors");
  if (!duplicate.empty())
    throw InputError(where, "tensor '" + duplicate + "' appears twice in the header");

  SafetensorsHeader header;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        throw InputError(where, "__metadata__ is not a JSON object, expected {string: string}");
      for (const auto& [mkey, mvalue] : value.items()) {
        if (!mvalue.is_string())
          throw InputError(where, "__metadata__ value of '" + mkey + "' is " + mvalue.dump() +
                                      ", expected a string");
        header.metadata[mkey] = mvalue.get<std::string>();
      }
      continue;
    }
    header.tensors.push_back(parse_entry(key, value, data_size, where));
  }

  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  // Sorted by begin, a tensor overlaps an earlier one iff it starts before the
  // furthest end seen so far. Empty tensors occupy no bytes and overlap nothing.
  const TensorInfo* furthest = nullptr;
  for (const TensorInfo& t : header.tensors) {
    if (t.begin == t.end) continue;
    if (furthest != nullptr && t.begin < furthest->end)
      throw InputError(where, "tensors '" + furthest->name + "' " +
                                  range_text(furthest->begin, furthest->end) + " and '" + t.name +
                                  "' " + range_text(t.begin, t.end) +
                                  " overlap in the data section");
    if (furthest == nullptr || t.end > furthest->end) furthest = &t;
  }
  return header;
}

std::string read_safetensors_header_text(const std::string& path, std::uint64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::uint8_t length[8];
  in.read(reinterpret_cast<char*>(length), 8);
  if (in.gcount() != 8) return "";
  std::string text(std::min(header_length(length), max_bytes), '\0');
  in.read(text.data(), std::streamsize(text.size()));
  text.resize(std::size_t(in.gcount()));
  return text;
}

// ---- SafetensorsReader -----------------------------------------------------

SafetensorsHeader parse_safetensors_file(const std::uint8_t* data, std::uint64_t size,
                                         const std::string& where, std::uint64_t* data_offset) {
  if (size < 8)
    throw InputError(where,
                     "file is " + std::to_string(size) +
                         " bytes, too short for a safetensors file (expected an 8-byte header "
                         "length, then the header)");
  const std::uint64_t header_len = header_length(data);
  if (header_len > size - 8)
    throw InputError(where, "header length " + std::to_string(header_len) + " exceeds the " +
                                std::to_string(size - 8) +
                                " bytes after the length field "
                                "(truncated or not a safetensors file)");
  if (header_len > kMaxHeaderBytes)
    throw InputError(where, "header length " + std::to_string(header_len) +
                                " exceeds the limit of " + std::to_string(kMaxHeaderBytes) +
                                " bytes");
  if (data_offset) *data_offset = 8 + header_len;
  std::string_view text(reinterpret_cast<const char*>(data) + 8, header_len);
  return parse_safetensors_header(text, size - 8 - header_len, where);
}

SafetensorsReader::SafetensorsReader(const std::string& path) : file_(path) {
  header_ = parse_safetensors_file(file_.data(), file_.size(), path, &data_offset_);
  for (std::size_t i = 0; i < header_.tensors.size(); ++i) index_[header_.tensors[i].name] = i;
}

bool SafetensorsReader::contains(const std::string& name) const { return index_.count(name) != 0; }

const TensorInfo& SafetensorsReader::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    throw InputError(tensor_where(path(), name),
                     "no such tensor in the file (it has " + std::to_string(index_.size()) + ")");
  return header_.tensors[it->second];
}

const std::uint8_t* SafetensorsReader::data(const std::string& name) const {
  return file_.data() + data_offset_ + info(name).begin;
}

void SafetensorsReader::read_elements(const std::string& name, std::int64_t first,
                                      std::int64_t count, void* out) const {
  const TensorInfo& t = info(name);
  const std::int64_t numel = t.numel();
  // Written so that no sum can overflow: first <= numel, then count <= numel - first.
  if (first < 0 || count < 0 || first > numel || count > numel - first)
    throw InputError(tensor_where(path(), name),
                     std::to_string(count) + " elements from index " + std::to_string(first) +
                         " requested, expected a range within the " + std::to_string(numel) +
                         " elements of the tensor");
  const std::size_t esize = dtype_size(t.dtype);
  const std::size_t bytes = static_cast<std::size_t>(count) * esize;
  if (bytes == 0) return;
  const std::uint64_t at = data_offset_ + t.begin + static_cast<std::uint64_t>(first) * esize;
  std::memcpy(out, file_.data() + at, bytes);
  file_.drop_pages(at, bytes);  // the copy is what the caller keeps
  bytes_read_ += bytes;
}

void SafetensorsReader::read_rows(const std::string& name, std::int64_t row_begin,
                                  std::int64_t row_end, void* out) const {
  const TensorInfo& t = info(name);
  if (t.shape.empty())
    throw InputError(tensor_where(path(), name), "is a scalar, it has no rows to read");
  const std::int64_t rows = t.shape[0];
  if (row_begin < 0 || row_end < row_begin || row_end > rows)
    throw InputError(tensor_where(path(), name), "rows " + range_text(row_begin, row_end) +
                                                     " requested, expected a range within [0, " +
                                                     std::to_string(rows) + ")");
  const std::vector<std::int64_t> row_shape(t.shape.begin() + 1, t.shape.end());
  std::int64_t row_elems = 1;
  checked_numel(row_shape, &row_elems);  // cannot overflow: the full shape did not
  read_elements(name, row_begin * row_elems, (row_end - row_begin) * row_elems, out);
}

void SafetensorsReader::read(const std::string& name, void* out) const {
  read_elements(name, 0, info(name).numel(), out);
}

// ---- SafetensorsWriter -----------------------------------------------------

void SafetensorsWriter::add(const std::string& name, DType dtype,
                            const std::vector<std::int64_t>& shape, const void* data,
                            std::size_t bytes) {
  if (name == "__metadata__")
    throw std::invalid_argument(
        "SafetensorsWriter::add: '__metadata__' is reserved, not a tensor name");
  for (const Entry& e : entries_) {
    if (e.name == name)
      throw std::invalid_argument("SafetensorsWriter::add: tensor '" + name + "' added twice");
  }
  std::int64_t numel = 0;
  std::uint64_t expected = 0;
  if (!checked_numel(shape, &numel) ||
      __builtin_mul_overflow(static_cast<std::uint64_t>(numel), dtype_size(dtype), &expected))
    throw std::invalid_argument("SafetensorsWriter::add: tensor '" + name +
                                "' has a negative or overflowing shape");
  if (bytes != expected)
    throw std::invalid_argument("SafetensorsWriter::add: tensor '" + name + "' has " +
                                std::to_string(bytes) + " bytes, its " + dtype_name(dtype) +
                                " shape needs " + std::to_string(expected));
  if (bytes > 0 && data == nullptr)
    throw std::invalid_argument("SafetensorsWriter::add: tensor '" + name + "' has no data");
  const auto* p = static_cast<const std::uint8_t*>(data);
  entries_.push_back({name, dtype, shape, std::vector<std::uint8_t>(p, p + bytes)});
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

namespace {

struct HeaderEntry {
  const std::string& name;
  DType dtype;
  const std::vector<std::int64_t>& shape;
  std::uint64_t bytes;
};

// The 8-byte length and the JSON header of a file holding `entries` in order.
std::string header_bytes(const std::vector<HeaderEntry>& entries,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();  // keeps insertion order
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const HeaderEntry& e : entries) {
    header[e.name] = {{"dtype", dtype_name(e.dtype)},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes}}};
    offset += e.bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {  // names must be valid UTF-8
    throw std::invalid_argument(std::string("SafetensorsWriter::write: ") + e.what());
  }
  // Pad so that the data section (after the 8-byte length) starts 8-aligned,
  // letting a reader use mapped F64/I64 data in place.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[size_t(i)] = char(static_cast<std::uint64_t>(text.size()) >> (8 * i));
  return out + text;
}

std::uint64_t spec_bytes(const std::string& name, DType dtype,
                         const std::vector<std::int64_t>& shape) {
  std::int64_t numel = 0;
  std::uint64_t bytes = 0;
  if (!checked_numel(shape, &numel) ||
      __builtin_mul_overflow(static_cast<std::uint64_t>(numel), dtype_size(dtype), &bytes))
    throw std::invalid_argument("safetensors writer: tensor '" + name +
                                "' has a negative or overflowing shape");
  return bytes;
}

}  // namespace

void SafetensorsWriter::write(const std::string& path) const {
  std::vector<HeaderEntry> entries;
  for (const Entry& e : entries_) entries.push_back({e.name, e.dtype, e.shape, e.bytes.size()});
  const std::string head = header_bytes(entries, metadata_);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) throw InputError(path, errno_text("cannot open for writing"));
  bool ok = std::fwrite(head.data(), 1, head.size(), f) == head.size();
  for (const Entry& e : entries_) {
    if (!ok) break;
    ok = e.bytes.empty() || std::fwrite(e.bytes.data(), 1, e.bytes.size(), f) == e.bytes.size();
  }
  // fclose flushes the buffer, so it can fail too; report the first failure.
  std::string err = ok ? "" : errno_text("write failed");
  if (std::fclose(f) != 0 && ok) {
    err = errno_text("write failed");
    ok = false;
  }
  if (!ok) throw InputError(path, err);
}

SafetensorsStreamWriter::SafetensorsStreamWriter(const std::string& path, std::vector<Spec> tensors,
                                                 const std::map<std::string, std::string>& metadata)
    : path_(path), specs_(std::move(tensors)) {
  std::vector<HeaderEntry> entries;
  std::set<std::string> names;
  for (const Spec& s : specs_) {
    if (s.name == "__metadata__" || !names.insert(s.name).second)
      throw std::invalid_argument("SafetensorsStreamWriter: tensor name '" + s.name +
                                  "' reserved or repeated");
    entries.push_back({s.name, s.dtype, s.shape, spec_bytes(s.name, s.dtype, s.shape)});
  }
  const std::string head = header_bytes(entries, metadata);
  file_ = std::fopen(path.c_str(), "wb");
  if (file_ == nullptr) throw InputError(path, errno_text("cannot open for writing"));
  if (std::fwrite(head.data(), 1, head.size(), file_) != head.size())
    throw InputError(path, errno_text("write failed"));
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() {
  if (file_ != nullptr) std::fclose(file_);  // unfinished: an error is already on its way
}

void SafetensorsStreamWriter::write_next(const void* data, std::size_t bytes) {
  if (file_ == nullptr || next_ >= specs_.size())
    throw std::logic_error("SafetensorsStreamWriter: more tensors than declared");
  const Spec& s = specs_[next_];
  if (bytes != spec_bytes(s.name, s.dtype, s.shape))
    throw std::invalid_argument("SafetensorsStreamWriter: tensor '" + s.name + "' has " +
                                std::to_string(bytes) + " bytes, its shape needs " +
                                std::to_string(spec_bytes(s.name, s.dtype, s.shape)));
  if (bytes > 0 && std::fwrite(data, 1, bytes, file_) != bytes)
    throw InputError(path_, errno_text("write failed"));
  ++next_;
}

void SafetensorsStreamWriter::finish() {
  if (next_ != specs_.size())
    throw std::logic_error("SafetensorsStreamWriter: " + std::to_string(next_) + " of " +
                           std::to_string(specs_.size()) + " tensors written");
  std::FILE* f = file_;
  file_ = nullptr;
  if (std::fclose(f) != 0) throw InputError(path_, errno_text("write failed"));
}

}  // namespace sparc
