// bench_ref.js - the JavaScript side of bench/bench_tokenizer.sh: the CPU
// time of @lenml/tokenizers encoding one text file (after loading).
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
// CPU time (user + system) of the process during the call: the machines
// this runs on are shared, and wall time would measure the neighbours.
const c0 = process.cpuUsage();
const ids = tok.encode(text, { add_special_tokens: false });
const c = process.cpuUsage(c0);
console.log(`bytes=${buf.length} ids=${ids.length} seconds=${((c.user + c.system) / 1e6).toFixed(6)}`);
