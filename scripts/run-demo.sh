#!/usr/bin/env bash
# run-demo.sh BUILD - what `make run` does: starts inferkv-server in the
# foreground on 127.0.0.1:${INFERKV_PORT:-6379} with a demo model loaded as
# "demo", so that INFER.GENERATE works at once.
#
# The model is stories260K from ../shared/models when present (a real tiny
# story model), else a model of the same shape written by gguf-gen into
# .cache/demo-models/ (random weights: the text is noise, the commands are
# real).  INFERKV_MODELS_DIR + INFERKV_MODEL pick another model (a path
# relative to that directory), e.g. a downloaded Qwen3-0.6B-Q8_0.gguf.
set -u
build=${1:-build}
cd "$(dirname "$0")/.."
port=${INFERKV_PORT:-6379}
shared=${INFERKV_SHARED:-../shared}
server=$build/inferkv-server
[ -x "$server" ] || { echo "run: $server is not built"; exit 1; }

if [ -n "${INFERKV_MODELS_DIR:-}" ]; then
    dir=$INFERKV_MODELS_DIR
    model=${INFERKV_MODEL:?set INFERKV_MODEL to a GGUF file inside INFERKV_MODELS_DIR}
elif [ -f "$shared/models/cozy-creator_python-gen-worker/stories260K.gguf" ]; then
    dir=$shared/models/cozy-creator_python-gen-worker
    model=stories260K.gguf
else
    dir=.cache/demo-models
    model=demo-stories260k-shape.gguf
    if [ ! -f "$dir/$model" ]; then
        mkdir -p "$dir"
        "$build/gguf-gen" --preset stories260k --seed 1 -q -o "$dir/$model" || exit 1
    fi
    echo "run: $shared/models is absent: serving a gguf-gen model with random weights ($dir/$model)"
fi

"$server" --bind 127.0.0.1 --port "$port" --infer-models-dir "$dir" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM
for _ in $(seq 100); do
    redis-cli -p "$port" PING >/dev/null 2>&1 && break
    kill -0 $pid 2>/dev/null || exit 1
    sleep 0.1
done
if out=$(redis-cli -p "$port" INFER.LOAD demo "$model" 2>&1) && [ "$out" = OK ]; then
    echo "run: model 'demo' loaded from $dir/$model; try:"
    echo "  redis-cli -p $port INFER.GENERATE demo \"Once upon a time\" MAXTOKENS 64"
else
    echo "run: INFER.LOAD demo $model failed: $out"
fi
wait $pid
