#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace sparc {
namespace {

// ---- Helpers that build and inspect files without the code under test -----

std::string le64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

std::string le32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

std::string f32_bytes(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return le32(bits);
}

// A safetensors file: 8-byte little-endian header length, header, data.
std::string st_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs `f`, expecting an InputError whose message names `path` and contains `phrase`.
template <typename F>
void expect_input_error(F&& f, const std::string& path, const std::string& phrase) {
  try {
    f();
    ADD_FAILURE() << "expected InputError containing '" << phrase << "'";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message lacks the path: " << msg;
    EXPECT_NE(msg.find(phrase), std::string::npos) << "message lacks '" << phrase << "': " << msg;
  }
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::make_temp_dir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

constexpr DType kAll[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                          DType::I32, DType::I16, DType::I8,  DType::U8,   DType::BOOL};

// ---- dtype table ---------------------------------------------------------------

TEST(DTypeTest, SizesAndNamesMatchTheSpec) {
  const std::pair<const char*, std::size_t> expected[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
      {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};
  for (std::size_t i = 0; i < std::size(kAll); ++i) {
    EXPECT_STREQ(dtype_name(kAll[i]), expected[i].first);
    EXPECT_EQ(dtype_size(kAll[i]), expected[i].second) << expected[i].first;
    EXPECT_EQ(parse_dtype(expected[i].first, "x"), kAll[i]);
  }
  expect_input_error([] { parse_dtype("F8_E4M3", "where.st"); }, "where.st",
                     "unknown dtype 'F8_E4M3'");
  expect_input_error([] { parse_dtype("f32", "where.st"); }, "where.st", "unknown dtype");
}

// ---- Round trips and layout -------------------------------------------------

TEST_F(SafetensorsTest, WriteThenReadIsBitExactForEveryDType) {
  const std::vector<std::int64_t> shape = {3, 5};
  std::vector<std::vector<std::uint8_t>> payloads;
  SafetensorsWriter w;
  for (std::size_t k = 0; k < std::size(kAll); ++k) {
    const std::size_t bytes = 15 * dtype_size(kAll[k]);
    std::vector<std::uint8_t> p(bytes);
    for (std::size_t i = 0; i < bytes; ++i) {
      // Every byte value appears across the tensors (NaN and denormal bit
      // patterns included); BOOL keeps to 0/1.
      p[i] = kAll[k] == DType::BOOL ? (i * 7 + k) % 3 == 0
                                    : static_cast<std::uint8_t>(i * 151 + k * 29 + (i >> 2));
    }
    w.add(std::string("t_") + dtype_name(kAll[k]), kAll[k], shape, p.data(), p.size());
    payloads.push_back(std::move(p));
  }
  w.write(path("all.safetensors"));

  SafetensorsReader r(path("all.safetensors"));
  ASSERT_EQ(r.tensors().size(), std::size(kAll));
  for (std::size_t k = 0; k < std::size(kAll); ++k) {
    const std::string name = std::string("t_") + dtype_name(kAll[k]);
    SCOPED_TRACE(name);
    const TensorInfo& t = r.info(name);
    EXPECT_EQ(t.dtype, kAll[k]);
    EXPECT_EQ(t.shape, shape);
    EXPECT_EQ(t.numel(), 15);
    std::vector<std::uint8_t> out(payloads[k].size(), 0xAA);
    r.read(name, out.data());
    EXPECT_EQ(std::memcmp(out.data(), payloads[k].data(), out.size()), 0);
    EXPECT_EQ(std::memcmp(r.data(name), payloads[k].data(), out.size()), 0);
  }
}

TEST_F(SafetensorsTest, ScalarsAndEmptyTensorsRoundTrip) {
  const double pi = 3.141592653589793;
  SafetensorsWriter w;
  w.add("scalar", DType::F64, {}, &pi, 8);
  w.add("empty", DType::F32, {0, 4}, nullptr, 0);
  w.write(path("s.safetensors"));

  SafetensorsReader r(path("s.safetensors"));
  double got = 0;
  r.read("scalar", &got);
  EXPECT_EQ(got, pi);
  EXPECT_EQ(r.info("scalar").numel(), 1);
  EXPECT_EQ(r.info("empty").numel(), 0);
  EXPECT_EQ(r.info("empty").shape, (std::vector<std::int64_t>{0, 4}));
  r.read_rows("empty", 0, 0, nullptr);
  EXPECT_EQ(r.bytes_read(), 8u);
}

TEST_F(SafetensorsTest, ReadsAHandBuiltFile) {
  // Tensors listed out of data order, metadata present, header padded with
  // spaces (allowed by the format).
  const std::string header = R"({"b":{"dtype":"I32","shape":[2],"data_offsets":[8,16]},)"
                             R"("__metadata__":{"format":"pt","note":"hand built"},)"
                             R"("a":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}}      )";
  const std::string data =
      f32_bytes(1.5f) + f32_bytes(-2.25f) + le32(7) + le32(static_cast<std::uint32_t>(-9));
  write_file(path("hand.safetensors"), st_file(header, data));

  SafetensorsReader r(path("hand.safetensors"));
  ASSERT_EQ(r.tensors().size(), 2u);
  EXPECT_EQ(r.tensors()[0].name, "a");  // file order: sorted by offset
  EXPECT_EQ(r.tensors()[1].name, "b");
  EXPECT_TRUE(r.contains("a"));
  EXPECT_FALSE(r.contains("__metadata__"));
  EXPECT_EQ(r.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"note", "hand built"}}));

