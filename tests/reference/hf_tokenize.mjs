// The independent reference for sparc's tokenizer.json tokenizers: Hugging
// Face's own JavaScript tokenizers (@huggingface/tokenizers, fetched by
// scripts/setup.sh), run with Debian's node.
//   node hf_tokenize.mjs PACKAGE_DIR TOKENIZER_DIR INPUT_JSON
// INPUT_JSON: an array of base64 byte strings. Each is decoded as UTF-8 the
// WHATWG way (each maximal invalid subsequence becomes U+FFFD: a JavaScript
// string cannot hold invalid UTF-8) and encoded without special tokens
// added. Prints an array of [decoded text, ids].
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [packageDir, tokenizerDir, inputPath] = process.argv.slice(2);
const { Tokenizer } = await import(pathToFileURL(`${packageDir}/dist/tokenizers.mjs`).href);
const readJson = (p) => JSON.parse(readFileSync(p, "utf8"));
const tokenizer = new Tokenizer(
  readJson(`${tokenizerDir}/tokenizer.json`),
  readJson(`${tokenizerDir}/tokenizer_config.json`),
);
const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const out = readJson(inputPath).map((b64) => {
  const text = utf8.decode(Buffer.from(b64, "base64"));
  return [text, tokenizer.encode(text, { add_special_tokens: false }).ids];
});
process.stdout.write(JSON.stringify(out));
