// usearch_peer.mjs - USearch (npm usearch@2.26.2, prebuilt N-API addon) as a
// peer of the vector benchmark.
//
// Why: USearch is the other widely used single-file HNSW, with its own SIMD
// kernels and int8 storage; it shows what a second implementation gets on
// the same vectors, and what int8 storage costs in recall (Redis 8 vector
// sets store Q8 by default).
//
// What: loads a dataset directory written by gen_vectors.py (format in
// vecfile.py: 16-byte header "IKVF"/"IKVI", version, rows, cols, then LE
// float32/int32 rows), builds an index with connectivity 16, expansion_add
// 200, one thread, all n vectors handed over in one add() call (so the
// figure is the library's insert loop, not one binding call per vector),
// and times it.  For each EF in the list it sets expansion_search = EF (the
// binding fixes it at construction, so the built index is saved once to a
// temporary file and loaded into a fresh index per EF) and runs the queries
// two ways, both on one thread:
//   batch     one search() call for all queries: library time
//   per call  one search() call per query: what a caller pays per request,
//             binding overhead included (a few microseconds a call)
// Queries repeat in passes until --min-time seconds (at least one pass):
// qps = all queries over all passes, *_median = the median pass (steadier
// on a busy machine), *_best = the fastest pass.
//
// The native CompiledIndex is used directly (through node-gyp-build), not
// the JS Index wrapper: the wrapper turns Int8Array input into floats, which
// would defeat --int8 redis.  Storage modes:
//   f32 (default)     float32 vectors, metric ip (vectors are unit length;
//                     --metric cos to let USearch normalise)
//   --int8 [redis]    i8 storage, metric cos; each vector quantised by us
//                     with its own scale, q = round(x * 127 / max|x|), as
//                     Redis vector sets do (Q8); queries quantised alike
//   --int8 usearch    i8 storage, metric cos; float32 vectors handed over
//                     and cast by USearch (x * 127 / |x|, truncated)
// Memory per vector: the serialised index size / n (graph + vectors as
// stored) and the growth of the process's resident set over the build.
//
// Run:  node bench/vector/usearch_peer.mjs DATA_DIR [--ef 10,20,...] [--k 10]
//         [--metric ip|cos] [--int8 [redis|usearch]] [--min-time 1.0]
// USearch is looked for in $USEARCH_DIR, else <repo>/.cache/usearch/
// node_modules/usearch (peers.sh installs it there with npm when missing).
// Prints one JSON object on stdout; progress on stderr.  Exit 3 when USearch
// is not installed, 2 on bad input.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

function die(msg, code = 2) {
  process.stderr.write(`usearch_peer: ${msg}\n`);
  process.exit(code);
}
const log = (msg) => process.stderr.write(`usearch_peer: ${msg}\n`);

// ---- arguments ----
const argv = process.argv.slice(2);
if (argv.length < 1 || argv[0].startsWith("-"))
  die("usage: usearch_peer.mjs DATA_DIR [--ef 10,20,...] [--k 10] [--metric ip|cos] [--int8 [redis|usearch]] [--min-time 1.0]");
const opt = { dir: argv[0], efs: [10, 20, 40, 80, 160, 320, 640], k: 10, metric: "ip", int8: null, minTime: 1.0,
              M: 16, efc: 200 };
for (let a = 1; a < argv.length; a++) {
  const o = argv[a];
  const val = () => { if (a + 1 >= argv.length) die(`missing value for ${o}`); return argv[++a]; };
  if (o === "--ef") opt.efs = val().split(",").map((s) => { const v = parseInt(s, 10); if (!(v > 0)) die(`bad --ef ${s}`); return v; });
  else if (o === "--k") opt.k = parseInt(val(), 10);
  else if (o === "--metric") opt.metric = val();
  else if (o === "--min-time") opt.minTime = parseFloat(val());
  else if (o === "--M") opt.M = parseInt(val(), 10);
  else if (o === "--efc") opt.efc = parseInt(val(), 10);
  else if (o === "--int8") opt.int8 = (argv[a + 1] === "redis" || argv[a + 1] === "usearch") ? argv[++a] : "redis";
  else die(`unknown option ${o}`);
}
if (!["ip", "cos"].includes(opt.metric)) die("--metric is ip or cos");
if (opt.int8) opt.metric = "cos"; // int8 vectors carry their own scale: only cosine ranks them right

