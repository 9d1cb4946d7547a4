"""perf_summary.py - where the time of an inferkv-cli bench run goes, from a
`perf record -g` file (used by bench_4b.sh).

    perf_summary.py PERF.DATA

Reads every sample's call chain with `perf script`, drops the samples taken
while the model was loading or the context being set up (a call chain
through infer_model_load, model_open, gguf_open or infer_ctx_create: reading 2-4 GB into memory is
not part of a forward pass), and prints one JSON object: the samples kept,
the share dropped, the top leaf symbols (self time, percent of the samples
kept) and the same time grouped by what the code does:

  weight matmuls      the quantized dot-product tiles (q4kt_*, q6kt_*, ...)
                      and their driver
  activation quant    activations quantized per block for the integer dots
  attention           scores, softmax and the weighted sum over the KV cache
  norms/rope/ffn act  RMSNorm, RoPE, SwiGLU, residual adds
  thread pool         workers waiting, spinning or yielding between steps
                      (their sched_yield system calls included)
  kernel              the OS otherwise: page faults, interrupts, syscalls
  other
"""
import json
import re
import subprocess
import sys

SETUP = re.compile(r"^(infer_model_load|model_open|model_load\w*|gguf_open|infer_ctx_create|ctx_create\w*|"
                   r"kvpool_create\w*|infer_threadpool_create)$")
GROUPS = [
    ("weight matmuls", re.compile(r"^(q\d\w*t_\d+_\d+|q\d+_?\w*_dot\w*|drive|quant_matmul|mm_worker|matmul\w*|"
                                  r"linear\w*|f16t_\w+|f32t_\w+|bf16t_\w+|q\w+_tile\w*)$")),
    ("activation quant", re.compile(r"^(quant_act_prepare|prepare_row|prep_worker|quantize\w*|q8\w*_quant\w*)$")),
    ("attention", re.compile(r"(attend|attn|attention|softmax|^qk_|^pv_|kv_row)")),
    ("norms/rope/ffn act", re.compile(r"(rmsnorm|norm_worker|rope|qkv_post|swiglu|silu|axpy|expf|exp16|add_avx|gelu)")),
    ("thread pool", re.compile(r"^(worker|tp_run|run_group|cpu_relax|__sched_yield|sched_yield|pthread_\w+|"
                               r"__futex\w*|futex\w*|__lll_\w+)$")),
]


def group_of(frames):
    """The kind of the leaf frame; time in the OS goes to the kind of the
    user-space code that entered it when that is the thread pool (its
    sched_yield calls), else to "kernel"."""
    sym, dso = frames[0]
    if dso.startswith("[kernel"):
        user = next((f for f in frames if not f[1].startswith("[kernel")), None)
        if user and GROUPS[-1][1].search(user[0]):
            return "thread pool"
        return "kernel"
    for name, rx in GROUPS:
        if rx.search(sym):
            return name
    return "other"


def main():
    data = sys.argv[1]
    p = subprocess.run(["perf", "script", "--no-inline", "-i", data, "-F", "comm,tid,period,ip,sym,dso"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace")
    samples = []
    cur = None
    for line in p.stdout.splitlines():
        if not line.strip():
            if cur is not None:
                samples.append(cur)
            cur = None
            continue
        if not line.startswith((" ", "\t")):
            m = re.search(r"\s(\d+)\s*$", line)
            cur = {"period": int(m.group(1)) if m else 1, "frames": []}
            continue
        if cur is None:
            continue
        m = re.match(r"\s*[0-9a-f]+\s+(.+?)\s+\((.*)\)\s*$", line)
        if m:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
            dso = m.group(2)
            dso = "[kernel.kallsyms]" if "kernel" in dso else dso.rsplit("/", 1)[-1]
            cur["frames"].append((sym, dso))
    if cur is not None:
        samples.append(cur)
    total = sum(s["period"] for s in samples)
    kept = [s for s in samples if s["frames"] and not any(SETUP.match(f[0]) for f in s["frames"])]
    ktotal = sum(s["period"] for s in kept)
    by_sym, by_group = {}, {}
    for s in kept:
        sym, dso = s["frames"][0]
        by_sym[(sym, dso)] = by_sym.get((sym, dso), 0) + s["period"]
        g = group_of(s["frames"])
        by_group[g] = by_group.get(g, 0) + s["period"]
    top = sorted(by_sym.items(), key=lambda kv: -kv[1])[:15]
    out = {"samples": len(samples), "samples_kept": len(kept),
           "setup_share_dropped": round(1 - ktotal / total, 3) if total else None,
           "top": [{"symbol": k[0], "dso": k[1], "pct": round(100.0 * v / ktotal, 1)} for k, v in top] if ktotal else [],
           "groups": {k: round(100.0 * v / ktotal, 1) for k, v in sorted(by_group.items(), key=lambda kv: -kv[1])}
           if ktotal else {}}
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
