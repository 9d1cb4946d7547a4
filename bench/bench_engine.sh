#!/usr/bin/env bash
# Engine speed: a model with Qwen3-0.6B's exact shapes (gguf-gen --preset
# qwen3-0.6b, seeded random weights) in F16, Q8_0 and Q4_K_M; 2 threads;
# prompt processing (pp128, pp512), decode at one sequence (tg64) and
# aggregate decode with 4 and 16 sequences.  Medians of 5 runs.
# Writes bench/out/engine.json.  The llama.cpp column is the reference the
# engine issue gives for this machine kind (llama.cpp cannot be built here);
# it is printed for comparison, never used as a result.
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
models=.cache/bench-models
mkdir -p "$models" bench/out
threads=${BENCH_THREADS:-2}
reps=${BENCH_REPS:-5}
cli=$build/inferkv-cli
gen=$build/gguf-gen
out=bench/out/engine.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for t in f16 q8_0 q4_k_m; do
    f=$models/qwen3-0.6b-$t.gguf
    if [ ! -s "$f" ]; then
        echo "generating $f (once; cached in $models)"
        "$gen" --preset qwen3-0.6b --type "$t" --seed 1 -q -o "$f.part" && mv "$f.part" "$f"
    fi
    echo "benchmarking $t ($threads threads, median of $reps)"
    "$cli" bench -m "$f" --pp 128 --tg 0 --seqs 0 --threads "$threads" --reps "$reps" --json 2>/dev/null | tail -n1 > "$tmp/$t-pp128.json"
    "$cli" bench -m "$f" --pp 512 --tg 64 --seqs 4 --threads "$threads" --reps "$reps" --json 2>/dev/null | tail -n1 > "$tmp/$t-main.json"
    "$cli" bench -m "$f" --pp 0 --tg 32 --seqs 16 --threads "$threads" --reps "$reps" --json 2>/dev/null | tail -n1 > "$tmp/$t-agg16.json"
done

/usr/bin/python3 - "$tmp" "$out" "$threads" "$reps" <<'PY'
import json, sys, platform, datetime
tmp, out, threads, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ref = {  # llama.cpp, 2 threads, this machine kind (engine issue); None = not given
    "f16":    {"pp512": 264, "tg64": 28},
    "q8_0":   {"pp512": 211, "tg64": 36, "agg4": 39, "agg16": 82},
    "q4_k_m": {"pp512": 267, "tg64": 63},
}
rows = {}
for t in ("f16", "q8_0", "q4_k_m"):
    a = json.load(open(f"{tmp}/{t}-pp128.json"))
    b = json.load(open(f"{tmp}/{t}-main.json"))
    c = json.load(open(f"{tmp}/{t}-agg16.json"))
    rows[t] = {"pp128": a["pp_tok_s"], "pp512": b["pp_tok_s"], "tg64": b["tg_tok_s"],
               "agg4": b["agg_tok_s"], "agg16": c["agg_tok_s"], "kernels": b["kernels"]}
print(f"\n{'type':8} {'cell':6} {'inferkv tok/s':>14} {'llama.cpp ref':>14} {'ratio':>7}")
for t, r in rows.items():
    for cell in ("pp128", "pp512", "tg64", "agg4", "agg16"):
        rv = ref[t].get(cell)
        ratio = f"{r[cell] / rv:6.2f}x" if rv else "     -"
        print(f"{t:8} {cell:6} {r[cell]:14.1f} {rv if rv else '-':>14} {ratio:>7}")
json.dump({"benchmark": "engine", "model": "gguf-gen --preset qwen3-0.6b (random weights)",
           "threads": threads, "reps": reps, "machine": platform.machine(),
           "date": datetime.datetime.utcnow().isoformat() + "Z",
           "results_tok_s": rows, "llamacpp_reference_tok_s": ref}, open(out, "w"), indent=2)
print(f"\nwrote {out}")
PY
