#!/usr/bin/env bash
# test_gguf_gen.sh - build/gguf-gen end to end: tiny models of every
# architecture and type are written and (when build/inferkv-cli exists)
# loaded by `inferkv-cli info` (the bert / nomic-bert encoders also embed,
# with their position and token-type tables in f32, and the bert-base and
# minilm-l6 presets have their shapes); output is deterministic per seed; --from
# re-quantizes (and is byte-identical when the type does not change); the
# Q4_K_M mix puts Q6_K where the documented rule says; bad options and
# unwritable outputs exit 1 with a message.
set -u
cd "$(dirname "$0")/../.."
BUILD=${INFERKV_BUILD:-build}
SHARED=${INFERKV_SHARED:-../shared}
GEN=$BUILD/gguf-gen
CLI=$BUILD/inferkv-cli
TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_gguf_gen.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0 skip=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "  FAIL: $*"; }
skipped() { skip=$((skip + 1)); echo "  SKIP: $*"; }

if [ ! -x "$GEN" ]; then
    echo "  FAIL: $GEN is not built"
    echo "0 passed, 1 failed"
    exit 1
fi
have_cli=0
if [ -x "$CLI" ]; then have_cli=1; else echo "  note: $CLI not built: the 'inferkv-cli info' checks are skipped"; fi

# info_ok FILE ARCH: inferkv-cli loads the file and reports its architecture.
info_ok() {
    [ $have_cli = 1 ] || return 0
    local out
    out=$(timeout 60 "$CLI" info "$1" 2>&1) || { echo "$out" | tail -3; return 1; }
    grep -q "$2" <<<"$out"
}

