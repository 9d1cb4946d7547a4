#!/usr/bin/python3
"""gen_vectors.py - synthetic datasets and exact ground truth for the vector
(HNSW) benchmark.

Why: vector-set figures (ours and the peers', hnswlib and USearch) only
compare when every engine indexes the same vectors and is scored against the
same exact answers.  This script writes one dataset directory that all of
them read (format: bench/vector/vecfile.py):

    base.f32 (n x dim), queries.f32 (q x dim), gt.i32 (q x 100),
    gt_scores.f32 (q x 100), meta.json

Kinds (all vectors L2-normalised, so cosine = inner product):

  uniform    directions uniform on the unit sphere (a normalised standard
             Gaussian).  In 128+ dimensions every point is nearly equidistant
             from every other one: the hard case for any graph index.
  clustered  100 clusters.  Centers are uniform on the sphere; a vector is
             normalise(center + e) with e ~ N(0, sigma^2 I), sigma per
             coordinate = spread / sqrt(dim), spread 0.5 by default.  So the
             noise has norm ~0.5 whatever the dimension: a member sits at
             cosine ~0.89 from its center, two members of one cluster at
             ~0.80, members of different clusters at ~0 (+-3/sqrt(dim)).
             Clusters are well apart, yet inside a cluster the noise is a
             full-rank Gaussian, so a query's top-10 is decided by real
             (small) differences, not by which cluster it hit: neighbours are
             meaningful and not trivial.  Change it with --spread.

Queries come from the same distribution (cluster picked at random, fresh
noise) from their own random stream: they are not members of the base set.
Everything is deterministic for a given --seed (and the same numpy).

Ground truth: exact top-100 by cosine for every query, as int32 row numbers
of base.f32, best first (ties broken by lower id).  Blocked: queries in
blocks, base in chunks, running top-128 per query in float32 matrix
products, then the candidates rescored in float64 and the best 100 kept, so
the order is exact and memory stays bounded: 100k x 768 with 1000 queries
peaks at ~0.7 GB resident, 0.3 GB of it the mapped base.  Time goes to the
matrix products: with Debian's reference BLAS (the default here) that set
takes ~90 s on this machine and 100k x 128 ~8 s; OpenBLAS would be far
quicker.

Usage:
  /usr/bin/python3 bench/vector/gen_vectors.py --kind clustered --n 100000 \
      --dim 128 --queries 1000 --seed 1 --out bench/out/vdata/clustered-100k-128
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vecfile  # noqa: E402

GT_K = 100
CANDIDATES = 128  # float32 top-k kept before the float64 rescoring
CHUNK = 16384     # rows generated / scanned at a time
CLUSTERS = 100


def log(msg):
    print("[gen_vectors] " + msg, file=sys.stderr, flush=True)


def normalise(x):
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32)


def sampler(kind, dim, seed, spread):
    """A function (rng, rows) -> (rows, dim) float32 unit vectors."""
    if kind == "uniform":
        return lambda rng, rows: normalise(rng.standard_normal((rows, dim), dtype=np.float32))
    centers = normalise(np.random.default_rng([seed, 2]).standard_normal((CLUSTERS, dim)))
    sigma = spread / np.sqrt(dim)

    def draw(rng, rows):
        which = rng.integers(0, CLUSTERS, rows)
        noise = rng.standard_normal((rows, dim), dtype=np.float32) * np.float32(sigma)
        return normalise(centers[which] + noise)
    return draw


def write_rows(path, rows, dim, draw, rng, what):
    w = vecfile.MatrixWriter(path, rows, dim, "f32")
    t0 = time.time()
    for start in range(0, rows, CHUNK):
        w.write(draw(rng, min(CHUNK, rows - start)))
        if rows > 4 * CHUNK and (start // CHUNK) % 8 == 7:
            log("%s: %d / %d rows" % (what, start + CHUNK, rows))
    w.close()
    log("%s: %d x %d written in %.1fs" % (what, rows, dim, time.time() - t0))


def ground_truth(base, queries, k):
    """Exact top-k (ids, scores) by inner product, best first."""
    n, q = base.shape[0], queries.shape[0]
    c = min(CANDIDATES, n)
    k = min(k, n)
    # queries per block: keep a block x chunk score matrix around 64 MB
    qb = max(1, min(q, (64 << 20) // (4 * min(n, CHUNK * 4))))
    bchunk = min(n, CHUNK * 4)
    ids = np.empty((q, k), dtype=np.int32)
    scores = np.empty((q, k), dtype=np.float32)
    t0, last = time.time(), time.time()
    for qs in range(0, q, qb):
        qv = np.asarray(queries[qs:qs + qb], dtype=np.float32)
        best_s = np.full((qv.shape[0], 0), -np.inf, dtype=np.float32)
        best_i = np.empty((qv.shape[0], 0), dtype=np.int64)
        for bs in range(0, n, bchunk):
            xb = np.asarray(base[bs:bs + bchunk], dtype=np.float32)
            s = qv @ xb.T
            take = min(c, s.shape[1])
            part = np.argpartition(-s, take - 1, axis=1)[:, :take]
            cand_s = np.concatenate([best_s, np.take_along_axis(s, part, axis=1)], axis=1)
            cand_i = np.concatenate([best_i, part + bs], axis=1)
            keep = min(c, cand_s.shape[1])
            sel = np.argpartition(-cand_s, keep - 1, axis=1)[:, :keep]
            best_s = np.take_along_axis(cand_s, sel, axis=1)
            best_i = np.take_along_axis(cand_i, sel, axis=1)
        # exact rescoring of the candidates in float64, then order by
        # (score descending, id ascending)
        for r in range(qv.shape[0]):
            rows = best_i[r]
            exact = np.asarray(base[np.sort(rows)], dtype=np.float64) @ qv[r].astype(np.float64)
            rows = np.sort(rows)
            order = np.lexsort((rows, -exact))[:k]
            ids[qs + r] = rows[order]
            scores[qs + r] = exact[order]
        if time.time() - last > 5:
            last = time.time()
            log("ground truth: %d / %d queries (%.0fs)" % (min(qs + qb, q), q, last - t0))
    log("ground truth: %d queries x top-%d in %.1fs" % (q, k, time.time() - t0))
    return ids, scores


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=("clustered", "uniform"), default="clustered")
    ap.add_argument("--n", type=int, default=100000, help="base vectors")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--spread", type=float, default=0.5,
                    help="clustered: norm of the Gaussian noise around a unit center "
                         "(sigma per coordinate = spread/sqrt(dim)); default 0.5")
    ap.add_argument("--out", required=True, help="dataset directory (created)")
    ap.add_argument("--force", action="store_true", help="rewrite even if the same set is there")
    a = ap.parse_args()
    if a.n < 1 or a.dim < 1 or a.queries < 1:
        ap.error("--n, --dim and --queries must be positive")

    meta = {"format": "bench/vector/vecfile.py v%d" % vecfile.VERSION, "kind": a.kind,
            "n": a.n, "dim": a.dim, "queries": a.queries, "seed": a.seed, "gt_k": min(GT_K, a.n),
            "metric": "cosine (vectors L2-normalised: inner product)",
            "numpy": np.__version__}
    if a.kind == "clustered":
        meta.update({"clusters": CLUSTERS, "spread": a.spread,
                     "sigma_per_coordinate": a.spread / np.sqrt(a.dim)})
    os.makedirs(a.out, exist_ok=True)
    meta_path = os.path.join(a.out, "meta.json")
    names = ("base.f32", "queries.f32", "gt.i32", "gt_scores.f32")
    if not a.force and os.path.exists(meta_path) and all(os.path.exists(os.path.join(a.out, f)) for f in names):
        old = json.load(open(meta_path))
        if all(old.get(key) == meta[key] for key in ("kind", "n", "dim", "queries", "seed")) and \
                old.get("spread") == meta.get("spread"):
            log("%s already holds this set; --force to rewrite" % a.out)
            return

    t0 = time.time()
    draw = sampler(a.kind, a.dim, a.seed, a.spread)
    base_path = os.path.join(a.out, "base.f32")
    query_path = os.path.join(a.out, "queries.f32")
    write_rows(base_path, a.n, a.dim, draw, np.random.default_rng([a.seed, 0]), "base")
    write_rows(query_path, a.queries, a.dim, draw, np.random.default_rng([a.seed, 1]), "queries")

    base = vecfile.read_matrix(base_path)
    queries = vecfile.read_matrix(query_path)
    ids, scores = ground_truth(base, queries, GT_K)
    vecfile.write_matrix(os.path.join(a.out, "gt.i32"), ids, "i32")
    vecfile.write_matrix(os.path.join(a.out, "gt_scores.f32"), scores, "f32")

    dup = int((scores[:, 0] > 1 - 1e-6).sum())
    meta.update({"queries_equal_to_a_base_vector": dup,
                 "gt_top1_cos_mean": round(float(scores[:, 0].mean()), 4),
                 "gt_top10_cos_mean": round(float(scores[:, min(9, scores.shape[1] - 1)].mean()), 4),
                 "gt_top100_cos_mean": round(float(scores[:, -1].mean()), 4),
                 "seconds": round(time.time() - t0, 1)})
    with open(meta_path + ".part", "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    os.replace(meta_path + ".part", meta_path)
    log("done: %s (top-1 cos %.3f, 10th %.3f, 100th %.3f) in %.1fs" %
        (a.out, meta["gt_top1_cos_mean"], meta["gt_top10_cos_mean"], meta["gt_top100_cos_mean"],
         meta["seconds"]))


if __name__ == "__main__":
    main()