// ---- USearch ----
const usearchDir = process.env.USEARCH_DIR || path.resolve(here, "../../.cache/usearch/node_modules/usearch");
if (!fs.existsSync(path.join(usearchDir, "package.json")))
  die(`USearch not found at ${usearchDir} (npm install usearch@2.26.2 --prefix .cache/usearch)`, 3);
let native;
try {
  const req = createRequire(path.join(usearchDir, "package.json"));
  native = req("node-gyp-build")(usearchDir);
} catch (e) {
  die(`cannot load the USearch addon from ${usearchDir}: ${e.message}`, 3);
}
const version = JSON.parse(fs.readFileSync(path.join(usearchDir, "package.json"), "utf8")).version;

// ---- data ----
function load(file, wantInt) {
  const p = path.join(opt.dir, file);
  if (!fs.existsSync(p)) die(`dataset file missing: ${p} (make it with bench/vector/gen_vectors.py)`);
  const buf = fs.readFileSync(p);
  if (buf.length < 16) die(`${p}: shorter than the 16-byte header`);
  const magic = buf.toString("latin1", 0, 4);
  if (magic !== (wantInt ? "IKVI" : "IKVF")) die(`${p}: bad magic ${JSON.stringify(magic)}`);
  if (buf.readUInt32LE(4) !== 1) die(`${p}: unknown version ${buf.readUInt32LE(4)}`);
  const rows = buf.readUInt32LE(8), cols = buf.readUInt32LE(12);
  if (buf.length !== 16 + rows * cols * 4) die(`${p}: ${buf.length} bytes, header says ${16 + rows * cols * 4}`);
  const bytes = buf.buffer.slice(buf.byteOffset + 16, buf.byteOffset + buf.length); // aligned copy
  return { rows, cols, data: wantInt ? new Int32Array(bytes) : new Float32Array(bytes) };
}
const base = load("base.f32", false), queries = load("queries.f32", false), gt = load("gt.i32", true);
const n = base.rows, dim = base.cols, nq = queries.rows, k = opt.k;
if (queries.cols !== dim) die(`queries.f32 has dimension ${queries.cols}, base.f32 ${dim}`);
if (gt.rows !== nq) die(`gt.i32 has ${gt.rows} rows for ${nq} queries`);
if (!(k >= 1 && k <= gt.cols)) die(`--k must be between 1 and ${gt.cols}`);

// Redis-style Q8: every vector scaled by its own max |x| into [-127, 127].
function quantiseQ8(m, rows) {
  const out = new Int8Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let mx = 0;
    for (let j = 0; j < dim; j++) mx = Math.max(mx, Math.abs(m[r * dim + j]));
    const s = mx > 0 ? 127 / mx : 0;
    for (let j = 0; j < dim; j++) out[r * dim + j] = Math.round(m[r * dim + j] * s);
  }
  return out;
}
const quant = opt.int8 ? "i8" : "f32";
const baseIn = opt.int8 === "redis" ? quantiseQ8(base.data, n) : base.data;
const queryIn = opt.int8 === "redis" ? quantiseQ8(queries.data, nq) : queries.data;
const row = (m, i) => m.subarray(i * dim, (i + 1) * dim);

// ---- build ----
const make = (ef) => new native.CompiledIndex(dim, opt.metric, quant, opt.M, opt.efc, ef, false);
const keys = new BigUint64Array(n);
for (let i = 0; i < n; i++) keys[i] = BigInt(i);
global.gc?.();
const rss0 = process.memoryUsage().rss;
log(`building ${n} x ${dim} ${quant}${opt.int8 ? " (" + opt.int8 + " quantisation)" : ""}, metric ${opt.metric} (connectivity ${opt.M}, expansion_add ${opt.efc}, 1 thread)`);
let index = make(opt.efs[0]);
let t0 = process.hrtime.bigint();
index.add(keys, baseIn, 1);
const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
const rss1 = process.memoryUsage().rss;
if (index.size() !== n) die(`index holds ${index.size()} vectors after adding ${n}`);

