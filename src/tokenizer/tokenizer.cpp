#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "core/file.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/byte_tokenizer.h"
#include "tokenizer/llama2c_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"

namespace sparc {

std::vector<std::int32_t> Tokenizer::encode_with_bos(std::string_view text) const {
  std::vector<std::int32_t> ids;
  if (auto bos = bos_id()) ids.push_back(*bos);
  auto body = encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

namespace {

constexpr const char* kLookedFor =
    "tokenizer.json, vocab.json + merges.txt, tokenizer.model or tokenizer.bin";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::unique_ptr<Tokenizer> gpt2_pair(const std::string& dir) {
  return std::make_unique<BpeTokenizer>(
      BpeTokenizer::from_vocab_merges(dir + "/vocab.json", dir + "/merges.txt"));
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (path == "bytes") return std::make_unique<ByteTokenizer>();
  if (!file_exists(path))
    throw InputError(path, std::string("tokenizer not found; expected a ") + kLookedFor +
                               ", a directory holding one, or 'bytes'");
  if (is_directory(path)) {
    auto has = [&](const char* name) { return file_exists(path + "/" + name); };
    if (has("tokenizer.json"))
      return std::make_unique<BpeTokenizer>(
          BpeTokenizer::from_tokenizer_json(path + "/tokenizer.json"));
    if (has("vocab.json") && has("merges.txt")) return gpt2_pair(path);
    if (has("tokenizer.model"))
      return std::make_unique<SentencePieceTokenizer>(path + "/tokenizer.model");
    if (has("tokenizer.bin")) return std::make_unique<Llama2cTokenizer>(path + "/tokenizer.bin");
    throw InputError(path, std::string("directory holds no tokenizer; looked for ") + kLookedFor);
  }
  const auto slash = path.find_last_of('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  if (name == "vocab.json" || name == "merges.txt") return gpt2_pair(dir);
  if (ends_with(name, ".json"))
    return std::make_unique<BpeTokenizer>(BpeTokenizer::from_tokenizer_json(path));
  if (ends_with(name, ".model")) return std::make_unique<SentencePieceTokenizer>(path);
  return std::make_unique<Llama2cTokenizer>(path);
}

}  // namespace sparc
