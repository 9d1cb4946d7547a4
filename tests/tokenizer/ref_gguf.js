// ref_gguf.js - the JavaScript side of the multilingual differential test.
//
//   node ref_gguf.js VOCAB.gguf CORPUS.b64 OUT.ids [TOKENIZER_JSON_OUT]
//
// @lenml/tokenizers has no GGUF reader, so this reads the vocab of a GGUF
// file (tokenizer.ggml.*) and builds the Hugging Face tokenizer.json it was
// converted from:
// - WordPiece ("bert"): llama.cpp's converter turns BERT's "word" into
//   "\u2581word" and "##piece" into "piece" and keeps bracketed tokens
//   ("[CLS]") as they are, so the reverse is exact.  Normalizer,
//   pre-tokenizer, model and post-processor are BERT's (BertNormalizer with
//   lowercasing and accent stripping, BertPreTokenizer, WordPiece with "##",
//   BertProcessing), as in bge's own tokenizer.json.
// - SentencePiece BPE ("llama"): the Llama 2 form (normalizer Prepend "\u2581"
//   + Replace " " by "\u2581", BPE with byte fallback, "<s>" first).  The merges
//   are derived from the scores as Hugging Face's converter derives them:
//   every split of a token into two tokens, ranked by the token's score.
//   Control, user-defined and unknown tokens are added tokens; for Phi-3 the
//   ones llama.cpp strips white space after get rstrip.
// Each corpus line (base64 of raw bytes, decoded as UTF-8 with U+FFFD for
// invalid sequences) is encoded with special tokens added and matched; each
// output line holds the ids.
"use strict";
const fs = require("fs");
const path = require("path");

const [ggufPath, corpusPath, outPath, jsonOut] = process.argv.slice(2);
if (!ggufPath || !corpusPath || !outPath) {
  console.error("usage: node ref_gguf.js VOCAB.gguf CORPUS.b64 OUT.ids [TOKENIZER_JSON_OUT]");
  process.exit(2);
}

// ---- the metadata of a GGUF file (v2/v3, little-endian) --------------------
function readGGUF(file) {
  const b = fs.readFileSync(file);
  let p = 0;
  const u32 = () => { const v = b.readUInt32LE(p); p += 4; return v; };
  const u64 = () => { const v = Number(b.readBigUInt64LE(p)); p += 8; return v; };
  const str = () => { const n = u64(); const s = b.toString("utf8", p, p + n); p += n; return s; };
  const sizes = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  function value(t) {
    switch (t) {
      case 0: return b.readUInt8(p++);
      case 1: return b.readInt8(p++);
      case 2: p += 2; return b.readUInt16LE(p - 2);
      case 3: p += 2; return b.readInt16LE(p - 2);
      case 4: return u32();
      case 5: p += 4; return b.readInt32LE(p - 4);
      case 6: p += 4; return b.readFloatLE(p - 4);
      case 7: return b.readUInt8(p++) !== 0;
      case 8: return str();
      case 9: {
        const at = u32(), n = u64(), out = new Array(n);
        for (let i = 0; i < n; i++) out[i] = value(at);
        return out;
      }
      case 10: case 11: case 12: p += 8; return Number(b.readBigInt64LE(p - 8));
      default: throw new Error(`GGUF value type ${t} at ${p} (sizes ${Object.keys(sizes)})`);
    }
  }
  if (b.toString("latin1", 0, 4) !== "GGUF") throw new Error(`${file}: not GGUF`);
  p = 4;
  u32(); // version
  u64(); // tensor count
  const nkv = u64(), kv = {};
  for (let i = 0; i < nkv; i++) {
    const k = str();
    kv[k] = value(u32());
  }
  return kv;
}

