#!/usr/bin/env bash
# bench_rag.sh - embeddings/s of a BERT-base-shaped (110M) and a MiniLM-shaped
# (22M) encoder in F16 and Q8_0 at batch 1, 32 and 256 inputs of 128 tokens
# (inferkv-cli bench --embed), what fraction of the machine's compute peak
# that is (bench/peak.c measures the int8 VNNI and fp32 FMA peak of the
# cores), INFER.EMBED through inferkv-server from 1 and 32 clients next to
# the CLI at the same batch, and INFER.RAG's latency split into embed,
# search, prefill and decode (median and p90).  The issue's target, MiniLM
# Q8_0 >= 1,000 chunks/s of 128 tokens on the 2 cores, is reported, never
# asserted.  The driver is bench/rag_bench.py (its docstring says how each
# figure is taken).  Prints a table and writes bench/out/rag.json.
#
# Models: gguf-gen --preset minilm-l6 / bert-base over the BGE WordPiece
# vocabulary from ../shared/models (seeded random weights; without the
# vocabulary, gguf-gen's synthetic one), generated once and cached in
# .cache/bench-models (git-ignored, shared with bench_infer.sh); the
# generator is stories260K from ../shared/models.
#
# Sizes (environment):
#   BENCH_RAG_QUICK=1        MiniLM Q8_0 only, batches 1 and 32, 1 rep, 200
#                            chunks, 10 questions: under a minute
#   BENCH_RAG_MODELS         "minilm-l6 bert-base"     BENCH_RAG_TYPES "f16 q8_0"
#   BENCH_RAG_BATCHES        "1 32 256"                BENCH_RAG_TOKENS 128
#   BENCH_RAG_REPS           3 (CLI median of)         BENCH_THREADS 2
#   BENCH_RAG_CLIENTS        "1 32" (server levels)    BENCH_RAG_SERVER_N 384 per level
#   BENCH_RAG_ROUNDS         2 (server/CLI alternations)
#   BENCH_RAG_CHUNKS         1000                      BENCH_RAG_QUESTIONS 20
#   BENCH_RAG_MAXTOKENS      64                        BENCH_RAG_PERF 1 (0: no perf profile)
# The full default run takes about 5 minutes on the 2-core machine.
set -eu
cd "$(dirname "$0")/.."
build=${1:-${INFERKV_BUILD:-build}}
shared=${INFERKV_SHARED:-../shared}
vocab=$shared/models/ggml-org_llama.cpp/ggml-vocab-bert-bge.gguf
models=.cache/bench-models
mkdir -p "$models" bench/out
if [ "${BENCH_RAG_QUICK:-0}" != 0 ]; then
    want_models=${BENCH_RAG_MODELS:-minilm-l6}
    want_types=${BENCH_RAG_TYPES:-q8_0}
else
    want_models=${BENCH_RAG_MODELS:-minilm-l6 bert-base}
    want_types=${BENCH_RAG_TYPES:-f16 q8_0}
fi
vocab_opt=()
[ -s "$vocab" ] && vocab_opt=(--vocab "$vocab") || echo "no $vocab: gguf-gen's synthetic WordPiece vocabulary"
for m in $want_models; do
    for t in $want_types; do
        f=$models/$m-$t.gguf
        [ -s "$f" ] && continue
        echo "generating $f (once; cached in $models)"
        "$build/gguf-gen" --preset "$m" "${vocab_opt[@]}" --type "$t" --seed 1 -q -o "$f.part" && mv "$f.part" "$f"
    done
done

# the peak meter, built here with the flags its kernels need (no AVX-512 VNNI
# compiler or CPU: no peak, the rest still runs)
peak=$(mktemp -d)
trap 'rm -rf "$peak"' EXIT
peak_bin=
if ${CC:-cc} -O2 -mavx512f -mavx512bw -mavx512vnni -mfma -pthread bench/peak.c -o "$peak/peak" 2>"$peak/cc.log" &&
    grep -qw avx512_vnni /proc/cpuinfo; then
    peak_bin=$peak/peak
else
    echo "bench/peak.c: not built or no AVX-512 VNNI here; no compute peak"
fi
/usr/bin/python3 bench/rag_bench.py --build "$build" --models-dir "$models" --peak "$peak_bin" \
    --models "$want_models" --types "$want_types" --out bench/out/rag.json
