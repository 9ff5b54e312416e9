#include "tokenizer/sentencepiece_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "core/error.h"
#include "core/file.h"
#include "tokenizer/normalizer.h"

namespace sparc {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";    // '▁', SentencePiece's space
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";    // U+FFFD
constexpr std::string_view kUnknownText = " \xE2\x81\x87 ";  // " ⁇ ", as spm_decode writes <unk>

// ---- The protobuf wire format -------------------------------------------------

enum WireType : std::uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

// Reads the fields of one protobuf message in order. Every length is checked
// against the bytes left; errors name the file, the message and the byte
// offset of the field in the file.
class ProtoReader {
 public:
  ProtoReader(std::string_view bytes, std::size_t offset, const char* message,
              const std::string& file)
      : bytes_(bytes), offset_(offset), message_(message), file_(file) {}

  // Reads the next field's key; false at the end of the message.
  bool next() {
    if (pos_ == bytes_.size()) return false;
    key_pos_ = pos_;
    field_ = 0;
    const std::uint64_t key = read_varint();
    wire_ = static_cast<std::uint32_t>(key & 7);
    if (key >> 3 == 0 || key >> 3 > kMaxField)
      fail("invalid field number " + std::to_string(key >> 3));
    field_ = static_cast<std::uint32_t>(key >> 3);
    if (wire_ > kFixed32) fail("invalid wire type " + std::to_string(wire_));
    return true;
  }
  std::uint32_t field() const { return field_; }