// ---- WordPiece -----------------------------------------------------------
function bertJSON(kv) {
  const toks = kv["tokenizer.ggml.tokens"];
  const types = kv["tokenizer.ggml.token_type"] || [];
  const vocab = {};
  const added = [];
  toks.forEach((t, id) => {
    let w;
    if (t.startsWith("[") && t.endsWith("]")) w = t;
    else if (t.startsWith("\u2581")) w = t.slice(1);
    else w = "##" + t;
    if (!(w in vocab)) vocab[w] = id;
    if (types[id] === 3) {
      added.push({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    }
  });
  const at = (key, dflt) => (kv[key] !== undefined ? kv[key] : dflt);
  const unk = toks[at("tokenizer.ggml.unknown_token_id", 100)];
  const cls = at("tokenizer.ggml.cls_token_id", 101), sep = at("tokenizer.ggml.seperator_token_id", 102);
  const lowercase = at("tokenizer.ggml.normalizer.lowercase", true);
  const tokenizerJSON = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: "BertNormalizer", clean_text: true, handle_chinese_chars: true,
      strip_accents: at("tokenizer.ggml.normalizer.strip_accents", null), lowercase,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: { type: "BertProcessing", sep: [toks[sep], sep], cls: [toks[cls], cls] },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordPiece", unk_token: unk, continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab },
  };
  const tokenizerConfig = {
    do_lower_case: lowercase, model_max_length: 1e9, tokenizer_class: "BertTokenizer",
    cls_token: toks[cls], sep_token: toks[sep], unk_token: unk, clean_up_tokenization_spaces: true,
  };
  return { tokenizerJSON, tokenizerConfig };
}

// ---- SentencePiece BPE ------------------------------------------------------
function llamaJSON(kv) {
  const toks = kv["tokenizer.ggml.tokens"];
  const scores = kv["tokenizer.ggml.scores"];
  const types = kv["tokenizer.ggml.token_type"] || [];
  const vocab = {};
  toks.forEach((t, id) => { if (!(t in vocab)) vocab[t] = id; });
  const isSpecial = (id) => types[id] === 2 || types[id] === 3 || types[id] === 4;
  // Hugging Face's SentencePiece converter: for each token, every split
  // into two tokens; stable-sorted by the token's score, highest first.
  // Special tokens take part, as they do in llama.cpp's merges.
  const merges = [];
  toks.forEach((t, id) => {
    if (types[id] === 6) return;
    const chars = Array.from(t);
    const local = [];
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join(""), r = chars.slice(i).join("");
      if (l in vocab && r in vocab) local.push([l, r, scores[id]]);
    }
    local.sort((a, b) => vocab[a[0]] - vocab[b[0]] || vocab[a[1]] - vocab[b[1]]);
    merges.push(...local);
  });
  merges.sort((a, b) => b[2] - a[2]);
  const name = String(kv["general.name"] || "").toLowerCase();
  const phi3 = name.includes("phi-3") || name.includes("phi3");
  const added = [];
  toks.forEach((t, id) => {
    if (!isSpecial(id)) return;
    const rstrip = phi3 && !["<unk>", "<s>", "<|endoftext|>"].includes(t);
    added.push({ id, content: t, single_word: false, lstrip: false, rstrip, normalized: false, special: true });
  });
  const bosId = kv["tokenizer.ggml.bos_token_id"] ?? 1, bos = toks[bosId];
  const unk = toks[kv["tokenizer.ggml.unknown_token_id"] ?? 0];
  const tokenizerJSON = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "\u2581" }, { type: "Replace", pattern: { String: " " }, content: "\u2581" }],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
    },
    decoder: null,
    model: {
      type: "BPE", dropout: null, unk_token: unk, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, vocab, merges: merges.map((m) => [m[0], m[1]]),
    },
  };
  const tokenizerConfig = {
    add_bos_token: true, add_eos_token: false, legacy: true, model_max_length: 1e9,
    tokenizer_class: "LlamaTokenizer", bos_token: bos, eos_token: toks[kv["tokenizer.ggml.eos_token_id"] ?? 2],
    unk_token: unk, clean_up_tokenization_spaces: false,
  };
  return { tokenizerJSON, tokenizerConfig };
}

const kv = readGGUF(ggufPath);
const model = kv["tokenizer.ggml.model"];
if (model !== "bert" && model !== "llama") throw new Error(`${ggufPath}: tokenizer model ${model} is not bert or llama`);
const { tokenizerJSON, tokenizerConfig } = model === "bert" ? bertJSON(kv) : llamaJSON(kv);
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(tokenizerJSON));

const lib = require(path.resolve(__dirname, "..", "..", ".cache", "tokenizers", "tokenizers", "package", "dist", "main.js"));
const tok = lib.TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
const lines = fs.readFileSync(corpusPath, "utf8").split("\n");
if (lines.length && lines[lines.length - 1] === "") lines.pop();
const out = [];
for (const b64 of lines) {
  const text = Buffer.from(b64, "base64").toString("utf8");
  out.push(tok.encode(text, { add_special_tokens: true }).join(" "));
}
fs.writeFileSync(outPath, out.join("\n") + "\n");
