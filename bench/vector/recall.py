#!/usr/bin/python3
"""recall.py - recall@k of approximate nearest-neighbour results against the
exact ground truth of a dataset made by gen_vectors.py.

Why: every vector benchmark (the peers here, our library, our server through
VSIM) must score its answers the same way.  recall@k of one query is
|returned top-k  intersect  true top-k| / k; the figure is its mean over the
queries.  Results shorter than k (or padded with -1) count the missing ones
as misses, and duplicates count once.

Import it:
    sys.path.insert(0, "bench/vector")
    from recall import recall_at_k, load_ground_truth
    gt = load_ground_truth("bench/out/vdata/clustered-20k-128")
    r = recall_at_k(ids, gt, 10)      # ids: (queries, >=k) array or list of lists

Run it:
    recall.py DATA_DIR RESULTS [--k 10] [--json]
        RESULTS: an "IKVI" int32 matrix file (vecfile.py format), a .npy
        array, or text with one query per line, ids separated by blanks or
        commas ("-" reads stdin).
    recall.py DATA_DIR --check [--sample 50]
        recomputes the exact top-k of some queries by brute force and says
        whether gt.i32 agrees (a dataset sanity check).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vecfile  # noqa: E402


def load_ground_truth(data_dir):
    """The (queries, 100) int32 array of exact neighbour ids of a dataset."""
    return np.asarray(vecfile.read_matrix(os.path.join(data_dir, "gt.i32")))


def per_query_recall(result_ids, gt_ids, k=10):
    """recall@k of every query, as a float array."""
    gt_ids = np.asarray(gt_ids)
    if gt_ids.ndim != 2 or gt_ids.shape[1] < k:
        raise ValueError("ground truth of shape %s has fewer than k=%d columns" % (gt_ids.shape, k))
    if len(result_ids) != gt_ids.shape[0]:
        raise ValueError("%d result rows for %d queries" % (len(result_ids), gt_ids.shape[0]))
    out = np.empty(gt_ids.shape[0])
    for q, row in enumerate(result_ids):
        got = set(int(v) for v in list(row)[:k] if int(v) >= 0)
        out[q] = len(got.intersection(gt_ids[q, :k].tolist())) / k
    return out


def recall_at_k(result_ids, gt_ids, k=10):
    """Mean recall@k over the queries (see the module doc)."""
    return float(per_query_recall(result_ids, gt_ids, k).mean())


def read_results(path):
    if path == "-":
        lines = sys.stdin.read().splitlines()
    elif path.endswith(".npy"):
        return np.load(path)
    else:
        with open(path, "rb") as f:
            head = f.read(4)
        if head in (vecfile.MAGIC_I32, vecfile.MAGIC_F32):
            return np.asarray(vecfile.read_matrix(path)).astype(np.int64)
        with open(path) as f:
            lines = f.read().splitlines()
    return [[int(t) for t in line.replace(",", " ").split()] for line in lines if line.strip()]


def check(data_dir, sample, k):
    base = vecfile.read_matrix(os.path.join(data_dir, "base.f32"))
    queries = vecfile.read_matrix(os.path.join(data_dir, "queries.f32"))
    gt = load_ground_truth(data_dir)
    picks = np.linspace(0, queries.shape[0] - 1, min(sample, queries.shape[0])).astype(int)
    q = np.asarray(queries[picks], dtype=np.float64)
    scores = np.zeros((len(picks), base.shape[0]))
    for s in range(0, base.shape[0], 65536):
        scores[:, s:s + 65536] = q @ np.asarray(base[s:s + 65536], dtype=np.float64).T
    ids = np.arange(base.shape[0])
    exact = [np.lexsort((ids, -scores[r]))[:k] for r in range(len(picks))]
    r = recall_at_k(exact, gt[picks], k)
    order_ok = all((exact[r_][:k] == gt[p, :k]).all() for r_, p in enumerate(picks))
    print("check %s: %d queries, brute-force top-%d vs gt.i32: recall %.4f, same order: %s" %
          (data_dir, len(picks), k, r, "yes" if order_ok else "no"))
    return 0 if r == 1.0 else 1


def main():
    ap = argparse.ArgumentParser(description="recall@k against a dataset's ground truth")
    ap.add_argument("data_dir")
    ap.add_argument("results", nargs="?")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="print a JSON object")
    ap.add_argument("--check", action="store_true", help="verify gt.i32 by brute force")
    ap.add_argument("--sample", type=int, default=50, help="queries for --check")
    a = ap.parse_args()
    try:
        if a.check:
            return check(a.data_dir, a.sample, a.k)
        if not a.results:
            ap.error("give RESULTS, or --check")
        gt = load_ground_truth(a.data_dir)
        per = per_query_recall(read_results(a.results), gt, a.k)
    except (OSError, ValueError, vecfile.FormatError) as e:
        print("recall.py: %s" % e, file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps({"k": a.k, "queries": len(per), "recall": round(float(per.mean()), 4),
                          "min": round(float(per.min()), 4)}))
    else:
        print("recall@%d %.4f over %d queries (worst query %.2f)" % (a.k, per.mean(), len(per), per.min()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