  const TensorInfo& a = r.info("a");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 1}));
  EXPECT_EQ(a.begin, 0u);
  EXPECT_EQ(a.end, 8u);
  float fa[2];
  r.read("a", fa);
  EXPECT_EQ(fa[0], 1.5f);
  EXPECT_EQ(fa[1], -2.25f);

  std::int32_t ib[2];
  r.read("b", ib);
  EXPECT_EQ(ib[0], 7);
  EXPECT_EQ(ib[1], -9);
  EXPECT_EQ(r.bytes_read(), 16u);
}

TEST_F(SafetensorsTest, WrittenHeaderLayoutIsContiguousAndAligned) {
  const std::uint8_t u8[3] = {1, 2, 3};
  const double f64[2] = {0.5, -1.0};
  const std::uint16_t bf16[3] = {0x3f80, 0x4000, 0xbf80};
  SafetensorsWriter w;
  w.add("z_u8", DType::U8, {3}, u8, sizeof u8);  // odd sizes: offsets are not aligned
  w.add("a_f64", DType::F64, {2}, f64, sizeof f64);
  w.add("m_bf16", DType::BF16, {1, 3}, bf16, sizeof bf16);
  w.set_metadata("format", "pt");
  w.write(path("w.safetensors"));

  const std::string file = read_file(path("w.safetensors"));
  ASSERT_GE(file.size(), 8u);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<std::uint8_t>(file[i]);
  ASSERT_LE(8 + n, file.size());
  EXPECT_EQ((8 + n) % 8, 0u) << "data section must start 8-aligned";
  EXPECT_EQ(file.size(), 8 + n + 3 + 16 + 6);

  const std::string text = file.substr(8, n);
  const std::size_t last = text.find_last_not_of(' ');
  ASSERT_NE(last, std::string::npos);
  EXPECT_EQ(text[last], '}');
  EXPECT_LT(text.size() - last - 1, 8u) << "padding longer than needed";

  const auto j = nlohmann::ordered_json::parse(text);
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"__metadata__", "z_u8", "a_f64", "m_bf16"}));
  EXPECT_EQ(j["__metadata__"], (nlohmann::ordered_json{{"format", "pt"}}));
  EXPECT_EQ(j["z_u8"]["dtype"], "U8");
  EXPECT_EQ(j["z_u8"]["shape"], nlohmann::ordered_json::array({3}));
  EXPECT_EQ(j["z_u8"]["data_offsets"], nlohmann::ordered_json::array({0, 3}));
  EXPECT_EQ(j["a_f64"]["dtype"], "F64");
  EXPECT_EQ(j["a_f64"]["data_offsets"], nlohmann::ordered_json::array({3, 19}));
  EXPECT_EQ(j["m_bf16"]["dtype"], "BF16");
  EXPECT_EQ(j["m_bf16"]["shape"], nlohmann::ordered_json::array({1, 3}));
  EXPECT_EQ(j["m_bf16"]["data_offsets"], nlohmann::ordered_json::array({19, 25}));

  const std::string data = file.substr(8 + n);
  EXPECT_EQ(std::memcmp(data.data(), u8, 3), 0);
  EXPECT_EQ(std::memcmp(data.data() + 3, f64, 16), 0);
  EXPECT_EQ(std::memcmp(data.data() + 19, bf16, 6), 0);
}

