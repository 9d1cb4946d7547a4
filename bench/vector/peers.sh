#!/usr/bin/env bash
# peers.sh - the peer side of the vector (HNSW) benchmark: hnswlib and
# USearch on one dataset, same run, same machine, same vectors, same exact
# ground truth, so that inferkv's vector sets can be put next to them.
#
#   bench/vector/peers.sh DATA_DIR [--ef 10,20,40,80,160,320,640]
#                         [--min-time SECONDS] [--no-int8] [--json FILE]
#
# DATA_DIR is a dataset made by gen_vectors.py, for example
#   /usr/bin/python3 bench/vector/gen_vectors.py --kind clustered --n 20000 \
#       --dim 128 --queries 200 --out bench/out/vdata/clustered-20k-128
#
# Peers, all one thread, M (connectivity) 16, EF construction 200:
#   hnswlib       Debian libhnswlib-dev 0.6.2 from C++ (hnswlib_peer.cpp,
#                 compiled here with g++ -O3 -march=native into
#                 $build/bench/ when missing or older than its source)
#   usearch f32   npm usearch@2.26.2 from Node (usearch_peer.mjs), float32
#   usearch i8    the same, int8 storage with a per-vector scale as Redis Q8
#                 (--no-int8 skips it)
# USearch is installed with npm into .cache/usearch (git-ignored) when
# missing; when npm or node is unavailable its columns are skipped with a
# message, and the hnswlib figures still come out.
#
# For each EF: recall@10 and queries/s (hnswlib: one query per call from
# C++; USearch: "batch" = one call for all queries, library time, and "call"
# = one Node call per query, binding overhead included); queries/s is the
# median of repeated passes over the query set (the JSON also has the mean
# over all passes and the fastest pass).  Also inserts/s and
# memory per vector.  Printed as a table and written to
# bench/out/vector_peers.json (or --json FILE), with the load average
# before each peer ran.  Measurements, not assertions: the script fails only
# on a broken run.  On a shared machine, rerun a peer whose figures look off.
set -eu
usage() { sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
case $1 in -*) usage ;; esac
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
data=$(abs "$1"); shift
efs=${VBENCH_EF:-10,20,40,80,160,320,640}
min_time=${VBENCH_MIN_TIME:-1.0}
int8=1
dest=""
while [ $# -gt 0 ]; do
    case $1 in
    --ef) efs=$2; shift 2 ;;
    --min-time) min_time=$2; shift 2 ;;
    --no-int8) int8=0; shift ;;
    --json) dest=$(abs "$2"); shift 2 ;;
    *) echo "peers.sh: unknown option $1" >&2; usage ;;
    esac
done
cd "$(dirname "$0")/../.."
build=${INFERKV_BUILD:-build}
out=bench/out
mkdir -p "$out"
dest=${dest:-$out/vector_peers.json}

for f in base.f32 queries.f32 gt.i32 meta.json; do
    if [ ! -f "$data/$f" ]; then
        echo "peers.sh: $data/$f is missing; make the dataset first, e.g." >&2
        echo "  /usr/bin/python3 bench/vector/gen_vectors.py --kind clustered --n 20000 --dim 128 --queries 200 --out $data" >&2
        exit 2
    fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- hnswlib: compile the harness when missing or stale ----
peer=$build/bench/hnswlib_peer
src=bench/vector/hnswlib_peer.cpp
if [ ! -x "$peer" ] || [ "$src" -nt "$peer" ]; then
    if [ ! -f /usr/include/hnswlib/hnswlib.h ]; then
        echo "peers.sh: /usr/include/hnswlib/hnswlib.h missing (apt-get install libhnswlib-dev)" >&2
        exit 2
    fi
    mkdir -p "$build/bench"
    echo "== compiling $peer"
    g++ -O3 -march=native -std=c++17 -I/usr/include "$src" -o "$peer"
fi
hnswlib_version=$(dpkg-query -W -f '${Version}' libhnswlib-dev 2>/dev/null || echo unknown)

# ---- usearch: install into .cache/usearch when missing ----
usearch_dir=.cache/usearch/node_modules/usearch
usearch_skip=""
if ! command -v node >/dev/null; then
    usearch_skip="node is not installed"
elif [ ! -f "$usearch_dir/package.json" ]; then
    echo "== installing usearch@2.26.2 into .cache/usearch (npm)"
    mkdir -p .cache/usearch
    if ! timeout 300 npm install --no-audit --no-fund --prefix .cache/usearch usearch@2.26.2 >"$tmp/npm.log" 2>&1 ||
        [ ! -f "$usearch_dir/package.json" ]; then
        usearch_skip="npm could not install usearch@2.26.2 (registry unreachable?): $(grep -m 1 'npm error' "$tmp/npm.log" || tail -n 1 "$tmp/npm.log")"
    fi
fi
[ -z "$usearch_skip" ] || echo "peers.sh: skipping USearch: $usearch_skip" >&2

# ---- runs ----
echo "== hnswlib (C++) on $data, EF $efs"
cut -d' ' -f1-3 /proc/loadavg >"$tmp/hnswlib.load"
"$peer" "$data" --ef "$efs" --min-time "$min_time" >"$tmp/hnswlib.json"

