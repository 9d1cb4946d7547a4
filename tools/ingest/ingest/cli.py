"""The command lines: inferkv-ingest and inferkv-ask (see docs/ingest.md)."""
import argparse
import json
import os
import queue
import signal
import sys
import threading
import time

from . import VERSION
from . import index as ix
from . import walk as walker
from .index import IngestError, Keys
from .progress import Progress

QUANTS = {"Q8": "int8", "BIN": "bin", "NOQUANT": "f32"}


def _redis():
    try:
        import redis
    except ImportError:
        sys.stderr.write("needs redis-py: apt-get install python3-redis\n")
        sys.exit(2)
    return redis


def add_connection_args(p):
    g = p.add_argument_group("server")
    g.add_argument("--url", help="redis://[:password@]host:port[/db] (instead of --host/--port)")
    g.add_argument("--host", default=os.environ.get("INFERKV_HOST", "127.0.0.1"))
    g.add_argument("--port", "-p", type=int, default=int(os.environ.get("INFERKV_PORT", "6379")))
    g.add_argument("--password", "-a", default=os.environ.get("REDISCLI_AUTH"))
    g.add_argument("--set", default="docs", metavar="KEY",
                   help="the vector set (default docs); its bookkeeping keys share its hash tag: {docs}:files ...")
    g.add_argument("--load", action="append", default=[], metavar="NAME=FILE",
                   help="INFER.LOAD NAME FILE first unless NAME is loaded (FILE relative to infer-models-dir)")


def connect(args):
    redis = _redis()
    if args.url:
        return redis.Redis.from_url(args.url, socket_connect_timeout=10)
    return redis.Redis(host=args.host, port=args.port, password=args.password, socket_connect_timeout=10)


def size_arg(v):
    m = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    v = v.strip().lower().rstrip("b")
    if v and v[-1] in m:
        return int(float(v[:-1]) * m[v[-1]])
    return int(v)


# ================================================================ inferkv-ingest

def ingest_parser():
    p = argparse.ArgumentParser(
        prog="inferkv-ingest",
        description="Chunks a tree of source code and documents by structure, embeds each chunk with "
                    "INFER.EMBED ... INTO a vector set, and keeps the set in step with the tree on re-runs "
                    "(only changed files are re-embedded; deleted files' chunks are removed).")
    p.add_argument("root", help="the directory to ingest; chunks are keyed by paths relative to it")
    add_connection_args(p)
    p.add_argument("--embedder", "--model", dest="embedder", metavar="NAME",
                   help="the encoder model (INFER.MODELS); default: the one the set was built with, "
                        "else the only encoder loaded")
    p.add_argument("--max-chunk", type=int, metavar="TOKENS",
                   help="tokens per chunk, special tokens included (default: the encoder's context, at most 512)")
    p.add_argument("--overlap", type=int, metavar="TOKENS",
                   help="tokens repeated between neighbouring windows of a long function or section "
                        "(default: max-chunk / 8)")
    p.add_argument("--max-bytes", type=size_arg, default=16384, metavar="N",
                   help="bytes per chunk at most (default 16k)")
    p.add_argument("--max-file-size", type=size_arg, default=1 << 20, metavar="N",
                   help="larger files are skipped with a message (default 1m)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="only files matching one of these (repeatable): a name pattern ('*.c') or a path "
                        "pattern with '/' ('src/**')")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip these (repeatable)")
    p.add_argument("--no-default-excludes", action="store_true",
                   help="also walk hidden directories, build*/, node_modules/ ... and take files with "
                        "binary extensions (NUL bytes and non-UTF-8 still skip a file)")
    p.add_argument("--quant", choices=sorted(QUANTS), default="Q8", type=str.upper,
                   help="the set's quantization when it is created (default Q8)")
    p.add_argument("--jobs", "-j", type=int, default=8, help="connections writing at once (default 8)")
    p.add_argument("--force", action="store_true", help="re-chunk and re-check every file, changed or not")
    p.add_argument("--rebuild", action="store_true", help="delete the set and its records first")
    p.add_argument("--dry-run", "-n", action="store_true",
                   help="show what would change (chunks counted with the encoder's tokenizer); write nothing")
    p.add_argument("--verbose", "-v", action="store_true", help="one line per file written (or planned)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress, messages or summary; errors only")
    p.add_argument("--json", action="store_true", help="the summary as one JSON object on stdout")
    p.add_argument("--version", action="version", version="inferkv-ingest " + VERSION)
    return p


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def ingest_main(argv=None):
    args = ingest_parser().parse_args(argv)
    redis = _redis()
    signal.signal(signal.SIGTERM, _sigterm)     # as Ctrl-C: release the lock, say how to resume
    if not os.path.isdir(args.root):
        sys.stderr.write("inferkv-ingest: %s is not a directory\n" % args.root)
        return 2
    if args.jobs < 1 or args.jobs > 64:
        sys.stderr.write("inferkv-ingest: --jobs must be 1..64\n")
        return 2
    try:
        r = connect(args)
        r.ping()
        return Ingest(args, r).run()
    except IngestError as e:
        sys.stderr.write("inferkv-ingest: %s\n" % e)
        return 1
    except redis.exceptions.ConnectionError as e:
        sys.stderr.write("inferkv-ingest: cannot talk to the server: %s\n" % e)
        return 1
    except redis.exceptions.ResponseError as e:
        sys.stderr.write("inferkv-ingest: the server answered: %s\n" % e)
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\ninferkv-ingest: interrupted; files already written are recorded, "
                         "a re-run completes the rest\n")
        return 130


