#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora: tiny valid inputs of each format, made
here from scratch (no shared files), plus a few near-misses. Run it again
after changing it; the outputs are committed under tests/fuzz/corpus/.

    /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import json
import os
import shutil
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors -------------------------------------------------------------
def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob


write("safetensors", "two_tensors", safetensors({
    "w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
    "b": ("BF16", [3], b"\x80\x3f" * 3)}, {"format": "pt"}))
write("safetensors", "empty_and_ints", safetensors({
    "e": ("F16", [0, 4], b""),
    "i": ("I64", [2], struct.pack("<2q", -1, 7)),
    "m": ("BOOL", [1, 1, 2], b"\x01\x00"),
    "u": ("U8", [], b"\x05")}))
write("safetensors", "header_only", safetensors({}, {"library": "sparc"}))


# ---- llama2.c checkpoints -----------------------------------------------------
def llama2c(dim=8, hidden=8, layers=1, heads=2, kv_heads=2, vocab=4, seq=4, version=0, shared=True):
    head = dim // heads
    kv = kv_heads * head
    per_layer = dim + dim * dim + 2 * kv * dim + dim * dim + dim + 3 * hidden * dim
    floats = vocab * dim + layers * per_layer + dim
    if not shared:
        floats += vocab * dim
    if version == 1:
        hdr = struct.pack("<Ii7iB", 0x616B3432, 1, dim, hidden, layers, heads, kv_heads, vocab, seq,
                          1 if shared else 0)
        hdr += b"\0" * (256 - len(hdr))
    else:
        hdr = struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab if shared else -vocab, seq)
        floats += seq * head  # RoPE tables
    return hdr + struct.pack("<%df" % floats, *[(i % 7) * 0.25 for i in range(floats)])


write("llama2c", "legacy_shared", llama2c())
write("llama2c", "legacy_separate_classifier", llama2c(layers=2, kv_heads=1, shared=False))
write("llama2c", "v1_shared", llama2c(version=1))
write("llama2c", "v1_separate_gqa", llama2c(dim=8, heads=4, kv_heads=2, version=1, shared=False))


# ---- llama2.c tokenizer.bin ----------------------------------------------------
def tokenizer_bin(pieces):
    out = struct.pack("<i", max(len(p.encode()) for p, _ in pieces))
    for piece, score in pieces:
        b = piece.encode()
        out += struct.pack("<fi", score, len(b)) + b
    return out


base = [("<unk>", 0.0), ("\n<s>\n", 0.0), ("\n</s>\n", 0.0)]
byte_pieces = [("<0x%02X>" % b, 0.0) for b in range(256)]
words = [(" ", -1.0), ("a", -2.0), ("b", -3.0), ("ab", -4.0), (" ab", -5.0), ("\u00fc", -6.0)]
write("llama2c_tokenizer", "bytes_and_merges", tokenizer_bin(base + byte_pieces + words))
write("llama2c_tokenizer", "no_byte_fallback", tokenizer_bin(base + words))


# ---- tokenizer.json (byte-level BPE) ---------------------------------------------
def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer_json(pattern, merges, added=(), prefix_space=False):
    bc = byte_chars()
    vocab = {bc[b]: b for b in range(256)}
    merge_list = []
    for l, r in merges:
        vocab[l + r] = len(vocab)
        merge_list.append(l + " " + r)
    pre = {"type": "ByteLevel", "add_prefix_space": prefix_space, "trim_offsets": True,
           "use_regex": pattern is None}
    if pattern is not None:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
            dict(pre, use_regex=False)]}
    return json.dumps({
        "version": "1.0",
        "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": s} for i, c, s in added],
        "normalizer": None, "pre_tokenizer": pre, "post_processor": None,
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "ignore_merges": False,
                  "vocab": vocab, "merges": merge_list}}, ensure_ascii=False)


G = "\u0120"  # the byte-level space
write("tokenizer_json", "gpt2_style", tokenizer_json(None, [(G, "t"), ("h", "e"), (G + "t", "he")],
                                                     [(259, "<|endoftext|>", True)]))
write("tokenizer_json", "llama3_style", tokenizer_json(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    [("1", "2"), ("12", "3"), ("I", "T")],
    [(259, "<|begin_of_text|>", True), (260, "<extra>", False)]))
write("tokenizer_json", "prefix_space", tokenizer_json(None, [("a", "b")], prefix_space=True))


# ---- SentencePiece tokenizer.model: trained here with spm_train ------------------------
def spm_models():
    if shutil.which("spm_train") is None:
        print("spm_train absent (Debian package sentencepiece): sentencepiece corpus not written")
        return
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "text.txt")
        with open(text, "w") as f:
            for i in range(200):
                f.write("the cat sat on the mat %d times; der Hund lief \u00fcber die Stra\u00dfe\n" % i)
        for name, extra in [("bpe_byte_fallback", ["--byte_fallback=true", "--vocab_size=320"]),
                            ("bpe_plain", [])]:
            prefix = os.path.join(tmp, name)
            subprocess.run(["spm_train", "--input=" + text, "--model_prefix=" + prefix,
                            "--model_type=bpe", "--vocab_size=60", "--normalization_rule_name=identity",
                            "--minloglevel=2"] + extra, check=True, capture_output=True)
            with open(prefix + ".model", "rb") as f:
                write("sentencepiece", name, f.read())