TEST_F(SafetensorsTest, DataSectionIsAlignedForEveryHeaderLength) {
  // Names of 1..8 characters give unpadded headers of every length mod 8.
  for (int len = 1; len <= 8; ++len) {
    SCOPED_TRACE(len);
    const std::uint8_t b = 9;
    SafetensorsWriter w;
    w.add(std::string(len, 'n'), DType::U8, {1}, &b, 1);
    w.write(path("a.safetensors"));
    const std::string file = read_file(path("a.safetensors"));
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<std::uint8_t>(file[i]);
    EXPECT_EQ(n % 8, 0u);
    ASSERT_EQ(file.size(), 8 + n + 1);
    EXPECT_EQ(file.back(), '\x09');
  }
}

TEST_F(SafetensorsTest, StreamWriterWritesTheSameBytesAndChecksCounts) {
  const std::uint8_t u8[3] = {1, 2, 3};
  const double f64[2] = {1.5, -2.0};
  const std::uint16_t bf16[3] = {0x3f80, 0x4000, 0xbf80};
  SafetensorsWriter w;  // the holding writer, checked field by field above
  w.add("z_u8", DType::U8, {3}, u8, sizeof u8);
  w.add("a_f64", DType::F64, {2}, f64, sizeof f64);
  w.add("m_bf16", DType::BF16, {1, 3}, bf16, sizeof bf16);
  w.set_metadata("format", "pt");
  w.write(path("held.safetensors"));
  {
    SafetensorsStreamWriter s(path("streamed.safetensors"),
                              {{"z_u8", DType::U8, {3}},
                               {"a_f64", DType::F64, {2}},
                               {"m_bf16", DType::BF16, {1, 3}}},
                              {{"format", "pt"}});
    s.write_next(u8, sizeof u8);
    EXPECT_THROW(s.write_next(f64, 8), std::invalid_argument);  // F64 [2] needs 16 bytes
    s.write_next(f64, sizeof f64);
    EXPECT_THROW(s.finish(), std::logic_error);  // one tensor still missing
    s.write_next(bf16, sizeof bf16);
    EXPECT_THROW(s.write_next(bf16, sizeof bf16), std::logic_error);  // one too many
    s.finish();
  }
  EXPECT_EQ(read_file(path("streamed.safetensors")), read_file(path("held.safetensors")));
  SafetensorsReader r(path("streamed.safetensors"));
  double back[2] = {0, 0};
  r.read("a_f64", back);
  EXPECT_EQ(back[0], 1.5);
  EXPECT_EQ(back[1], -2.0);
  EXPECT_THROW(SafetensorsStreamWriter(path("d.safetensors"),
                                       {{"x", DType::U8, {1}}, {"x", DType::U8, {1}}}),
               std::invalid_argument);
  expect_input_error([&] { SafetensorsStreamWriter(path("no/such/dir/x.safetensors"), {}); },
                     "no/such/dir", "cannot open");
}

TEST_F(SafetensorsTest, NoMetadataKeyWhenMetadataIsEmpty) {
  const std::int8_t v = -1;
  SafetensorsWriter w;
  w.add("v", DType::I8, {1}, &v, 1);
  w.write(path("m.safetensors"));
  const std::string file = read_file(path("m.safetensors"));
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<std::uint8_t>(file[i]);
  const auto j = nlohmann::json::parse(file.substr(8, n));
  EXPECT_FALSE(j.contains("__metadata__"));
  EXPECT_EQ(j.size(), 1u);
}