class Ingest:
    def __init__(self, args, r):
        self.args, self.r = args, r
        self.keys = Keys(args.set)
        self.t0 = time.time()
        self.errors = []
        self.say = (lambda m: None) if args.quiet else (lambda m: sys.stderr.write(m + "\n"))

    # ---------------------------------------------------------------- setup

    def setup(self):
        a, r = self.args, self.r
        if a.load:
            ix.load_models(r, a.load)
        ms = ix.models(r)
        state = ix.State(r, self.keys)
        if state.kind not in ("none", "vectorset"):
            raise IngestError("%r holds a %s, not a vector set" % (self.keys.vset, state.kind))
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
        return state

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

    # ---------------------------------------------------------------- the run

    def run(self):
        a = self.args
        state = self.setup()
        root, files, skipped = self.walk()
        self.root = root
        if a.rebuild and (state.kind != "none" or state.records or state.meta):
            if a.dry_run:
                state.records, state.elements = {}, set()
            else:
                self.lock = ix.Lock(self.r, self.keys.lock)
                self.lock.acquire()
                self.r.delete(self.keys.vset, self.keys.files, self.keys.meta)
                state = ix.State(self.r, self.keys)
        plan = ix.Plan(state, files, self.fp, a.force)
        summary = {"set": self.keys.vset, "root": root, "embedder": self.cfg.embedder,
                   "max_chunk": self.cfg.max_chunk, "overlap": self.cfg.overlap,
                   "files": len(files), "skipped": len(skipped)}
        if a.dry_run:
            return self.dry(plan, summary)
        lock = getattr(self, "lock", None)
        if plan.empty():
            self.write_meta(state, len(files), plan, only_if_missing=True)
        else:
            if lock is None:
                lock = self.lock = ix.Lock(self.r, self.keys.lock)
                lock.acquire()
            state = ix.State(self.r, self.keys)      # the plan again, now that no other run writes
            plan = ix.Plan(state, files, self.fp, a.force)
        try:
            counts = self.apply(plan)
            if not plan.empty():
                self.write_meta(state, len(files), plan)
        finally:
            if lock is not None:
                lock.release()
        summary.update(counts)
        summary.update({"new": len(plan.new), "changed": len(plan.changed), "unchanged": len(plan.unchanged),
                        "deleted": len(plan.deleted), "errors": len(self.errors),
                        "orphans_adopted": sum(len(v) for v in plan.adopt.values()),
                        "elements": int(self.r.execute_command("VCARD", self.keys.vset)),
                        "seconds": round(time.time() - self.t0, 2)})
        self.report(summary)
        return 1 if self.errors else 0

    def write_meta(self, state, nfiles, plan, only_if_missing=False):
        want = {"embedder": self.cfg.embedder, "dim": str(self.enc.dim), "context": str(self.enc.context),
                "max_chunk": str(self.cfg.max_chunk), "overlap": str(self.cfg.overlap),
                "max_bytes": str(self.cfg.max_bytes), "quant": self.cfg.quant, "cfg": self.fp,
                "root": self.root, "version": VERSION}
        if only_if_missing and all(state.meta.get(k) == v for k, v in want.items()):
            return
        if only_if_missing and not state.records:
            return                                     # nothing ingested: no bookkeeping keys either
        want["files"] = str(nfiles)
        want["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.r.hset(self.keys.meta, mapping=want)

    def apply(self, plan):
        a = self.args
        w = ix.Writer(self.r, self.keys, self.cfg, self.enc, self.fp)
        counts = {"chunks_written": 0, "chunks_kept": 0, "chunks_removed": 0, "orphans_removed": 0}
        for rel, rec in plan.deleted:
            n = w.delete(rel, rec)
            counts["chunks_removed"] += n
            if a.verbose:
                self.say("deleted %s (%d chunks)" % (rel, n))
        if plan.orphans:
            counts["orphans_removed"] = w.orphans(plan.orphans)
            if a.verbose:
                self.say("removed %d orphan elements" % len(plan.orphans))
        todo = [(fd, None) for fd in plan.new] + [(fd, plan.state_records.get(fd.rel)) for fd in plan.changed]
        if todo:
            self.write_files(todo, counts, plan)
        return counts

    def write_files(self, todo, counts, plan):
        """File workers (read, chunk, tokenize, then VREM and the record, each on its own connection)
        and a pool of connections for the embeddings, both --jobs wide."""
        a = self.args
        prog = Progress(len(todo), sum(fd.size for fd, _ in todo), quiet=a.quiet)
        q = queue.Queue()
        # big files first: they take longest, and the small ones then fill the gaps at the end
        for item in sorted(todo, key=lambda t: -t[0].size):
            q.put(item)
        lock = threading.Lock()
        stop = threading.Event()
        pool = ix.Pool(self.cfg.jobs, lambda: connect(a))

        def worker():
            r = connect(a)
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
                        prog.message("%s %s: %d chunks written, %d kept, %d removed" % (
                            "updated" if rec else "added", fd.rel, wrote, kept, removed))
                except Exception as e:  # noqa: BLE001 - reported, the run goes on with other files
                    with lock:
                        self.errors.append(str(e))
                    prog.message("inferkv-ingest: error: %s" % e)
                prog.add(files=1, nbytes=max(0.0, fd.size - done[0]))

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(self.cfg.jobs, len(todo)))]
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
        pool.close()
        prog.finish()

    # ---------------------------------------------------------------- output

    def dry(self, plan, summary):
        a = self.args
        w = ix.Writer(self.r, self.keys, self.cfg, self.enc, self.fp)
        would = 0
        for fd, rec in [(fd, None) for fd in plan.new] + [(fd, plan.state_records.get(fd.rel))
                                                         for fd in plan.changed]:
            fresh = walker.read(self.root, fd.rel, a.max_file_size)
            wrote, kept, removed, names = w.file(fresh, rec, plan.present, plan.adopt.get(fd.rel, ()),
                                                 dry=True)
            would += wrote
            if a.verbose:
                print("%s %s: %d chunks to write, %d kept, %d to remove" % ("update" if rec else "add", fd.rel,
                                                                           wrote, kept, removed))
                for n in names:
                    print("    " + n)
        for rel, rec in plan.deleted:
            if a.verbose:
                print("delete %s (%d chunks)" % (rel, len(rec["chunks"])))
        summary.update({"dry_run": True, "new": len(plan.new), "changed": len(plan.changed),
                        "unchanged": len(plan.unchanged), "deleted": len(plan.deleted),
                        "chunks_to_write": would, "chunks_to_remove": sum(len(r["chunks"]) for _, r in plan.deleted),
                        "orphans": len(plan.orphans), "seconds": round(time.time() - self.t0, 2)})
        self.report(summary)
        return 0

    def report(self, s):
        if self.args.json:
            print(json.dumps(s, sort_keys=True))
            return
        if self.args.quiet:
            return
        if s.get("dry_run"):
            print("inferkv-ingest (dry run): %s <- %s: %d files: %d new, %d changed, %d unchanged, %d deleted; "
                  "%d skipped; would write %d chunks, remove %d (+%d orphans)" % (
                      s["set"], s["root"], s["files"], s["new"], s["changed"], s["unchanged"], s["deleted"],
                      s["skipped"], s["chunks_to_write"], s["chunks_to_remove"], s["orphans"]))
            return
        print("inferkv-ingest: %s <- %s: %d files: %d new, %d changed, %d unchanged, %d deleted; %d skipped; "
              "chunks: %d written, %d kept, %d removed, %d orphans removed; %d elements; %d errors; %.1f s" % (
                  s["set"], s["root"], s["files"], s["new"], s["changed"], s["unchanged"], s["deleted"],
                  s["skipped"], s["chunks_written"], s["chunks_kept"], s["chunks_removed"], s["orphans_removed"],
                  s["elements"], s["errors"], s["seconds"]))