  std::uint64_t varint() {
    expect(kVarint, "a varint");
    return read_varint();
  }
  bool boolean() { return varint() != 0; }
  // int32 and enum fields: negative values are sent sign-extended to 64 bits,
  // and protobuf keeps the low 32.
  std::int32_t int32() { return static_cast<std::int32_t>(static_cast<std::uint32_t>(varint())); }
  float fixed32_float() {
    expect(kFixed32, "a fixed32");
    std::string_view b = take(4);
    std::uint32_t bits = 0;
    for (int i = 3; i >= 0; --i) bits = bits << 8 | static_cast<unsigned char>(b[i]);
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  std::string_view bytes() {
    expect(kLengthDelimited, "length-delimited");
    return take(read_varint());
  }
  ProtoReader message(const char* name) {
    std::string_view b = bytes();
    return ProtoReader(b, offset_ + static_cast<std::size_t>(b.data() - bytes_.data()), name,
                       file_);
  }

  // Skips the current field, whatever its wire type (groups included).
  void skip() {
    std::size_t open_groups = 0;
    for (;;) {
      switch (wire_) {
        case kVarint: read_varint(); break;
        case kFixed64: take(8); break;
        case kLengthDelimited: take(read_varint()); break;
        case kFixed32: take(4); break;
        case kStartGroup: ++open_groups; break;
        case kEndGroup:
          if (open_groups == 0) fail("end-group marker without a start-group");
          --open_groups;
          break;
      }
      if (open_groups == 0) return;
      if (!next()) fail("the message ends inside a group");
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    std::string where = std::string(message_);
    if (field_ != 0) where += " field " + std::to_string(field_);
    throw InputError(file_, "not a valid SentencePiece model: " + where + " at byte " +
                                std::to_string(offset_ + key_pos_) + ": " + what);
  }

 private:
  static constexpr std::uint64_t kMaxField = (1u << 29) - 1;

  std::uint64_t read_varint() {
    std::uint64_t value = 0;
    for (int shift = 0;; shift += 7) {
      if (pos_ == bytes_.size()) fail("truncated varint");
      const auto b = static_cast<unsigned char>(bytes_[pos_++]);
      if (shift == 63 && b > 1) fail("varint longer than 64 bits");
      value |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return value;
    }
  }

  std::string_view take(std::uint64_t n) {
    const std::size_t left = bytes_.size() - pos_;
    if (n > left)
      fail("length " + std::to_string(n) + " runs past the end of the " + message_ + " (" +
           std::to_string(left) + " bytes left)");
    std::string_view b = bytes_.substr(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return b;
  }

  void expect(WireType wire, const char* what) const {
    if (wire_ != wire)
      fail("wire type " + std::to_string(wire_) + "; expected " + std::to_string(wire) + " (" +
           what + ")");
  }

  std::string_view bytes_;
  std::size_t offset_;  // of bytes_ in the file
  const char* message_;
  const std::string& file_;
  std::size_t pos_ = 0;
  std::size_t key_pos_ = 0;
  std::uint32_t field_ = 0;
  std::uint32_t wire_ = 0;
};

// ---- The fields of sentencepiece_model.proto that encoding needs ---------------

struct ModelProto {
  struct Piece {
    std::string text;
    float score = 0;
    std::uint64_t type = 1;  // NORMAL
  };
  std::vector<Piece> pieces;
  // TrainerSpec
  std::uint64_t model_type = 1;  // UNIGRAM
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  std::int32_t bos_id = 1;
  std::int32_t eos_id = 2;
  // NormalizerSpec
  std::string normalizer_name;
  std::string charsmap;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

ModelProto::Piece read_piece(ProtoReader r) {
  ModelProto::Piece p;
  while (r.next()) {
    switch (r.field()) {
      case 1: p.text = r.bytes(); break;
      case 2: p.score = r.fixed32_float(); break;
      case 3: p.type = r.varint(); break;
      default: r.skip();
    }
  }
  return p;
}

// Repeated occurrences of a message merge into one, as protobuf parsers do.
void read_trainer_spec(ProtoReader r, ModelProto& m) {
  while (r.next()) {
    switch (r.field()) {
      case 3: m.model_type = r.varint(); break;
      case 24: m.treat_whitespace_as_suffix = r.boolean(); break;
      case 35: m.byte_fallback = r.boolean(); break;
      case 41: m.bos_id = r.int32(); break;
      case 42: m.eos_id = r.int32(); break;
      default: r.skip();
    }
  }
}

void read_normalizer_spec(ProtoReader r, ModelProto& m) {
  while (r.next()) {
    switch (r.field()) {
      case 1: m.normalizer_name = r.bytes(); break;
      case 2: m.charsmap = r.bytes(); break;
      case 3: m.add_dummy_prefix = r.boolean(); break;
      case 4: m.remove_extra_whitespaces = r.boolean(); break;
      case 5: m.escape_whitespaces = r.boolean(); break;
      default: r.skip();
    }
  }
}

ModelProto read_model(std::string_view bytes, const std::string& file) {
  ModelProto m;
  ProtoReader r(bytes, 0, "ModelProto", file);
  while (r.next()) {
    switch (r.field()) {
      case 1: m.pieces.push_back(read_piece(r.message("SentencePiece"))); break;
      case 2: read_trainer_spec(r.message("TrainerSpec"), m); break;
      case 3: read_normalizer_spec(r.message("NormalizerSpec"), m); break;
      default: r.skip();
    }
  }
  return m;
}

// ---- Text -----------------------------------------------------------------------

// The length of the valid UTF-8 character `s` starts with, or 0. Valid as
// SentencePiece has it: no overlong forms, surrogates or code points past U+10FFFF.
std::size_t utf8_length(std::string_view s) {
  const auto c = static_cast<unsigned char>(s[0]);
  if (c < 0x80) return 1;
  const std::size_t n = c >= 0xF8 ? 0 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
  if (n == 0 || s.size() < n) return 0;
  std::uint32_t cp = c & (0x7F >> n);
  for (std::size_t i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (b & 0x3F);
  }
  constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || (cp >= 0xD800 && cp < 0xE000) || cp > 0x10FFFF) return 0;
  return n;
}

// The byte of a piece "<0xNN>", or -1.
int byte_of_piece(std::string_view p) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  const int hi = hex(p[3]), lo = hex(p[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

const char* model_type_name(std::uint64_t type) {
  switch (type) {
    case 1: return "unigram";
    case 2: return "BPE";
    case 3: return "word";
    case 4: return "char";
    default: return nullptr;
  }
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& path) {
  name_ = path;
  load(read_text_file(path));
}

SentencePieceTokenizer SentencePieceTokenizer::from_bytes(std::string_view bytes,
                                                          const std::string& name) {
  SentencePieceTokenizer t;
  t.name_ = name;
  t.load(bytes);
  return t;
}

void SentencePieceTokenizer::load(std::string_view bytes) {
  ModelProto m = read_model(bytes, name_);
  if (m.pieces.empty()) throw InputError(name_, "SentencePiece model has no pieces");
  const std::string supported = "only BPE and unigram models are supported";
  if (m.model_type != 1 && m.model_type != 2) {
    const char* type = model_type_name(m.model_type);
    throw InputError(name_, type
                                ? std::string("is a ") + type + " SentencePiece model; " + supported
                                : "has unknown SentencePiece model_type " +
                                      std::to_string(m.model_type) + "; " + supported);
  }
  if (!m.charsmap.empty()) charsmap_.emplace(m.charsmap, name_);
  if (m.treat_whitespace_as_suffix)
    throw InputError(name_, "sets treat_whitespace_as_suffix, which is not supported");
  if (m.pieces.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw InputError(name_, "more pieces than an int32 id can address");
  add_dummy_prefix_ = m.add_dummy_prefix;
  remove_extra_whitespaces_ = m.remove_extra_whitespaces;
  escape_whitespaces_ = m.escape_whitespaces;

  Llama2cTokenizer::Vocabulary vocab;
  vocab.byte_fallback = m.byte_fallback;
  vocab.dummy_prefix = add_dummy_prefix_;
  vocab.unk_id = -1;
  std::unordered_map<std::string_view, std::int32_t> seen;
  for (std::int32_t id = 0; id < static_cast<std::int32_t>(m.pieces.size()); ++id) {
    const ModelProto::Piece& p = m.pieces[id];
    auto what = [&] { return "piece " + std::to_string(id) + " '" + p.text + "'"; };
    if (p.type < 1 || p.type > 6)
      throw InputError(name_, what() + " has type " + std::to_string(p.type) + "; expected 1..6");
    if (p.text.empty()) throw InputError(name_, "piece " + std::to_string(id) + " is empty");
    if (auto [it, fresh] = seen.emplace(p.text, id); !fresh)
      throw InputError(name_, what() + " repeats piece " + std::to_string(it->second));
    const auto type = static_cast<PieceType>(p.type);
    if (type == PieceType::kByte && byte_of_piece(p.text) < 0)
      throw InputError(name_, what() + " has type BYTE; expected a piece <0x00>..<0xFF>");
    if (type == PieceType::kUserDefined)
      user_defined_[static_cast<unsigned char>(p.text[0])].push_back(p.text);
    if (type == PieceType::kUnknown) {
      if (vocab.unk_id >= 0)
        throw InputError(name_, what() + " is a second unknown piece after piece " +
                                    std::to_string(vocab.unk_id));
      vocab.unk_id = id;
    }

    // The encoder spells '▁' as ' ', so a piece with a real ' ', which
    // SentencePiece's escaped text never holds, must not be found.
    std::string text = escape_whitespaces_ ? replace_all(p.text, kSpaceSymbol, " ") : p.text;
    std::uint8_t use = 0;
    if (type == PieceType::kNormal || type == PieceType::kUserDefined) {
      if (!escape_whitespaces_ || p.text.find(' ') == std::string::npos)
        use = Llama2cTokenizer::kFromText;
      if (type == PieceType::kUserDefined) use |= Llama2cTokenizer::kUserDefined;
    } else if (type == PieceType::kByte) {
      use = Llama2cTokenizer::kByteFallback;
    }
    vocab.pieces.push_back(std::move(text));
    vocab.scores.push_back(p.score);
    vocab.uses.push_back(use);
    types_.push_back(type);
  }
  if (vocab.unk_id < 0) throw InputError(name_, "has no unknown piece (type UNKNOWN, <unk>)");
  for (auto& group : user_defined_)
    std::stable_sort(group.begin(), group.end(), [](const std::string& a, const std::string& b) {
      return a.size() > b.size();
    });

  const auto n = static_cast<std::int32_t>(m.pieces.size());
  auto special = [&](std::int32_t id, const char* field) -> std::optional<std::int32_t> {
    if (id == -1) return std::nullopt;
    if (id < 0 || id >= n)
      throw InputError(name_, std::string(field) + " " + std::to_string(id) +
                                  " is out of range; expected -1 (none) or 0.." +
                                  std::to_string(n - 1));
    return id;
  };
  bos_ = special(m.bos_id, "bos_id");
  eos_ = special(m.eos_id, "eos_id");

  if (m.model_type == 1) {  // unigram: pieces in SentencePiece's own spelling
    UnigramModel::Vocabulary uni;
    uni.unk_id = vocab.unk_id;
    uni.byte_fallback = m.byte_fallback;
    uni.byte_ids.fill(-1);
    for (std::int32_t id = 0; id < n; ++id) {
      const PieceType type = types_[id];
      uni.pieces.push_back(m.pieces[id].text);
      uni.scores.push_back(m.pieces[id].score);
      uni.uses.push_back(type == PieceType::kNormal        ? UnigramModel::Use::kNormal
                         : type == PieceType::kUserDefined ? UnigramModel::Use::kUserDefined
                                                           : UnigramModel::Use::kNone);
      if (type == PieceType::kByte) uni.byte_ids[byte_of_piece(m.pieces[id].text)] = id;
    }
    unigram_.emplace(std::move(uni));
  }
  pieces_.reserve(m.pieces.size());
  for (auto& p : m.pieces) pieces_.push_back(std::move(p.text));
  if (!unigram_) encoder_ = Llama2cTokenizer::from_vocabulary(std::move(vocab), name_);
}

void SentencePieceTokenizer::check_id(std::int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw InputError(name_, "token id " + std::to_string(id) + " is out of range; expected 0.." +
                                std::to_string(vocab_size() - 1));
}

std::string SentencePieceTokenizer::piece(std::int32_t id) const {
  check_id(id);
  return pieces_[id];
}

SentencePieceTokenizer::PieceType SentencePieceTokenizer::type(std::int32_t id) const {
  check_id(id);
  return types_[id];
}

// SentencePiece's NormalizePrefix: a user-defined piece as it is, else the
// precompiled map's longest match, else one character (an invalid byte reads
// as U+FFFD).
std::pair<std::string_view, std::size_t> SentencePieceTokenizer::normalize_prefix(
    std::string_view text) const {
  for (const std::string& u : user_defined_[static_cast<unsigned char>(text[0])])
    if (text.substr(0, u.size()) == u) return {text.substr(0, u.size()), u.size()};
  if (charsmap_) {
    auto match = charsmap_->longest_prefix(text);
    if (match.second > 0) return match;
  }
  const std::size_t n = utf8_length(text);
  return n > 0 ? std::pair{text.substr(0, n), n} : std::pair{kReplacement, std::size_t{1}};
}

// SentencePiece's Normalizer::Normalize: remove_extra_whitespaces drops
// leading spaces, the spaces that begin a unit after a space, and trailing
// spaces. Both ' ' and '▁' come out as ' ', the encoder's spelling of '▁'.
std::string SentencePieceTokenizer::normalize(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  if (remove_extra_whitespaces_)
    while (i < text.size()) {
      const auto [unit, length] = normalize_prefix(text.substr(i));
      if (unit != " ") break;
      i += length;
    }
  bool after_space = remove_extra_whitespaces_;
  while (i < text.size()) {
    auto [unit, length] = normalize_prefix(text.substr(i));
    i += length;
    if (after_space)
      while (!unit.empty() && unit[0] == ' ') unit.remove_prefix(1);
    if (!unit.empty()) {
      if (escape_whitespaces_)
        out += replace_all(unit, kSpaceSymbol, " ");
      else
        out += unit;
      after_space = unit.back() == ' ';
    }
    if (!remove_extra_whitespaces_) after_space = false;
  }
  // SentencePiece strips trailing '▁' after escaping, so a written '▁' goes too.
  if (remove_extra_whitespaces_)
    while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::vector<std::int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  if (!unigram_) return encoder_->encode(normalize(text));
  // The unigram model reads SentencePiece's spelling, dummy prefix included.
  const std::string_view space = escape_whitespaces_ ? kSpaceSymbol : std::string_view(" ");
  const std::string normalized = normalize(text);
  std::string spelled;
  if (add_dummy_prefix_ && !normalized.empty()) spelled = space;
  spelled += replace_all(normalized, " ", space);
  return unigram_->encode(spelled);
}

std::string SentencePieceTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string text;
  bool first = true;  // the first piece with text carries the dummy prefix
  for (std::int32_t id : ids) {
    check_id(id);
    std::string_view p = pieces_[id];
    switch (types_[id]) {
      case PieceType::kControl: continue;
      case PieceType::kUnknown: text += kUnknownText; break;
      case PieceType::kByte: text += static_cast<char>(byte_of_piece(p)); break;
      default:
        if (first && add_dummy_prefix_ && p.substr(0, kSpaceSymbol.size()) == kSpaceSymbol)
          p.remove_prefix(kSpaceSymbol.size());
        text += replace_all(p, kSpaceSymbol, " ");
    }
    first = false;
  }
  return text;
}

}  // namespace sparc