run_usearch() { # name, extra args...
    local name=$1; shift
    echo "== usearch $name (node) on $data, EF $efs"
    local rc=0
    cut -d' ' -f1-3 /proc/loadavg >"$tmp/usearch_$name.load"
    node bench/vector/usearch_peer.mjs "$data" --ef "$efs" --min-time "$min_time" "$@" >"$tmp/usearch_$name.json" || rc=$?
    if [ $rc -eq 3 ]; then
        usearch_skip="the USearch addon did not load"; rm -f "$tmp/usearch_$name.json"
        echo "peers.sh: skipping USearch: $usearch_skip" >&2
    elif [ $rc -ne 0 ]; then
        echo "peers.sh: usearch_peer.mjs $name failed (exit $rc)" >&2; exit 1
    fi
}
if [ -z "$usearch_skip" ]; then run_usearch f32; fi
if [ -z "$usearch_skip" ] && [ $int8 -eq 1 ]; then run_usearch i8 --int8 redis; fi

# ---- table and JSON ----
/usr/bin/python3 - "$tmp" "$data" "$dest" "$hnswlib_version" "$usearch_skip" <<'PY'
import json, os, subprocess, sys
tmp, data, dest, hv, skip = sys.argv[1:6]
meta = json.load(open(os.path.join(data, "meta.json")))
peers = {}
for name, f in (("hnswlib", "hnswlib.json"), ("usearch_f32", "usearch_f32.json"), ("usearch_i8", "usearch_i8.json")):
    p = os.path.join(tmp, f)
    if os.path.exists(p):
        peers[name] = json.load(open(p))
        peers[name]["loadavg_before"] = open(p[:-len(".json")] + ".load").read().split()
peers["hnswlib"]["version"] = hv

def model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"

result = {"dataset": dict(meta, dir=data),
          "machine": {"nproc": int(subprocess.check_output(["nproc"]).strip()), "cpu": model(),
                      "loadavg": open("/proc/loadavg").read().split()[:3]},
          "peers": peers}
if skip:
    result["skipped"] = {"usearch": skip}

# summary: lowest EF reaching recall@10 >= 0.95, and queries/s there
def qps(entry):
    return entry.get("qps_median", entry.get("qps_batch_median"))
for name, p in peers.items():
    hit = next((e for e in p["search"] if e["recall"] >= 0.95), None)
    p["lowest_ef_recall_095"] = hit and {"ef": hit["ef"], "recall": hit["recall"], "qps_median": qps(hit)}

desc = "%s n=%d dim=%d queries=%d seed=%d" % (meta["kind"], meta["n"], meta["dim"], meta["queries"], meta["seed"])
if meta["kind"] == "clustered":
    desc += " spread=%g" % meta["spread"]
print("\n%s  (%s, %d cores, load %s)" % (desc, result["machine"]["cpu"], result["machine"]["nproc"],
                                         " ".join(result["machine"]["loadavg"])))
print("\n%-12s %10s %12s %12s  %s" % ("peer", "inserts/s", "B/vec rss", "B/vec index", "index bytes from"))
for name, p in peers.items():
    m = p["memory"]
    idx = m.get("layout_bytes_per_vector", m.get("serialized_bytes_per_vector"))
    how = "hnswlib layout" if "layout_bytes_per_vector" in m else "saved file"
    print("%-12s %10.0f %12.1f %12.1f  %s" % (name, p["inserts_per_s"], m["rss_bytes_per_vector"], idx, how))

cols = [("hnswlib", "hnswlib", ("qps_median",)),
        ("usearch_f32", "usearch f32", ("qps_batch_median", "qps_call_median")),
        ("usearch_i8", "usearch i8", ("qps_batch_median", "qps_call_median"))]
cols = [c for c in cols if c[0] in peers]
head1 = "%5s" % "EF"
head2 = "%5s" % ""
for key, label, fields in cols:
    width = 8 + 10 * len(fields)
    head1 += " | %-*s" % (width, label)
    head2 += " | %8s" % "recall" + "".join(" %9s" % ("q/s" if f == "qps_median" else "q/s " + f.split("_")[1]) for f in fields)
print("\nrecall@10 and queries/s (median pass; one thread)\n" + head1 + "\n" + head2)
efs = [e["ef"] for e in peers["hnswlib"]["search"]]
for i, ef in enumerate(efs):
    line = "%5d" % ef
    for key, label, fields in cols:
        e = peers[key]["search"][i]
        line += " | %8.4f" % e["recall"] + "".join(" %9.0f" % e[f] for f in fields)
    print(line)
print()
for name, p in peers.items():
    h = p["lowest_ef_recall_095"]
    print("%-12s lowest EF with recall@10 >= 0.95: %s" %
          (name, "EF %d (%.3f) at %.0f q/s" % (h["ef"], h["recall"], h["qps_median"]) if h else "none in the list"))
if skip:
    print("usearch skipped: " + skip)
json.dump(result, open(dest, "w"), indent=2)
print("\nwrote", dest)
PY
