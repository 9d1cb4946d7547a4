"""The corpus an inferkv-ingest run writes: one vector set, or with --shards N
the N shard sets of a base name spread over a Redis Cluster's primaries
(docs/ingest.md, "Sharding over a Redis Cluster").

What this adds around the per-set runs (run.py): the sets and the node each
lives on (topology.py; the names from clients/python/inferkv/shards.py,
the one implementation of the naming rule, which the cluster client that
searches the shards uses too); which file goes to which shard; refusing a
run whose split differs from what the servers hold (another shard count, a
single set where shards are asked for, or the reverse) unless --rebuild,
which then deletes the old split; --load on every node; the walk, once;
every set checked and planned before any is written; the writes (each
node's sets one after the other, the nodes at once); the summary.
"""
import json
import os
import sys
import threading
import time
import zlib

import redis
from inferkv.shards import shard_set, shard_sets  # clients/python: on sys.path through inferkv-ingest

from . import index as ix
from . import walk as walker
from .index import IngestError, Keys, ModelMissing
from .progress import Progress
from .run import SetRun
from .topology import Topology

MAX_SHARDS = 256   # --shards at most; also how far a run looks for another split of the corpus


def shard_of(rel, n):
    """The shard of a file: CRC-32 of its relative path, so a file stays in its shard from run to run."""
    return zlib.crc32(rel.encode("utf-8")) % n


def has_tag(name):
    return "{" in name or "}" in name


def explain(e):
    """An error as ingest_main words it, for a message that also names the set and node."""
    if isinstance(e, redis.exceptions.ConnectionError):
        return "cannot talk to the server: %s" % e
    if isinstance(e, redis.exceptions.ResponseError):
        return "the server answered: %s" % e
    return str(e)