# ================================================================ inferkv-ask

def ask_parser():
    p = argparse.ArgumentParser(
        prog="inferkv-ask",
        description="Answers a question from a corpus written by inferkv-ingest (INFER.RAG ... WITHSOURCES) "
                    "and prints the answer and its sources (path:lines and score).")
    p.add_argument("question", nargs="+", help="the question (several words are joined by spaces)")
    add_connection_args(p)
    p.add_argument("--model", "-m", help="the generator (default: the only generator loaded)")
    p.add_argument("--embedder", "-e", help="the encoder (default: the one the corpus was ingested with)")
    p.add_argument("--count", "-k", type=int, default=5, help="chunks retrieved (default 5)")
    p.add_argument("--filter", "-f", metavar="EXPR",
                   help="a VSIM FILTER on the chunks' attributes, e.g. '.lang == \"rust\"' or '\"docs/\" in .path'")
    p.add_argument("--maxtokens", "-n", type=int, help="MAXTOKENS of the answer")
    p.add_argument("--temperature", "-t", type=float, help="TEMPERATURE (0: greedy)")
    p.add_argument("--seed", type=int, help="SEED")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the generator's chat template (CHAT)")
    p.add_argument("--stream", action="store_true", help="print the answer as it is generated (STREAM)")
    p.add_argument("--show-prompt", action="store_true", help="print the prompt the generator got (WITHPROMPT)")
    p.add_argument("--json", action="store_true", help="the answer and sources as one JSON object")
    return p