// ---- Slice reads --------------------------------------------------------------

TEST_F(SafetensorsTest, ReadRowsCopiesOnlyTheRequestedRows) {
  constexpr int kRows = 100, kCols = 64;
  std::vector<float> m(kRows * kCols);
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < kCols; ++c) m[r * kCols + c] = static_cast<float>(r * 1000 + c);
  SafetensorsWriter w;
  w.add("before", DType::I16, {3}, std::vector<std::int16_t>{1, 2, 3}.data(), 6);
  w.add("m", DType::F32, {kRows, kCols}, m.data(), m.size() * 4);
  w.write(path("rows.safetensors"));

  SafetensorsReader r(path("rows.safetensors"));
  EXPECT_EQ(r.bytes_read(), 0u);
  std::vector<float> out((45 - 37) * kCols, -1.f);
  r.read_rows("m", 37, 45, out.data());
  EXPECT_EQ(r.bytes_read(), 8u * kCols * 4);
  for (int i = 0; i < 45 - 37; ++i)
    for (int c = 0; c < kCols; ++c)
      ASSERT_EQ(out[i * kCols + c], static_cast<float>((37 + i) * 1000 + c)) << i << "," << c;

  float last[kCols];
  r.read_rows("m", kRows - 1, kRows, last);
  EXPECT_EQ(last[kCols - 1], static_cast<float>((kRows - 1) * 1000 + kCols - 1));
  EXPECT_EQ(r.bytes_read(), 9u * kCols * 4);
  r.read_rows("m", 10, 10, nullptr);  // empty range: copies nothing
  EXPECT_EQ(r.bytes_read(), 9u * kCols * 4);
}

TEST_F(SafetensorsTest, ReadElementsCopiesOnlyTheRequestedElements) {
  std::vector<std::int64_t> v(1000);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::int64_t>(i * i) - 5000;
  SafetensorsWriter w;
  w.add("v", DType::I64, {10, 10, 10}, v.data(), v.size() * 8);
  w.write(path("el.safetensors"));

  SafetensorsReader r(path("el.safetensors"));
  std::vector<std::int64_t> out(456);
  r.read_elements("v", 123, 456, out.data());
  EXPECT_EQ(r.bytes_read(), 456u * 8);
  for (int i = 0; i < 456; ++i) ASSERT_EQ(out[i], v[123 + i]) << i;

  std::vector<std::int64_t> all(1000);
  r.read("v", all.data());
  EXPECT_EQ(all, v);
  EXPECT_EQ(r.bytes_read(), 456u * 8 + 1000u * 8);
}

// ---- The header as stored (for fingerprints) -------------------------------------

TEST_F(SafetensorsTest, HeaderTextIsTheStoredBytesUnchecked) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}   )";
  write_file(path("ok"), st_file(header, "xy"));
  EXPECT_EQ(read_safetensors_header_text(path("ok"), 1000), header);
  EXPECT_EQ(read_safetensors_header_text(path("ok"), 5), header.substr(0, 5));
  // Not JSON, and a length past the end of the file: what is there, no error.
  write_file(path("bad"), le64(1000) + "not json");
  EXPECT_EQ(read_safetensors_header_text(path("bad"), 1u << 20), "not json");
  write_file(path("short"), "1234567");
  EXPECT_EQ(read_safetensors_header_text(path("short"), 100), "");
  EXPECT_EQ(read_safetensors_header_text(path("absent"), 100), "");
  EXPECT_EQ(read_safetensors_header_text(dir_, 100), "");  // a directory
}

// ---- Bad files ------------------------------------------------------------------

TEST_F(SafetensorsTest, MissingFile) {
  const std::string p = path("absent.safetensors");
  expect_input_error([&] { SafetensorsReader r(p); }, p, "cannot open");
}