# Every architecture in every type: written, loadable.
for preset in tiny-llama tiny-qwen2 tiny-qwen3; do
    arch=${preset#tiny-}
    for t in f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k q4_k_m; do
        f=$TMP/$preset-$t.gguf
        if "$GEN" --preset "$preset" --type "$t" --seed 7 -q -o "$f" 2>"$TMP/err" && [ -s "$f" ]; then
            if info_ok "$f" "$arch"; then ok; else bad "$preset $t: inferkv-cli info fails or wrong arch"; fi
        else
            bad "$preset $t: gguf-gen failed: $(cat "$TMP/err")"
        fi
    done
done
[ $have_cli = 1 ] || skipped "inferkv-cli info checks ($CLI absent)"

# Encoders in every type: written, loadable, and (with inferkv-cli) embedding.
for preset in tiny-bert tiny-nomic-bert; do
    arch=${preset#tiny-}
    for t in f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k q4_k_m; do
        f=$TMP/$preset-$t.gguf
        if "$GEN" --preset "$preset" --type "$t" --seed 7 -q -o "$f" 2>"$TMP/err" && [ -s "$f" ]; then
            if info_ok "$f" "architecture:    $arch\$" && info_ok "$f" "pooling mean"; then ok; else
                bad "$preset $t: inferkv-cli info fails or wrong arch/pooling"; fi
            if [ $have_cli = 1 ]; then
                n=$(timeout 60 "$CLI" embed -m "$f" "hello world" 2>"$TMP/err" | wc -w)
                if [ "$n" = 64 ]; then ok; else bad "$preset $t: embed gave $n values: $(tail -1 "$TMP/err")"; fi
            fi
        else
            bad "$preset $t: gguf-gen failed: $(cat "$TMP/err")"
        fi
    done
done
# BERT keeps position and token-type embeddings in f32, as llama.cpp's converter does
if [ $have_cli = 1 ]; then
    if "$CLI" info "$TMP/tiny-bert-q8_0.gguf" | grep -q "tensors:.*f32:24 q8_0:13"; then ok; else
        bad "tiny-bert q8_0 tensor types: $("$CLI" info "$TMP/tiny-bert-q8_0.gguf" | grep tensors)"; fi
fi
# The full-size presets' shapes (metadata only: the writer is not run)
for p in bert-base:12:768:3072 minilm-l6:6:384:1536; do
    IFS=: read -r name layers embd ffn <<<"$p"
    if "$GEN" --preset "$name" --layers 1 --vocab-size 300 --type q8_0 -q -o "$TMP/$name.gguf" &&
        { [ $have_cli = 0 ] || { "$CLI" info "$TMP/$name.gguf" | grep -q "embedding:       $embd" &&
            "$CLI" info "$TMP/$name.gguf" | grep -q "feed-forward:    $ffn"; }; }; then ok; else bad "$name preset shape"; fi
done
if "$GEN" --preset tiny-bert --pooling cls -q -o "$TMP/cls.gguf" && info_ok "$TMP/cls.gguf" "pooling cls"; then ok; else
    bad "--pooling cls"; fi

# Deterministic: same seed, same bytes; another seed, other bytes.
"$GEN" --preset tiny-qwen3 --type q4_k_m --seed 7 -q -o "$TMP/again.gguf"
if cmp -s "$TMP/again.gguf" "$TMP/tiny-qwen3-q4_k_m.gguf"; then ok; else bad "same seed gave different files"; fi
"$GEN" --preset tiny-qwen3 --type q4_k_m --seed 8 -q -o "$TMP/other.gguf"
if cmp -s "$TMP/other.gguf" "$TMP/tiny-qwen3-q4_k_m.gguf"; then bad "seed 8 gave the file of seed 7"; else ok; fi

# Custom shapes: GQA, head dim != embd/heads, untied llama, tied qwen2.
if "$GEN" --arch llama --layers 3 --embd 128 --heads 4 --kv-heads 1 --head-dim 64 --ffn 256 \
    --vocab-size 300 --ctx 512 --rope-base 500000 --type q8_0 -q -o "$TMP/custom.gguf" &&
    info_ok "$TMP/custom.gguf" llama; then ok; else bad "custom llama shape"; fi
if "$GEN" --arch qwen2 --tied --layers 1 --embd 64 --heads 2 --ffn 64 --vocab-size 260 --type f16 -q \
    -o "$TMP/q2tied.gguf" && info_ok "$TMP/q2tied.gguf" qwen2; then ok; else bad "tied qwen2"; fi

# Q4_K_M: 16 layers -> use_more_bits picks layers 0,1,4,7,10,13,14,15, each
# with attn_v and ffn_down in Q6_K (16), plus the tied token_embd: 17.
"$GEN" --arch qwen3 --layers 16 --embd 256 --heads 2 --kv-heads 1 --head-dim 128 --ffn 256 --vocab-size 300 \
    --type q4_k_m -q -o "$TMP/mix.gguf"
if [ $have_cli = 1 ]; then
    if "$CLI" info "$TMP/mix.gguf" | grep -q "q6_k:17"; then ok; else
        bad "q4_k_m mix: $("$CLI" info "$TMP/mix.gguf" | grep tensors)"; fi
fi

# --from: re-quantize; same type in and out gives the same bytes.
if "$GEN" --from "$TMP/tiny-llama-f32.gguf" --type q4_k_m -q -o "$TMP/rq.gguf" && info_ok "$TMP/rq.gguf" llama
then ok; else bad "--from f32 -> q4_k_m"; fi
if "$GEN" --from "$TMP/tiny-qwen2-q8_0.gguf" --type q5_k -q -o "$TMP/rq2.gguf" && info_ok "$TMP/rq2.gguf" qwen2
then ok; else bad "--from q8_0 -> q5_k"; fi
"$GEN" --from "$TMP/tiny-qwen3-f32.gguf" --type f32 -q -o "$TMP/same.gguf"
if cmp -s "$TMP/same.gguf" "$TMP/tiny-qwen3-f32.gguf"; then ok; else bad "--from f32 --type f32 is not byte-identical"; fi
"$GEN" --from "$TMP/tiny-qwen3-q6_k.gguf" --type q6_k -q -o "$TMP/same6.gguf"
if cmp -s "$TMP/same6.gguf" "$TMP/tiny-qwen3-q6_k.gguf"; then ok; else bad "--from q6_k --type q6_k is not byte-identical"; fi

# With ../shared: a real tokenizer, and stories260K (rows of 64 and 172) re-quantized.
STORIES=$SHARED/models/cozy-creator_python-gen-worker/stories260K.gguf
SPM=$SHARED/models/ggml-org_llama.cpp/ggml-vocab-llama-spm.gguf
if [ -f "$STORIES" ] && [ -f "$SPM" ]; then
    if "$GEN" --preset tiny-llama --vocab "$SPM" --type q8_0 -q -o "$TMP/spm.gguf" &&
        { [ $have_cli = 0 ] || "$CLI" info "$TMP/spm.gguf" | grep -q "32000"; }; then ok; else
        bad "--vocab llama-spm (32000 tokens)"; fi
    if "$GEN" --from "$STORIES" --type q4_k -o "$TMP/s4.gguf" 2>"$TMP/err" &&
        grep -q "rows of 172 are not a multiple" "$TMP/err" && info_ok "$TMP/s4.gguf" llama; then ok; else
        bad "--from stories260K --type q4_k: $(tail -2 "$TMP/err")"; fi
    if [ $have_cli = 1 ]; then
        out=$(timeout 120 "$CLI" generate -m "$TMP/s4.gguf" -n 8 --temp 0 --threads 1 -p "Once upon" 2>/dev/null | head -c 200)
        case "$out" in "Once upon"*) ok ;; *) bad "generate on re-quantized stories260K: '$out'" ;; esac
    fi
    if "$GEN" --preset tiny-qwen3 --vocab "$SPM" --vocab-size 512 -q -o "$TMP/x.gguf" 2>"$TMP/err"; then
        bad "--vocab-size disagreeing with --vocab accepted"
    elif grep -q "32000 tokens" "$TMP/err"; then ok; else bad "vocab size mismatch message: $(cat "$TMP/err")"; fi