def ask_main(argv=None):
    args = ask_parser().parse_args(argv)
    redis = _redis()
    try:
        r = connect(args)
        r.ping()
        return ask(args, r)
    except IngestError as e:
        sys.stderr.write("inferkv-ask: %s\n" % e)
        return 1
    except redis.exceptions.ConnectionError as e:
        sys.stderr.write("inferkv-ask: cannot talk to the server: %s\n" % e)
        return 1
    except redis.exceptions.ResponseError as e:
        msg = str(e)
        if "does not exist" in msg and "vector set" in msg:
            msg += " (run inferkv-ingest first)"
        sys.stderr.write("inferkv-ask: %s\n" % msg)
        return 1
    except KeyboardInterrupt:
        return 130


def ask(args, r):
    keys = Keys(args.set)
    if args.load:
        ix.load_models(r, args.load)
    ms = ix.models(r)
    meta = {k.decode(): v.decode("utf-8", "replace") for k, v in r.hgetall(keys.meta).items()}
    emb = ix.pick_model(ms, "encoder", args.embedder, meta.get("embedder"), "embedder")
    gen = ix.pick_model(ms, "generator", args.model, None, "model")
    question = " ".join(args.question)
    cmd = ["INFER.RAG", gen, emb, keys.vset, question, "COUNT", args.count, "WITHSOURCES"]
    if args.filter:
        cmd += ["FILTER", args.filter]
    if args.maxtokens is not None:
        cmd += ["MAXTOKENS", args.maxtokens]
    if args.temperature is not None:
        cmd += ["TEMPERATURE", repr(args.temperature)]
    if args.seed is not None:
        cmd += ["SEED", args.seed]
    if args.chat:
        cmd += ["CHAT"]
    if args.show_prompt:
        cmd += ["WITHPROMPT"]
    if args.stream and not args.json:
        rep = stream(args, r, keys, cmd)
    else:
        rep = ix.pairs(r.execute_command(*cmd))
    text = ix.s(rep.get("text", b""))
    sources = source_list(r, keys, rep.get("sources") or [])
    if args.json:
        out = {"answer": text, "sources": sources}
        for k in ("chunks_used", "chunks_retrieved", "tokens", "finish", "prompt_tokens", "embed_ms",
                  "prefill_ms", "decode_ms"):
            if k in rep:
                out[k] = ix.s(rep[k])
        if "prompt" in rep:
            out["prompt"] = ix.s(rep["prompt"])
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if args.show_prompt and "prompt" in rep:
        print("--- prompt ---\n%s\n--- answer ---" % ix.s(rep["prompt"]))
    if not args.stream:
        print(text)
    print()
    print("sources:")
    if not sources:
        print("  (none: the set is empty, or the filter matched nothing among the elements the search "
              "looks at - VSIM's default FILTER-EF, COUNT x 100)")
    for i, src in enumerate(sources, 1):
        print("  %d. %s  %.4f  %s%s" % (i, src["source"], src["score"], src["state"],
                                        "  " + src["symbols"][0] if src.get("symbols") else ""))
    return 0


