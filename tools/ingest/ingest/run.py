"""One vector set's part of an inferkv-ingest run: its setup, plan and writes
on one server.

A plain run is one of these; a run with --shards N is N of them (corpus.py),
each a complete corpus of its own - its own records, meta and lock - so the
incremental logic (changed and deleted files, orphans, the lock, --dry-run,
--rebuild) is one piece of code for a shard and for a single set.

The phases are apart so that a sharded run checks and plans every shard, and
takes every lock it needs, before it writes to any of them:
  setup()     the set's state, the encoder, the option and layout checks
  prepare()   the plan over the files this set holds (and its lock when it
              will write)
  execute()   the writes, the meta, the lock released;  dry() instead with
              --dry-run
"""
import queue
import sys
import threading
import time

from . import VERSION
from . import index as ix
from . import walk as walker
from .index import IngestError, Keys

QUANTS = {"Q8": "int8", "BIN": "bin", "NOQUANT": "f32"}


class SetRun:
    """connect() opens a connection to the set's server; shard is (i, n) for shard i of n of the corpus
    `base`, None for a plain run; node names the server in messages."""

    def __init__(self, args, vset, connect, shard=None, base=None, node=""):
        self.args = args
        self.keys = Keys(vset)
        self.connect = connect
        self.r = connect()
        self.shard, self.base, self.node = shard, base, node
        self.errors = []
        self.lock = None
        # a sharded run's lines name the shard: the same path cannot be in two, but the reader wants to know
        self.tag = "%s: " % vset if shard else ""
        self.say = (lambda m: None) if args.quiet else (lambda m: sys.stderr.write(m + "\n"))

    # ---------------------------------------------------------------- setup

    def setup(self):
        a, r = self.args, self.r
        ms = ix.models(r)
        state = ix.State(r, self.keys)
        if state.kind not in ("none", "vectorset"):
            raise IngestError("%r holds a %s, not a vector set" % (self.keys.vset, state.kind))
        if not a.rebuild:
            self.check_layout(state.meta)
        emb = ix.pick_model(ms, "encoder", a.embedder, state.meta.get("embedder"), "embedder")
        enc = ix.Encoder(r, emb, ms[emb])
        max_chunk = a.max_chunk or min(enc.context, 512)
        if max_chunk > enc.context:
            raise IngestError("--max-chunk %d is over the context of %s (%d tokens)" % (max_chunk, emb, enc.context))
        if max_chunk - enc.specials < 8:
            raise IngestError("--max-chunk %d leaves fewer than 8 tokens of text" % max_chunk)
        overlap = a.overlap if a.overlap is not None else max_chunk // 8
        if overlap < 0 or overlap > (max_chunk - enc.specials) // 2:
            raise IngestError("--overlap must be 0..%d" % ((max_chunk - enc.specials) // 2))
        if a.max_bytes < 64:
            raise IngestError("--max-bytes must be at least 64")
        self.cfg = ix.Config(vset=self.keys.vset, embedder=emb, max_chunk=max_chunk, overlap=overlap,
                             max_bytes=a.max_bytes, quant=a.quant, jobs=a.jobs)
        self.enc = enc
        self.fp = ix.fingerprint(self.cfg, enc)
        if state.kind == "vectorset" and not a.rebuild:
            if state.dim != enc.dim:
                raise IngestError("%s holds %d-dimensional vectors (embedder %s), %s gives %d: use another --set, "
                                  "or --rebuild" % (self.keys.vset, state.dim, state.meta.get("embedder", "?"),
                                                    emb, enc.dim))
            if state.quant and state.quant != QUANTS[a.quant]:
                raise IngestError("%s is quantized %s; pass --quant %s (or --rebuild)" % (
                    self.keys.vset, state.quant, {v: k for k, v in QUANTS.items()}[state.quant]))
        self.state = state

    def check_layout(self, meta):
        """The set's meta says which corpus it belongs to: a run that would mix a single set with a shard,
        or shards of two splits, is refused (the records would describe another split of the files)."""
        vset, shards = self.keys.vset, meta.get("shards")
        if self.shard is None:
            if shards:
                base = meta.get("base", "?")
                raise IngestError("%s is shard %s of %s of the corpus %s (ingested with --shards %s): run with "
                                  "--set %s --shards %s, or pass --rebuild to make %s a single set" % (
                                      vset, meta.get("shard", "?"), shards, base, shards, base, shards, vset))
            return
        i, n = self.shard
        if meta and not shards:
            raise IngestError("%s holds a corpus ingested without --shards, not shard %d of %d of %s: "
                              "pass --rebuild to replace it" % (vset, i, n, self.base))
        if shards and (shards, meta.get("shard"), meta.get("base")) != (str(n), str(i), self.base):
            raise IngestError("%s is shard %s of %s of the corpus %s, not shard %d of %d of %s: pass --shards %s, "
                              "or --rebuild to split the corpus over %d shards" % (
                                  vset, meta.get("shard", "?"), shards, meta.get("base", "?"), i, n, self.base,
                                  shards, n))

    # ---------------------------------------------------------------- the plan

    def prepare(self, files, root):
        """Plans this set's files (FileData); takes the lock when the run will write."""
        a = self.args
        self.files, self.root = files, root
        state = self.state
        self.rebuilding = bool(a.rebuild and (state.kind != "none" or state.records or state.meta))
        if self.rebuilding:
            if not a.dry_run:
                self.take_lock()
            # planned as the empty set it will be once execute() deletes it
            state.records, state.elements, state.meta = {}, set(), {}
        plan = ix.Plan(state, files, self.fp, a.force)
        if not a.dry_run and not plan.empty() and not self.rebuilding:
            self.take_lock()
            self.state = state = ix.State(self.r, self.keys)      # the plan again, now that no other run writes
            plan = ix.Plan(state, files, self.fp, a.force)
        self.plan = plan

    def pending_files(self):
        """The files to chunk and embed, with their old records."""
        p = self.plan
        return [(fd, None) for fd in p.new] + [(fd, p.state_records.get(fd.rel)) for fd in p.changed]

    def take_lock(self):
        self.lock = ix.Lock(self.r, self.keys.lock)
        self.lock.acquire()

    def release(self):
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # ---------------------------------------------------------------- the writes

    def execute(self, prog, stop):
        """The writes (prog: the run's Progress; stop: set when the run is interrupted); the set's summary."""
        plan = self.plan
        try:
            if self.rebuilding:
                self.r.delete(self.keys.vset, self.keys.files, self.keys.meta)
            split = self.split_fields()
            if any(self.state.meta.get(k) != v for k, v in split.items()):
                # the split before the chunks: an interrupted first run still tells a later run with
                # another --shards (or none) that this set is a shard
                self.r.hset(self.keys.meta, mapping=split)
            if plan.empty():
                self.write_meta(only_if_missing=True)
            counts = self.apply(prog, stop)
            if not plan.empty():
                self.write_meta()
        finally:
            self.release()
        s = self.head()
        s.update(counts)
        s.update({"errors": len(self.errors), "orphans_adopted": sum(len(v) for v in plan.adopt.values()),
                  "elements": int(self.r.execute_command("VCARD", self.keys.vset))})
        return s

    def head(self):
        p = self.plan
        return {"set": self.keys.vset, "files": len(self.files), "new": len(p.new), "changed": len(p.changed),
                "unchanged": len(p.unchanged), "deleted": len(p.deleted)}

    def write_meta(self, only_if_missing=False):
        state = self.state
        want = {"embedder": self.cfg.embedder, "dim": str(self.enc.dim), "context": str(self.enc.context),
                "max_chunk": str(self.cfg.max_chunk), "overlap": str(self.cfg.overlap),
                "max_bytes": str(self.cfg.max_bytes), "quant": self.cfg.quant, "cfg": self.fp,
                "root": self.root, "version": VERSION}
        want.update(self.split_fields())
        if only_if_missing and all(state.meta.get(k) == v for k, v in want.items()):
            return
        # nothing ingested: no bookkeeping keys either - but a shard that got no files still records the
        # split, so that a later run with another --shards (or none) finds it and refuses
        if only_if_missing and not state.records and not self.shard:
            return
        want["files"] = str(len(self.files))
        want["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.r.hset(self.keys.meta, mapping=want)

    def split_fields(self):
        """What a shard's meta says of the split (nothing for a plain run's set)."""
        if not self.shard:
            return {}
        return {"shards": str(self.shard[1]), "shard": str(self.shard[0]), "base": self.base}

    def apply(self, prog, stop):
        a = self.args
        plan = self.plan
        w = ix.Writer(self.r, self.keys, self.cfg, self.enc, self.fp)
        counts = {"chunks_written": 0, "chunks_kept": 0, "chunks_removed": 0, "orphans_removed": 0}
        for rel, rec in plan.deleted:
            n = w.delete(rel, rec)
            counts["chunks_removed"] += n
            if a.verbose:
                prog.message("%sdeleted %s (%d chunks)" % (self.tag, rel, n))
        if plan.orphans:
            counts["orphans_removed"] = w.orphans(plan.orphans)
            if a.verbose:
                prog.message("%sremoved %d orphan elements" % (self.tag, len(plan.orphans)))
        pending = self.pending_files()
        if pending:
            self.write_files(pending, counts, prog, stop)
        return counts

    def write_files(self, pending, counts, prog, stop):
        """File workers (read, chunk, tokenize, then VREM and the record, each on its own connection)
        and a pool of connections for the embeddings, both --jobs wide."""
        a = self.args
        plan = self.plan
        q = queue.Queue()
        # big files first: they take longest, and the small ones then fill the gaps at the end
        for item in sorted(pending, key=lambda t: -t[0].size):
            q.put(item)
        lock = threading.Lock()
        pool = ix.Pool(self.cfg.jobs, self.connect)

        def worker():
            r = self.connect()
            w = ix.Writer(r, self.keys, self.cfg, self.enc, self.fp, pool)
            while not stop.is_set():
                try:
                    fd, rec = q.get_nowait()
                except queue.Empty:
                    return
                prog.start_file(fd.rel)
                done = [0.0]

                def sent(n, total, fd=fd, done=done):
                    share = fd.size * n / max(total, 1)
                    done[0] += share
                    prog.add(nbytes=share, chunks=n)

                try:
                    fresh = walker.read(self.root, fd.rel, a.max_file_size)
                    if fresh.skip:
                        raise IngestError("%s: %s" % (fd.rel, fresh.skip))
                    wrote, kept, removed, _ = w.file(fresh, rec, plan.present, plan.adopt.get(fd.rel, ()),
                                                     sent=sent)
                    with lock:
                        counts["chunks_written"] += wrote
                        counts["chunks_kept"] += kept
                        counts["chunks_removed"] += removed
                    if a.verbose:
                        prog.message("%s%s %s: %d chunks written, %d kept, %d removed" % (
                            self.tag, "updated" if rec else "added", fd.rel, wrote, kept, removed))
                except Exception as e:  # noqa: BLE001 - reported, the run goes on with other files
                    with lock:
                        self.errors.append(str(e))
                    prog.message("inferkv-ingest: error: %s%s" % (self.tag, e))
                prog.add(files=1, nbytes=max(0.0, fd.size - done[0]))

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(self.cfg.jobs, len(pending)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pool.close()

    # ---------------------------------------------------------------- --dry-run

    def dry(self):
        """The plan's numbers (and with -v each file and chunk on stdout); writes nothing."""
        a = self.args
        plan = self.plan
        w = ix.Writer(self.r, self.keys, self.cfg, self.enc, self.fp)
        would = 0
        for fd, rec in self.pending_files():
            fresh = walker.read(self.root, fd.rel, a.max_file_size)
            wrote, kept, removed, names = w.file(fresh, rec, plan.present, plan.adopt.get(fd.rel, ()),
                                                 dry=True)
            would += wrote
            if a.verbose:
                print("%s%s %s: %d chunks to write, %d kept, %d to remove" % (
                    self.tag, "update" if rec else "add", fd.rel, wrote, kept, removed))
                for n in names:
                    print("    " + n)
        for rel, rec in plan.deleted:
            if a.verbose:
                print("%sdelete %s (%d chunks)" % (self.tag, rel, len(rec["chunks"])))
        s = self.head()
        s.update({"chunks_to_write": would, "chunks_to_remove": sum(len(r["chunks"]) for _, r in plan.deleted),
                  "orphans": len(plan.orphans)})
        return s