spm_models()

# ---- task data ---------------------------------------------------------------------
write("jsonl", "generic", '{"text": "a b", "label": 0}\n{"text": "c", "text_b": "d", "label": "yes"}\n'
      '\n{"text": "\\u00fc", "label": true, "extra": "x"}\n')
write("jsonl", "bad_line", '{"text": "a", "label": 0}\n{"text": 3}\n')

superglue = {  # the fuzzer's first byte picks the format: index into its list
    0: ('boolq', '{"question": "is it", "passage": "it is", "label": true, "idx": 0}\n'),
    1: ('cb', '{"premise": "p", "hypothesis": "h", "label": "neutral", "idx": 1}\n'),
    2: ('rte', '{"premise": "p", "hypothesis": "h", "label": "entailment", "idx": 2}\n'),
    3: ('copa', '{"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "label": 1}\n'),
    4: ('wic', '{"word": "w", "sentence1": "a w", "sentence2": "w b", "label": false, "start1": 2}\n'),
    5: ('wsc', '{"text": "Mark told Pete", "target": {"span1_text": "Mark", "span2_text": "he",'
               ' "span1_index": 0, "span2_index": 3}, "label": true}\n'),
    6: ('multirc', '{"idx": 0, "passage": {"text": "t", "questions": [{"question": "q", "idx": 0,'
                   ' "answers": [{"text": "a", "idx": 0, "label": 1}, {"text": "b", "idx": 1, "label": 0}]}]}}\n'),
}
for index, (name, line) in superglue.items():
    write("superglue", name, bytes([index]) + line.encode())

# ---- run configs -----------------------------------------------------------------------
TASK = """tasks:
  - name: t1
    format: generic
    train: train.jsonl
    validation: val.jsonl
    test: test.jsonl
    template: "{text} ->"
    verbalizer: {"0": "no", "1": "yes"}
    truncate_field: text
"""
write("config", "minimal", "model:\n  path: m.bin\n  tokenizer: bytes\n" + TASK)
write("config", "every_section", """method: sparc+lora
setting: domain-incremental
seed: 3
reuse_threshold: 0.7
model: {path: model, tokenizer: tok.json, dtype: bf16, device: cpu}
prompt: {length: 4}
pca: {k: 8, source: "hidden:1", max_tokens: 1000}
lora: {rank: 2, alpha: 4, dropout: 0.1, targets: [q, k, v, o, gate, up, down], lr: 0.001}
train: {epochs: 2, batch_size: 4, grad_accum: 2, lr: 0.01, weight_decay: 0.01, warmup_steps: 3,
        schedule: linear, max_grad_norm: 1, max_length: 64, early_stop_patience: 2, log_every: 5,
        lambda_orth: 0.1, val_fraction: 0.2, max_train_examples: 100}
eval: {batch_size: 8, ppl_text: ppl.txt, max_examples: 50}
comm: {backend: mpi, timeout_s: 60}
""" + TASK + """  - name: t2
    format: boolq
    train: b.jsonl
    test: bt.jsonl
    verbalizer: {"0": "no", "1": "yes"}
""")
write("config", "with_overrides", "model:\n  path: m.bin\n" + TASK +
      "\n#--set\ntrain.lr=0.5\ntasks[0].name=renamed\nlora.targets=[q, v]\nmethod=prompt")
write("config", "errors", "method: sprac\ntrian: {}\nmodel: {path: 3, dtype: f8}\npca: {k: -1}\n"
      "tasks: [{name: a/b, verbalizer: {x: y}}]\n")


# ---- checkpoint checksum file and HDF5 superblock -----------------------------
# Input: the .sha256 file's text, NUL, the file's size (u64 LE), its first bytes.
UNDEF = b"\xff" * 8


def superblock_v0(eof):
    sb = b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + struct.pack("<HHI", 4, 16, 0)
    sb += struct.pack("<Q", 0) + UNDEF + struct.pack("<Q", eof) + UNDEF
    return sb + struct.pack("<QQII", 0, 96, 1, 0) + bytes(16)  # root group symbol table entry


def superblock_v2(eof):
    sb = b"\x89HDF\r\n\x1a\n" + bytes([2, 8, 8, 0])
    return sb + struct.pack("<Q", 0) + UNDEF + struct.pack("<Q", eof) + struct.pack("<Q", 48) + bytes(4)


DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def checkpoint(sidecar, head, size):
    return sidecar.encode() + b"\0" + struct.pack("<Q", size) + head


write("checkpoint", "v0", checkpoint(DIGEST + "  ckpt-00000004.h5\n", superblock_v0(4096), 4096))
write("checkpoint", "v2_binary_mode", checkpoint(DIGEST.upper() + " *ckpt-00000008-end.h5", superblock_v2(800), 800))
write("checkpoint", "digest_only_crlf", checkpoint(DIGEST + "\r\n", superblock_v0(96), 96))
write("checkpoint", "truncated", checkpoint(DIGEST + "  ckpt-00000004.h5\n", superblock_v0(4096), 2048))
write("checkpoint", "not_hdf5", checkpoint(DIGEST[:40] + "  x.h5\nsecond line\n", b"CDF\x01" + bytes(60), 64))
print("corpus written to", OUT)