class Corpus:
    def __init__(self, args, r, connect):
        self.args = args
        self.t0 = time.time()
        self.say = (lambda m: None) if args.quiet else (lambda m: sys.stderr.write(m + "\n"))
        self.topo = Topology(r, connect)
        self.base = args.set
        self.n = args.shards
        if self.n is None:
            node = self.topo.node_of(Keys(args.set).vset)
            self.runs = [SetRun(args, args.set, self.topo.connector(node), node=node)]
        else:
            self.runs = []
            for i, name in enumerate(shard_sets(self.base, self.n)):
                node = self.topo.node_of(name)
                self.runs.append(SetRun(args, name, self.topo.connector(node), shard=(i, self.n), base=self.base,
                                        node=node))

    def guard(self, run, fn, *a):
        """fn(*a); an error of a shard's names the shard and its node (a plain run's reads as before)."""
        if run.shard is None:
            return fn(*a)
        try:
            return fn(*a)
        except (IngestError, redis.exceptions.RedisError) as e:
            msg = "%s on %s: %s" % (run.keys.vset, run.node, explain(e))
            if isinstance(e, ModelMissing):
                msg += " (every node that holds a shard needs the encoder loaded)"
            raise IngestError(msg) from e

    # ---------------------------------------------------------------- the run

    def run(self):
        a = self.args
        self.load_models()
        other = self.other_splits()
        errs = []
        for run in self.runs:          # all of them: an encoder missing on two nodes is one message
            try:
                self.guard(run, run.setup)
            except IngestError as e:
                if self.n is None:
                    raise
                errs.append(str(e))
        if errs:
            raise IngestError(errs[0] if len(errs) == 1 else "\n  ".join(["%d shards cannot run:" % len(errs)] + errs))
        self.same_encoder()
        self.warn_shared_primaries()
        root, files, skipped = self.walk()
        parts = [[] for _ in self.runs]
        for fd in files:
            parts[shard_of(fd.rel, self.n) if self.n else 0].append(fd)
        try:
            for run, part in zip(self.runs, parts):
                self.guard(run, run.prepare, part, root)
            self.delete_splits(other)
            if a.dry_run:
                sums = [self.guard(run, run.dry) for run in self.runs]
            else:
                sums = self.execute()
        finally:
            for run in self.runs:
                run.release()
        self.report(self.summary(root, files, skipped, sums))
        return 1 if any(s.get("errors") for s in sums) else 0

    def load_models(self):
        """--load NAME=FILE on every node that holds a set, all at once (INFER.LOAD blocks until loaded)."""
        if not self.args.load:
            return
        ix.load_specs(self.args.load)        # a malformed one is said once, not once per node
        nodes = sorted({run.node for run in self.runs})
        errs = {}

        def one(node):
            try:
                ix.load_models(self.topo.conn(node), self.args.load)
            except (IngestError, redis.exceptions.RedisError) as e:
                errs[node] = e

        ts = [threading.Thread(target=one, args=(n,), daemon=True) for n in nodes]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errs and self.n is None:
            raise errs[nodes[0]]
        if errs:
            raise IngestError("--load: " + "; ".join("on %s: %s" % (n, explain(e)) for n, e in sorted(errs.items())))

    def same_encoder(self):
        """Every shard must embed with one model: a search compares scores across shards."""
        seen = {}
        for run in self.runs:
            key = (run.cfg.embedder, run.enc.path, run.enc.dim, run.cfg.max_chunk, run.cfg.overlap)
            seen.setdefault(key, []).append(run)
        if len(seen) > 1:
            raise IngestError("the shards' nodes do not agree on the encoder: %s; load the same model file "
                              "under one name on every node, or name it with --embedder" % "; ".join(
                                  "%s (%s, %d dimensions, max-chunk %d) on %s" % (
                                      k[0], k[1] or "?", k[2], k[3], ", ".join(r.node for r in runs))
                                  for k, runs in seen.items()))

    def warn_shared_primaries(self):
        """Two shards on one primary share its encoder and memory, which defeats the split."""
        if self.n is None or not self.topo.cluster:
            return
        by_node = {}
        for run in self.runs:
            by_node.setdefault(run.node, []).append(run.keys.vset)
        crowded = {n: v for n, v in by_node.items() if len(v) > 1}
        if not crowded:
            return
        where = "; ".join("%s holds %s" % (n, ", ".join(v)) for n, v in sorted(crowded.items()))
        m = len(self.topo.primaries())
        why = ("more shards than the cluster's %d primaries" % m if self.n > m else
               "the cluster's slots are not spread evenly over its %d primaries (redis-cli --cluster rebalance)" % m)
        self.say("inferkv-ingest: warning: %d shards land on %d primaries: %s: %s; the shards of one primary "
                 "share its encoder, one after the other" % (self.n, len(by_node), why, where))

    def walk(self):
        a = self.args
        flt = walker.Filter(a.include, a.exclude, not a.no_default_excludes)
        root = os.path.abspath(a.root)
        taken, skipped = [], []
        for rel in walker.walk(root, flt):
            fd = walker.read(root, rel, a.max_file_size)
            if fd.skip:
                skipped.append(fd)
                self.say("inferkv-ingest: skipped %s: %s" % (fd.rel, fd.skip))
            else:
                fd.text = None            # read again when it is chunked: a big tree need not fit in memory
                taken.append(fd)
        return root, taken, skipped

    def execute(self):
        """Each node's sets one after the other (they share its encoder), the nodes at once; one progress
        line for all.  Ctrl-C stops taking files everywhere (the locks are released by run())."""
        pending = [item for run in self.runs for item in run.pending_files()]
        prog = Progress(len(pending), sum(fd.size for fd, _ in pending), quiet=self.args.quiet)
        stop = threading.Event()
        by_node = {}
        for run in self.runs:
            by_node.setdefault(run.node, []).append(run)
        sums, failed = {}, []

        def node_worker(runs):
            for run in runs:
                if stop.is_set():
                    return
                try:
                    sums[run.keys.vset] = run.execute(prog, stop)
                except Exception as e:  # noqa: BLE001 - raised on the main thread below
                    failed.append((run, e))

        threads = [threading.Thread(target=node_worker, args=(runs,), daemon=True) for runs in by_node.values()]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            stop.set()
            prog.finish()
            raise
        prog.finish()
        if failed:
            if self.n is None:
                raise failed[0][1]
            raise IngestError("; ".join("%s on %s: %s" % (run.keys.vset, run.node, explain(e))
                                        for run, e in failed))
        return [sums[run.keys.vset] for run in self.runs]

    # ---------------------------------------------------------------- other splits of the corpus

    def other_splits(self):
        """What the servers hold of the corpus besides the split asked for: the single set named after the
        base (with --shards), and the shard counts whose shard 0 is found (any run).  Refused unless
        --rebuild; then (names, what) to delete.  Shard 0 of every split writes its meta, even with no files,
        so it is what is looked for."""
        base = self.base
        if has_tag(base):
            return [], ""
        found = {}
        single = False
        if self.n is not None:
            k = Keys(base)
            meta = self.topo.conn(self.topo.node_of(k.meta)).hgetall(k.meta)
            single = bool(meta) and b"shards" not in meta
        for name in sorted({shard_set(base, 0, m) for m in range(1, MAX_SHARDS + 1)}):
            k = Keys(name)
            r = self.topo.conn(self.topo.node_of(k.meta))
            got = [ix.s(v) for v in r.hmget(k.meta, "shards", "shard", "base")]
            m = int(got[0]) if got[0] and got[0].isdigit() else None
            if (m and m != self.n and got[1:] == ["0", base] and m <= MAX_SHARDS and
                    shard_set(base, 0, m) == name):
                found[m] = shard_sets(base, m)
        if not single and not found:
            return [], ""
        splits = ", ".join("%d shards (%s)" % (m, ", ".join(v)) for m, v in sorted(found.items()))
        if not self.args.rebuild:
            if self.n is None:
                raise IngestError("the corpus %s is split over %s: pass --shards %d, or --rebuild to delete the "
                                  "shards and make %s a single set" % (base, splits, min(found), base))
            if single:
                raise IngestError("the corpus %s is a single vector set (ingested without --shards): pass --rebuild "
                                  "to delete it and split the corpus over %d shards" % (base, self.n))
            raise IngestError("the corpus %s is split over %s, not %d: pass --shards %d, or --rebuild to delete "
                              "them and split it over %d" % (base, splits, self.n, min(found), self.n))
        mine = {run.keys.vset for run in self.runs}   # rebuilt by their own runs
        names = ([base] if single else []) + sorted({n for v in found.values() for n in v} - mine)
        what = " and ".join((["the single set %s" % base] if single else []) +
                            (["the split over %s" % " and ".join("%d shards" % m for m in sorted(found))]
                             if found else []))
        return names, what

    def delete_splits(self, other):
        """--rebuild: deletes the sets of another split of the corpus, each under its own lock."""
        names, what = other
        if not names:
            return
        where = ", ".join("%s on %s" % (n, self.topo.node_of(n)) for n in names)
        if self.args.dry_run:
            self.say("inferkv-ingest (dry run): --rebuild would delete %s: %s" % (what, where))
            return
        locks = []
        try:
            for name in names:          # every lock first: a run holding one stops this before any delete
                k = Keys(name)
                locks.append((k, ix.Lock(self.topo.conn(self.topo.node_of(k.vset)), k.lock)))
                locks[-1][1].acquire()
            for k, lock in locks:
                lock.r.delete(k.vset, k.files, k.meta)
        finally:
            for _, lock in locks:
                lock.release()
        self.say("inferkv-ingest: --rebuild deleted %s: %s" % (what, where))
        self.deleted_sets = names

    # ---------------------------------------------------------------- output

    def summary(self, root, files, skipped, sums):
        cfg = self.runs[0].cfg
        s = {"set": self.base, "root": root, "embedder": cfg.embedder, "max_chunk": cfg.max_chunk,
             "overlap": cfg.overlap, "files": len(files), "skipped": len(skipped)}
        if self.args.dry_run:
            s["dry_run"] = True
        if self.n is None:
            s.update({k: v for k, v in sums[0].items() if k not in ("set", "files")})
        else:
            for k in sums[0]:
                if k not in ("set", "files"):
                    s[k] = sum(x[k] for x in sums)
            s["shards"] = [dict(x, shard=run.shard[0], node=run.node) for run, x in zip(self.runs, sums)]
        if getattr(self, "deleted_sets", None):
            s["deleted_sets"] = self.deleted_sets
        s["seconds"] = round(time.time() - self.t0, 2)
        return s

    def report(self, s):
        if self.args.json:
            print(json.dumps(s, sort_keys=True))
            return
        if self.args.quiet:
            return
        dry = s.get("dry_run")
        for x in s.get("shards", []):
            print("  shard %d %s on %s: %d files: %d new, %d changed, %d unchanged, %d deleted; %s" % (
                x["shard"], x["set"], x["node"], x["files"], x["new"], x["changed"], x["unchanged"], x["deleted"],
                "would write %d chunks, remove %d (+%d orphans)" % (
                    x["chunks_to_write"], x["chunks_to_remove"], x["orphans"]) if dry else
                "chunks: %d written, %d kept, %d removed; %d elements; %d errors" % (
                    x["chunks_written"], x["chunks_kept"], x["chunks_removed"], x["elements"], x["errors"])))
        name = s["set"] if "shards" not in s else "%s (%d shards)" % (s["set"], len(s["shards"]))
        if dry:
            print("inferkv-ingest (dry run): %s <- %s: %d files: %d new, %d changed, %d unchanged, %d deleted; "
                  "%d skipped; would write %d chunks, remove %d (+%d orphans)" % (
                      name, s["root"], s["files"], s["new"], s["changed"], s["unchanged"], s["deleted"],
                      s["skipped"], s["chunks_to_write"], s["chunks_to_remove"], s["orphans"]))
            return
        print("inferkv-ingest: %s <- %s: %d files: %d new, %d changed, %d unchanged, %d deleted; %d skipped; "
              "chunks: %d written, %d kept, %d removed, %d orphans removed; %d elements; %d errors; %.1f s" % (
                  name, s["root"], s["files"], s["new"], s["changed"], s["unchanged"], s["deleted"],
                  s["skipped"], s["chunks_written"], s["chunks_kept"], s["chunks_removed"], s["orphans_removed"],
                  s["elements"], s["errors"], s["seconds"]))
