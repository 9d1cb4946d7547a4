#!/usr/bin/env bash
# Regenerates the multilingual test vectors (tests/tokenizer/intl/) from
# llama.cpp itself.  Not part of `make test`: it needs a llama.cpp tree with
# libllama built (../shared/ANCHORS.md: the source is in the npm package
# node-llama-cpp's git bundle; `cmake -B build && cmake --build build
# --target llama -j2` is enough).
#
#   tests/tokenizer/make_intl_vectors.sh LLAMA_CPP_DIR
#
# Writes intl/corpus.b64 (gen_intl_corpus.py), runs llamacpp_ids.cpp over it
# for each vocab (bert-bge, llama-spm, phi-3 from ../shared) in both modes,
# and packs the ids (intl_vectors.py pack).
set -eu
cd "$(dirname "$0")/../.."
llama=${1:?usage: make_intl_vectors.sh LLAMA_CPP_DIR}
shared=${INFERKV_SHARED:-../shared}
vocabs=$shared/models/ggml-org_llama.cpp
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
g++ -O2 -std=c++17 -I"$llama/include" -I"$llama/ggml/include" tests/tokenizer/llamacpp_ids.cpp \
    -o "$work/llamacpp_ids" -L"$llama/build/bin" -lllama -lggml -lggml-base -Wl,-rpath,"$llama/build/bin"
/usr/bin/python3 tests/tokenizer/gen_intl_corpus.py tests/tokenizer/intl/corpus.b64
for v in bert-bge llama-spm phi-3; do
    "$work/llamacpp_ids" "$vocabs/ggml-vocab-$v.gguf" tests/tokenizer/intl/corpus.b64 "$work/$v.plain.ref" 0 0
    "$work/llamacpp_ids" "$vocabs/ggml-vocab-$v.gguf" tests/tokenizer/intl/corpus.b64 "$work/$v.special.ref" 1 1
done
/usr/bin/python3 tests/tokenizer/intl_vectors.py pack "$work" tests/tokenizer/intl
du -ch tests/tokenizer/intl/* | tail -1
