// bench_ref.js - the JavaScript side of bench/bench_tokenizer.sh: times
// @lenml/tokenizers encoding one text file (after the tokenizer is loaded).
//   node bench_ref.js PACKAGE_DIR TEXT_FILE  ->  "bytes=N ids=N seconds=S"
"use strict";
const fs = require("fs");
const path = require("path");
const [pkgDir, textPath] = process.argv.slice(2);
const lib = require(path.resolve(pkgDir, "..", "..", "tokenizers", "package", "dist", "main.js"));
const tok = lib.TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(pkgDir, "models", "tokenizer.json"), "utf8")),
  tokenizerConfig: JSON.parse(fs.readFileSync(path.join(pkgDir, "models", "tokenizer_config.json"), "utf8")),
});
const buf = fs.readFileSync(textPath);
const text = buf.toString("utf8");
const t0 = process.hrtime.bigint();
const ids = tok.encode(text, { add_special_tokens: false });
const t1 = process.hrtime.bigint();
console.log(`bytes=${buf.length} ids=${ids.length} seconds=${(Number(t1 - t0) / 1e9).toFixed(6)}`);