TEST_F(SafetensorsTest, FileShorterThanTheLengthField) {
  for (std::size_t size : {0, 1, 7}) {
    const std::string p = path("short" + std::to_string(size));
    write_file(p, std::string(size, '\x01'));
    expect_input_error([&] { SafetensorsReader r(p); }, p, "too short");
  }
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFile) {
  const std::string p = path("len.safetensors");
  const std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  write_file(p, le64(header.size() + 2) + header + "x");  // one byte short
  expect_input_error([&] { SafetensorsReader r(p); }, p, "exceeds");
  // A length near 2^64 must not wrap around when added to 8.
  write_file(p, le64(~std::uint64_t{0} - 3) + header);
  expect_input_error([&] { SafetensorsReader r(p); }, p, "exceeds");
}

TEST_F(SafetensorsTest, HeaderLengthOverTheCap) {
  // A sparse file, so the 100 MB costs no disk: the length fits in the file
  // but exceeds the header cap, and must be refused before parsing.
  const std::string p = path("huge.safetensors");
  const std::uint64_t n = 100'000'001;
  write_file(p, le64(n) + "{");
  std::filesystem::resize_file(p, 8 + n);
  expect_input_error([&] { SafetensorsReader r(p); }, p, "exceeds the limit");
}

// A header (with `data` after it) that the reader must reject, and a phrase
// the error must contain.
struct BadHeader {
  const char* label;
  std::string header;
  std::string data;
  std::string phrase;
};

void PrintTo(const BadHeader& b, std::ostream* os) { *os << b.label; }

class BadHeaderTest : public SafetensorsTest, public ::testing::WithParamInterface<BadHeader> {};

TEST_P(BadHeaderTest, ThrowsInputErrorNamingTheFile) {
  const std::string p = path("bad.safetensors");
  write_file(p, st_file(GetParam().header, GetParam().data));
  expect_input_error([&] { SafetensorsReader r(p); }, p, GetParam().phrase);
}

const std::string k8(8, '\0');

INSTANTIATE_TEST_SUITE_P(
    Safetensors, BadHeaderTest,
    ::testing::Values(
        BadHeader{"EmptyHeader", "", "", "not valid JSON"},
        BadHeader{"InvalidJson", R"({"a":{"dtype":"F32",)", k8, "not valid JSON"},
        BadHeader{"TrailingGarbage", R"({} x)", "", "not valid JSON"},
        BadHeader{"NotAnObject", R"([1,2])", "", "expected an object"},
        BadHeader{"EntryNotObject", R"({"a":3})", "", "tensor 'a'"},
        BadHeader{"MissingDtype", R"({"a":{"shape":[2],"data_offsets":[0,8]}})", k8,
                  "missing field 'dtype'"},
        BadHeader{"MissingOffsets", R"({"a":{"dtype":"F32","shape":[2]}})", k8,
                  "missing field 'data_offsets'"},
        BadHeader{"DtypeNotString", R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", k8,
                  "'dtype' is not a string"},
        BadHeader{"UnknownDtype", R"({"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}})", k8,
                  "unknown dtype 'F128'"},
        BadHeader{"ShapeNotArray", R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", k8,
                  "'shape' is not an array"},
        BadHeader{"NegativeDim", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", k8,
                  "negative"},
        BadHeader{"FractionalDim", R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})",
                  k8, "not an integer"},
        BadHeader{"ShapeOverflow",
                  R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                  k8, "overflows"},
        BadHeader{"BytesOverflow",
                  R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", k8,
                  "overflows"},
        BadHeader{"OffsetsNotPair", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", k8,
                  "expected [begin, end]"},
        BadHeader{"NegativeOffset", R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", k8,
                  "expected [begin, end]"},
        BadHeader{"OffsetsOutsideData",
                  R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", k8,
                  "end past the data section"},
        BadHeader{"OffsetsReversed", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})",
                  k8, "begin after they end"},
        BadHeader{"SizeMismatch", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", k8,
                  "needs 12"},
        BadHeader{
            "Overlap",
            R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
            k8, "overlap"},
        BadHeader{
            "Contained",
            R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"I16","shape":[1],"data_offsets":[4,6]}})",
            k8, "overlap"},
        BadHeader{
            "DuplicateName",
            R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
            k8, "appears twice"},
        BadHeader{"MetadataNotObject", R"({"__metadata__":"x"})", "", "__metadata__"},
        BadHeader{"MetadataValueNotString", R"({"__metadata__":{"epoch":3}})", "",
                  "expected a string"}),
    [](const ::testing::TestParamInfo<BadHeader>& info) { return std::string(info.param.label); });

