#!/usr/bin/env bash
# Multilingual differential test of WordPiece (bert-bge) and SentencePiece
# (llama-spm, phi-3): 5,611 strings of every script and mark class against
# llama.cpp's own ids, and the JavaScript reference against llama.cpp.
# Skips (and says so) without ../shared's vocabs, node or the npm packages.
# See tests/tokenizer/run_intl_diff.sh.
exec bash "$(dirname "$0")/../tokenizer/run_intl_diff.sh" "${INFERKV_BUILD:-build}"
