// model_fingerprint: checkpoints store it and ranks compare it, so its value
// for a given model must never change. Each expectation here is computed from
// the documented recipe with fnv1a over bytes the test wrote itself.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "core/hash.h"
#include "model/fingerprint.h"
#include "test_util.h"

namespace sparc {
namespace {

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string le64(std::uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out;
}

// A safetensors file laid out by hand: length, header, data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

// One file's part of a Hugging Face fingerprint: name, decimal size, header.
std::uint64_t hf_file(std::uint64_t h, const std::string& name, const std::string& bytes,
                      const std::string& hashed) {
  h = fnv1a(name, h);
  h = fnv1a(std::to_string(bytes.size()), h);
  return fnv1a(hashed, h);
}

TEST(ModelFingerprint, ShardedHuggingFaceDirectory) {
  const std::string dir = test::make_temp_dir();
  const std::string config = R"({"model_type": "llama", "hidden_size": 64})";
  const std::string h1 =
      R"({"model.embed_tokens.weight":{"dtype":"F32","shape":[4,16],"data_offsets":[0,256]},)"
      R"("__metadata__":{"format":"pt"}}      )";  // padded, as writers do
  const std::string h2 =
      R"({"lm_head.weight":{"dtype":"F32","shape":[4,16],"data_offsets":[0,256]}})";
  const std::string s1 = safetensors_bytes(h1, std::string(256, '\x11'));
  const std::string s2 = safetensors_bytes(h2, std::string(256, '\x22'));
  const std::string n1 = "model-00001-of-00002.safetensors";
  const std::string n2 = "model-00002-of-00002.safetensors";
  // Written out of order; the index, tokenizer and a non-matching name are not part of it.
  write_file(dir + "/" + n2, s2);
  write_file(dir + "/" + n1, s1);
  write_file(dir + "/config.json", config);
  write_file(dir + "/model.safetensors.index.json",
             R"({"weight_map": {"model.embed_tokens.weight": ")" + n1 +
                 R"(", "lm_head.weight": ")" + n2 + R"("}})");
  write_file(dir + "/tokenizer.json", "{}");
  write_file(dir + "/.safetensors", "x");  // 12 characters: not a shard name

  std::uint64_t expected = fnv1a(config, fnv1a("hf"));
  expected = hf_file(expected, n1, s1, h1);
  expected = hf_file(expected, n2, s2, h2);
  EXPECT_EQ(model_fingerprint(dir), expected);

  // The header is part of it, the tensor bytes are not.
  write_file(dir + "/" + n2, safetensors_bytes(h2, std::string(256, '\x33')));
  EXPECT_EQ(model_fingerprint(dir), expected);
  write_file(dir + "/config.json", config + " ");
  EXPECT_NE(model_fingerprint(dir), expected);
}

TEST(ModelFingerprint, HuggingFaceEdgeCases) {
  const std::string dir = test::make_temp_dir();
  // No config.json. A file under 256 bytes adds its name and size only; one
  // under 8 bytes adds its bytes; a header length past the end adds what is there.
  const std::string small = safetensors_bytes("{}", std::string(100, '\x01'));
  const std::string tiny("\x05\x00\x01", 3);
  const std::string cut_header = std::string(300, 'h');
  const std::string cut = le64(1000) + cut_header;
  write_file(dir + "/a.safetensors", small);
  write_file(dir + "/b.safetensors", tiny);
  write_file(dir + "/c.safetensors", cut);
  std::uint64_t expected = fnv1a("hf");
  expected = hf_file(expected, "a.safetensors", small, "");
  expected = hf_file(expected, "b.safetensors", tiny, tiny);
  expected = hf_file(expected, "c.safetensors", cut, cut_header);
  EXPECT_EQ(model_fingerprint(dir), expected);

  // The boundaries: 255 bytes hash no header, 256 bytes hash it (a 2-byte "{}").
  const std::string dir2 = test::make_temp_dir();
  const std::string s255 = safetensors_bytes("{}", std::string(245, '\0'));
  const std::string s256 = safetensors_bytes("{}", std::string(246, '\0'));
  const std::string s8 = le64(0);
  write_file(dir2 + "/x255.safetensors", s255);
  write_file(dir2 + "/x256.safetensors", s256);
  write_file(dir2 + "/x8.safetensors", s8);
  expected = fnv1a("hf");
  expected = hf_file(expected, "x255.safetensors", s255, "");
  expected = hf_file(expected, "x256.safetensors", s256, "{}");
  expected = hf_file(expected, "x8.safetensors", s8, "");
  EXPECT_EQ(model_fingerprint(dir2), expected);
}

TEST(ModelFingerprint, HeaderCappedAt100MiB) {
  const std::string dir = test::make_temp_dir();
  const std::string name = "big.safetensors";
  const std::string path = dir + "/" + name;
  const std::uint64_t cap = 100u << 20;
  write_file(path, le64(std::uint64_t(1) << 40) + "{\"");
  ASSERT_EQ(::truncate(path.c_str(), off_t(8 + cap + 64)), 0);  // sparse: zeros after "{\""
  std::string header = "{\"" + std::string(cap - 2, '\0');
  std::uint64_t expected = fnv1a(name, fnv1a("hf"));
  expected = fnv1a(std::to_string(8 + cap + 64), expected);
  expected = fnv1a(header, expected);
  EXPECT_EQ(model_fingerprint(dir), expected);
}

TEST(ModelFingerprint, Llama2cFile) {
  const std::string dir = test::make_temp_dir();
  std::string bytes;
  for (int i = 0; i < 1000; ++i) bytes += char(i * 7);
  write_file(dir + "/model.bin", bytes);
  std::uint64_t expected = fnv1a(bytes.substr(0, 256), fnv1a("1000", fnv1a("llama2c")));
  EXPECT_EQ(model_fingerprint(dir + "/model.bin"), expected);
  // Only the size and the first 256 bytes count.
  bytes[500] ^= 1;
  write_file(dir + "/model.bin", bytes);
  EXPECT_EQ(model_fingerprint(dir + "/model.bin"), expected);

  write_file(dir + "/short.bin", bytes.substr(0, 100));
  EXPECT_EQ(model_fingerprint(dir + "/short.bin"),
            fnv1a(bytes.substr(0, 100), fnv1a("100", fnv1a("llama2c"))));
  // A path that does not exist: the tag alone (start-up reports the missing model).
  EXPECT_EQ(model_fingerprint(dir + "/absent.bin"), fnv1a("llama2c"));
}

// The value for the shared stories260K model as computed before the
// fingerprint moved out of comm/: a checkpoint of it must still resume.
TEST(ModelFingerprint, SharedModelUnchanged) {
  SPARC_REQUIRE_SHARED("models/stories260K/model.bin");
  EXPECT_EQ(model_fingerprint(test::shared_dir() + "/models/stories260K/model.bin"),
            0xc803479d2b101856ULL);
}

}  // namespace
}  // namespace sparc
