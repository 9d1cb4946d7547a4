#!/usr/bin/env bash
# Tokenization throughput: inferkv against the JavaScript reference
# (@lenml/tokenizers under node), Qwen3's tokenizer.json, on >= 10 MB of
# mixed text (this repository's sources and docs plus the generated edge
# cases of the differential test, repeated).  Both sides measure the CPU
# time (user + system) of the encode call alone on one in-memory text
# (CPU time, because the machines are shared), special-token texts matched,
# nothing added; best of 3.  Writes bench/out/tokenizer.json.
#   bench/bench_tokenizer.sh [BUILD_DIR]
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
pkg=.cache/tokenizers/qwen3/package
out=bench/out
work=.cache/tokbench
mkdir -p "$out" "$work"
if [ ! -f "$pkg/models/tokenizer.json" ] || ! command -v node >/dev/null; then
    echo "bench_tokenizer: skipped (run scripts/fetch-tokenizers.sh; needs node)"
    exit 0
fi
/usr/bin/python3 tests/tokenizer/gen_corpus.py . "$work/corpus.b64" >/dev/null
/usr/bin/python3 - "$work/corpus.b64" "$work/text.txt" <<'PY'
import base64, sys
parts = [base64.b64decode(l) for l in open(sys.argv[1]).read().split('\n') if l]
blob = b'\n'.join(parts)
out = bytearray()
while len(out) < 10 * 1024 * 1024 + 1:
    out += blob + b'\n'
open(sys.argv[2], 'wb').write(bytes(out))
PY
best() { # runs "$@" 3 times, prints the line with the least seconds
    for i in 1 2 3; do "$@"; done | sort -t= -k4 -g | head -n1
}
ours=$(best nice "$build/inferkv-cli" tokenize -m "$pkg/models/tokenizer.json" --parse-special --stats -f "$work/text.txt")
ref=$(best nice node tests/tokenizer/bench_ref.js "$pkg" "$work/text.txt")
/usr/bin/python3 - "$ours" "$ref" "$out/tokenizer.json" <<'PY'
import json, sys
def parse(s):
    d = dict(kv.split('=') for kv in s.split())
    return int(d['bytes']), int(d['ids']), float(d['seconds'])
ob, oi, os_ = parse(sys.argv[1])
rb, ri, rs = parse(sys.argv[2])
res = {
    "benchmark": "tokenizer throughput, Qwen3 tokenizer.json, one mixed text, CPU time of the encode call, best of 3",
    "text_bytes": ob,
    "inferkv": {"ids": oi, "seconds": os_, "mb_per_s": round(ob / os_ / 1e6, 2)},
    "js_reference": {"package": "@lenml/tokenizers 3.7.2 (node)", "ids": ri, "seconds": rs, "mb_per_s": round(rb / rs / 1e6, 2)},
    "speedup": round(rs / os_, 2),
    "same_id_count": oi == ri,
}
json.dump(res, open(sys.argv[3], 'w'), indent=1)
print("tokenizer: inferkv %.2f MB/s, JS reference %.2f MB/s (%.1fx), %d bytes, ids %s" % (
    res["inferkv"]["mb_per_s"], res["js_reference"]["mb_per_s"], res["speedup"], ob,
    "equal count" if oi == ri else "COUNT DIFFERS (%d vs %d)" % (oi, ri)))
PY
