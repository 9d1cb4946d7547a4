// ref_chat.js - renders chat conversations with a package's own Jinja chat
// template through @lenml/tokenizers (the reference for our templates).
//   node ref_chat.js PACKAGE_DIR CONVERSATIONS.json OUT
// CONVERSATIONS.json is a list of message lists; OUT gets one line per
// conversation: base64 of the rendered text (generation prompt added).
"use strict";
const fs = require("fs");
const path = require("path");
const [pkgDir, convPath, outPath] = process.argv.slice(2);
const lib = require(path.resolve(pkgDir, "..", "..", "tokenizers", "package", "dist", "main.js"));
const tok = lib.TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(pkgDir, "models", "tokenizer.json"), "utf8")),
  tokenizerConfig: JSON.parse(fs.readFileSync(path.join(pkgDir, "models", "tokenizer_config.json"), "utf8")),
});
const convs = JSON.parse(fs.readFileSync(convPath, "utf8"));
const out = convs.map((m) =>
  Buffer.from(tok.apply_chat_template(m, { tokenize: false, add_generation_prompt: true }), "utf8").toString("base64"));
fs.writeFileSync(outPath, out.join("\n") + "\n");