else
    skipped "../shared models not found under $SHARED (--vocab, stories260K checks)"
fi

# Bad input: exit 1 and a message naming the problem.
expect_error() { # WHAT PATTERN ARGS...
    local what=$1 pat=$2
    shift 2
    "$GEN" "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq 1 ] && grep -qi -- "$pat" "$TMP/err"; then ok; else
        bad "$what: exit $rc, stderr '$(head -c 300 "$TMP/err")'"; fi
}
expect_error "unknown option" "unknown option" --bogus 1 -o "$TMP/e.gguf"
expect_error "bad type" "unknown type" --type q3_k -o "$TMP/e.gguf"
expect_error "bad preset" "unknown preset" --preset qwen9 -o "$TMP/e.gguf"
expect_error "bad arch" "not llama, qwen2, qwen3, bert or nomic-bert" --arch gpt2 -o "$TMP/e.gguf"
expect_error "bad pooling" "not mean, cls, last or none" --preset tiny-bert --pooling max -o "$TMP/e.gguf"
expect_error "pooling on a decoder" "encoders" --preset tiny-llama --pooling mean -o "$TMP/e.gguf"
expect_error "encoder head size" "head size is embd / heads" --preset tiny-bert --head-dim 32 -o "$TMP/e.gguf"
expect_error "small WordPiece vocab" "WordPiece vocabulary needs at least" --preset tiny-bert --vocab-size 150 -o "$TMP/e.gguf"
expect_error "kv heads" "does not divide" --heads 4 --kv-heads 3 -o "$TMP/e.gguf"
expect_error "zero layers" "not an integer in" --layers 0 -o "$TMP/e.gguf"
expect_error "not a number" "not an integer" --embd 12x -o "$TMP/e.gguf"
expect_error "small vocab" "at least 260" --vocab-size 100 -o "$TMP/e.gguf"
expect_error "odd head dim" "odd" --embd 60 --heads 4 -o "$TMP/e.gguf"
expect_error "missing value" "needs a value" --layers
expect_error "no output" "no output file" --preset tiny-llama
expect_error "missing --from" "No such file" --from "$TMP/absent.gguf" --type q8_0 -o "$TMP/e.gguf"
expect_error "missing --vocab" "No such file" --vocab "$TMP/absent.gguf" -o "$TMP/e.gguf"
expect_error "--from with shape" "do not apply" --from "$TMP/tiny-llama-f32.gguf" --layers 3 -o "$TMP/e.gguf"
expect_error "--from onto itself" "itself" --from "$TMP/tiny-llama-f32.gguf" --type q8_0 -o "$TMP/tiny-llama-f32.gguf"
head -c 100 "$TMP/tiny-llama-f32.gguf" >"$TMP/trunc.gguf"
expect_error "--from truncated file" "error" --from "$TMP/trunc.gguf" --type q8_0 -o "$TMP/e.gguf"
expect_error "unwritable output" "cannot create" --preset tiny-llama -o "$TMP/no/such/dir/x.gguf"
if [ -c /dev/full ] && [ -w /dev/full ]; then
    expect_error "disk full" "No space" --preset tiny-llama -q -o /dev/full
    # a failed run removes its partial output, but never a device node
    if [ -c /dev/full ]; then ok; else bad "/dev/full is no longer a device after a failed run"; fi
fi
[ ! -e "$TMP/e.gguf" ] && ok || bad "a failed run left its output file behind"
if "$GEN" --help | grep -q -- "--from FILE"; then ok; else bad "--help"; fi

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