const tmp = path.join(os.tmpdir(), `usearch_peer_${process.pid}.usearch`);
process.on("exit", () => { try { fs.unlinkSync(tmp); } catch {} });
index.save(tmp);
const savedBytes = fs.statSync(tmp).size;
index = null;

// ---- search ----
const now = () => Number(process.hrtime.bigint()) / 1e9;
function pct(v, q) { const s = Float64Array.from(v).sort(); return s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))]; }
const searches = [];
for (const ef of opt.efs) {
  const ix = make(ef);
  ix.load(tmp);
  // batch: one call for all queries
  let hits = 0, total = 0, best = Infinity, passes = 0;
  const passS = [], passC = [];
  do {
    const p0 = now();
    const [rk, , counts] = ix.search(queryIn, k, 1);
    const dt = now() - p0;
    if (passes === 0) {
      for (let q = 0; q < nq; q++) {
        const want = new Set(gt.data.subarray(q * gt.cols, q * gt.cols + k));
        const c = Number(counts[q]);
        for (let j = 0; j < c; j++) if (want.has(Number(rk[q * k + j]))) hits++;
      }
    }
    total += dt; best = Math.min(best, dt); passes++; passS.push(dt);
  } while (total < opt.minTime && passes < 1000);
  const batch = { qps: (passes * nq) / total, best: nq / best, passes };
  // per call: one call per query
  let hitsCall = 0, totalC = 0, bestC = Infinity, passesC = 0;
  const lat = [];
  do {
    const p0 = now();
    for (let q = 0; q < nq; q++) {
      const q0 = process.hrtime.bigint();
      const [rk, , counts] = ix.search(row(queryIn, q), k, 1);
      lat.push(Number(process.hrtime.bigint() - q0) / 1e3);
      if (passesC === 0) {
        const want = new Set(gt.data.subarray(q * gt.cols, q * gt.cols + k));
        for (let j = 0; j < Number(counts[0]); j++) if (want.has(Number(rk[j]))) hitsCall++;
      }
    }
    const dt = now() - p0;
    totalC += dt; bestC = Math.min(bestC, dt); passesC++; passC.push(dt);
  } while (totalC < opt.minTime && passesC < 1000);
  const entry = {
    ef, recall: +(hits / (nq * k)).toFixed(4),
    qps_batch: Math.round(batch.qps), qps_batch_median: Math.round(nq / pct(passS, 0.5)), qps_batch_best: Math.round(batch.best), passes_batch: batch.passes,
    qps_call: Math.round((passesC * nq) / totalC), qps_call_median: Math.round(nq / pct(passC, 0.5)), qps_call_best: Math.round(nq / bestC), passes_call: passesC,
    p50_us_call: +pct(lat, 0.5).toFixed(1), p99_us_call: +pct(lat, 0.99).toFixed(1),
  };
  if (hitsCall !== hits) entry.recall_call = +(hitsCall / (nq * k)).toFixed(4);
  searches.push(entry);
  log(`ef ${String(ef).padStart(4)} recall@${k} ${entry.recall.toFixed(4)}  batch ${String(entry.qps_batch).padStart(7)} q/s  per call ${String(entry.qps_call).padStart(7)} q/s`);
}

const result = {
  library: "usearch", version, binding: "node N-API (CompiledIndex, node " + process.versions.node + ")",
  quantization: quant, int8_mode: opt.int8, metric: opt.metric,
  simd: { compiled: native.hardwareAccelerationCompiled?.(), available: native.hardwareAccelerationAvailable?.() },
  n, dim, queries: nq, k, connectivity: opt.M, expansion_add: opt.efc, threads: 1,
  build_seconds: +buildS.toFixed(3), inserts_per_s: Math.round(n / buildS), insert_calls: 1,
  memory: {
    serialized_bytes_per_vector: +(savedBytes / n).toFixed(1),
    rss_bytes_per_vector: +((rss1 - rss0) / n).toFixed(1),
    how: "serialized = index.save() file size / n (graph + stored vectors); rss = resident-set growth over the build",
  },
  search: searches,
};
process.stdout.write(JSON.stringify(result) + "\n");