def source_list(r, keys, sources):
    out = []
    names = [s[0] for s in sources]
    attrs = []
    if names:
        p = r.pipeline(transaction=False)
        for n in names:
            p.execute_command("VGETATTR", keys.vset, n)
        attrs = p.execute(raise_on_error=False)
    for (name, score, state), at in zip(sources, attrs):
        d = {"element": ix.s(name), "score": float(score), "state": ix.s(state)}
        try:
            j = json.loads(at) if isinstance(at, bytes) else {}
        except ValueError:
            j = {}
        if isinstance(j, dict) and "path" in j and "lines" in j:
            d["path"], d["lines"] = j["path"], j["lines"]
            d["source"] = "%s:%d-%d" % (j["path"], j["lines"][0], j["lines"][1])
            if j.get("symbols"):
                d["symbols"] = j["symbols"]
        else:
            d["source"] = d["element"]
        out.append(d)
    return out


def stream(args, r, keys, cmd):
    """INFER.RAG ... STREAM key on a second connection; the answer printed as its entries arrive."""
    key = keys.scratch("ask:%s" % os.urandom(6).hex())
    box = {}

    def call():
        try:
            box["rep"] = ix.pairs(connect(args).execute_command(*(cmd + ["STREAM", key])))
        except Exception as e:  # noqa: BLE001 - re-raised on the main thread
            box["err"] = e

    t = threading.Thread(target=call, daemon=True)
    t.start()
    last = "0-0"
    done = False
    try:
        while not done:
            got = r.xread({key: last}, count=100, block=200)
            for _, entries in got or []:
                for eid, fields in entries:
                    last = eid
                    f = {k.decode(): v for k, v in fields.items()}
                    if "text" in f:
                        sys.stdout.write(f["text"].decode("utf-8", "replace"))
                        sys.stdout.flush()
                    if "finish" in f:
                        done = True
            if not got and not t.is_alive():
                break
        t.join()
    finally:
        r.delete(key)
    sys.stdout.write("\n")
    if "err" in box:
        raise box["err"]
    return box.get("rep", {})