TEST_F(SafetensorsTest, ParseHeaderAcceptsPaddingAndEmptyTensors) {
  const SafetensorsHeader h = parse_safetensors_header(
      R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}   )",
      2, "mem");
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "e");
  EXPECT_EQ(h.tensors[1].name, "x");
  EXPECT_TRUE(parse_safetensors_header("{}", 0, "mem").tensors.empty());
}

// ---- Bad lookups and ranges ---------------------------------------------------

TEST_F(SafetensorsTest, MissingTensorNamesFileAndTensor) {
  const std::uint8_t b = 1;
  SafetensorsWriter w;
  w.add("present", DType::U8, {1}, &b, 1);
  const std::string p = path("t.safetensors");
  w.write(p);
  SafetensorsReader r(p);
  EXPECT_FALSE(r.contains("absent"));
  std::uint8_t out;
  expect_input_error([&] { r.info("absent"); }, p, "tensor 'absent'");
  expect_input_error([&] { r.data("absent"); }, p, "tensor 'absent'");
  expect_input_error([&] { r.read("absent", &out); }, p, "tensor 'absent'");
  expect_input_error([&] { r.read_rows("absent", 0, 1, &out); }, p, "tensor 'absent'");
  EXPECT_EQ(r.bytes_read(), 0u);
}

TEST_F(SafetensorsTest, OutOfRangeSlicesThrowAndCopyNothing) {
  std::vector<std::int32_t> v(4 * 3, 0);
  const std::int32_t s = 5;
  SafetensorsWriter w;
  w.add("m", DType::I32, {4, 3}, v.data(), v.size() * 4);
  w.add("s", DType::I32, {}, &s, 4);
  const std::string p = path("r.safetensors");
  w.write(p);
  SafetensorsReader r(p);

  std::vector<std::int32_t> out(64, 42);
  const std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  expect_input_error([&] { r.read_rows("m", 2, 5, out.data()); }, p, "tensor 'm'");
  expect_input_error([&] { r.read_rows("m", -1, 2, out.data()); }, p, "rows");
  expect_input_error([&] { r.read_rows("m", 3, 2, out.data()); }, p, "rows");
  expect_input_error([&] { r.read_rows("s", 0, 1, out.data()); }, p, "scalar");
  expect_input_error([&] { r.read_elements("m", 10, 3, out.data()); }, p, "tensor 'm'");
  expect_input_error([&] { r.read_elements("m", -1, 1, out.data()); }, p, "elements");
  expect_input_error([&] { r.read_elements("m", 0, -1, out.data()); }, p, "elements");
  expect_input_error([&] { r.read_elements("m", 1, kMax, out.data()); }, p,
                     "elements");  // first + count overflows
  expect_input_error([&] { r.read_elements("m", 13, 0, out.data()); }, p, "elements");
  EXPECT_EQ(r.bytes_read(), 0u);
  for (std::int32_t x : out) ASSERT_EQ(x, 42);
}

// ---- Writer errors ----------------------------------------------------------------

TEST_F(SafetensorsTest, WriterRejectsInconsistentTensors) {
  const float f[4] = {};
  SafetensorsWriter w;
  EXPECT_THROW(w.add("a", DType::F32, {2, 2}, f, 12), std::invalid_argument);
  EXPECT_THROW(w.add("a", DType::F32, {-1}, f, 4), std::invalid_argument);
  EXPECT_THROW(w.add("__metadata__", DType::F32, {1}, f, 4), std::invalid_argument);
  w.add("a", DType::F32, {2, 2}, f, 16);
  EXPECT_THROW(w.add("a", DType::F32, {1}, f, 4), std::invalid_argument);
}

TEST_F(SafetensorsTest, WriteFailureNamesThePath) {
  SafetensorsWriter w;
  const std::string p = path("no-such-dir/out.safetensors");
  expect_input_error([&] { w.write(p); }, p, "cannot open");
}

}  // namespace
}  // namespace sparc
