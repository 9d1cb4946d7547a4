"""The corpus in the server: key names, per-file records, the plan and the writes.

Keys of a corpus whose vector set is `docs` (all under the hash tag {docs},
so a Redis Cluster keeps them - and INFER.RAG over them - on one shard; a
set name that has a tag already, `{kb}docs`, lends it: `{kb}docs:files`):

  docs            the vector set: one element per chunk, named path:start-end
                  (path:start-end#k for the k-th piece of a long line), its
                  attributes the JSON {"path", "lines", "lang", "kind",
                  "symbols", "text"} - INFER.RAG reads "text" by default
  {docs}:files    hash: relative path -> the file's record, JSON
                  {"sha256", "cfg", "lang", "bytes", "chunks": [[element, h], ...]}
                  (h: a hash of the element's attributes)
  {docs}:meta     hash: embedder, dim, context, max_chunk, overlap, max_bytes,
                  quant, cfg, root, version, files, chunks, updated
  {docs}:lock     string, while a run writes (SET NX EX, refreshed)

A run reads the state (the records, every element name by VRANGE, the
meta), plans (new, changed, unchanged, deleted files; orphan elements that
no record lists; records whose elements are missing count as changed), and
writes only when the plan is not empty.  A changed file: its new chunks
are embedded with INFER.EMBED ... INTO (an element whose name and
attributes are unchanged is left alone), the old elements it no longer has
are VREMed, and only then its record is written.  An interrupted run
leaves each file either with its old record (and perhaps some new
elements no record lists: orphans) or its new one.  The next run's plan
hands a file's orphans to the file when it writes it again (kept if they
are what it would write), and removes the others, so a re-run completes
the work without redoing it.
"""
import hashlib
import json
import os
import queue
import socket
import threading
import time

from . import VERSION
from . import chunk as chunker

PIPE = 1000          # commands per pipeline round trip
RETRIES = 30         # tries of a command answered "queue full"


class IngestError(Exception):
    pass


class ModelMissing(IngestError):
    """The model asked for (or any of its kind) is not loaded: a sharded run adds which node lacks it."""


# ---------------------------------------------------------------- key names

def crc16(data):
    """CRC16-CCITT (XMODEM), Redis Cluster's key hash."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def hash_part(key):
    """The part of a key Redis Cluster hashes: the first {tag} when it is non-empty, else the whole key."""
    s = key.find("{")
    if s >= 0:
        e = key.find("}", s + 1)
        if e > s + 1:
            return key[s + 1:e]
    return key


def slot(key):
    return crc16(hash_part(key).encode("utf-8")) % 16384


class Keys:
    def __init__(self, vset):
        if not vset:
            raise IngestError("the vector set name is empty")
        self.vset = vset
        prefix = vset if hash_part(vset) != vset else "{%s}" % vset
        self.prefix = prefix
        self.files = prefix + ":files"
        self.meta = prefix + ":meta"
        self.lock = prefix + ":lock"
        for k in (self.files, self.meta, self.lock):
            if slot(k) != slot(vset):
                raise IngestError("cannot put %r and %r in one hash slot: give the set a {hash tag}" % (vset, k))

    def scratch(self, what):
        """A key in the corpus's slot for temporary use (inferkv-ask's STREAM key)."""
        return "%s:%s" % (self.prefix, what)


# ---------------------------------------------------------------- server helpers

def pairs(flat):
    return {(flat[i].decode() if isinstance(flat[i], bytes) else flat[i]): flat[i + 1]
            for i in range(0, len(flat), 2)}


def s(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def models(r):
    """INFER.MODELS as name -> dict (str keys; bytes values decoded)."""
    out = {}
    for m in r.execute_command("INFER.MODELS"):
        d = {k: s(v) for k, v in pairs(m).items()}
        out[d["name"]] = d
    return out


def load_specs(specs):
    """--load NAME=FILE arguments as (name, file) pairs."""
    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise IngestError("--load wants NAME=FILE (a GGUF file relative to infer-models-dir), got %r" % spec)
        out.append((name, path))
    return out


def load_models(r, specs):
    """--load NAME=FILE: INFER.LOAD each NAME that is not loaded yet."""
    have = models(r)
    for name, path in load_specs(specs):
        if name not in have:
            r.execute_command("INFER.LOAD", name, path)


def pick_model(ms, kind, asked, recorded=None, what="model"):
    """The model name to use: the one asked for, else the one recorded, else the only one of its kind."""
    if asked:
        if asked not in ms:
            raise ModelMissing("no model %r loaded (INFER.MODELS has: %s)" % (asked, ", ".join(sorted(ms)) or "none"))
        if ms[asked]["kind"] != kind:
            raise IngestError("model %r is a %s, not an %s" % (asked, ms[asked]["kind"], kind)
                              if kind == "encoder" else
                              "model %r is an %s, not a %s" % (asked, ms[asked]["kind"], kind))
        return asked
    if recorded and recorded in ms and ms[recorded]["kind"] == kind:
        return recorded
    cands = sorted(n for n, m in ms.items() if m["kind"] == kind)
    if len(cands) == 1:
        return cands[0]
    if not cands:
        raise ModelMissing("no %s loaded: INFER.LOAD one, or pass --load NAME=FILE" % kind)
    raise IngestError("several %ss loaded (%s): name one with --%s" % (kind, ", ".join(cands), what))


def all_elements(r, vset, page=10000):
    """Every element name of the set (VRANGE, paged), as str."""
    out = []
    lo = "-"
    while True:
        got = r.execute_command("VRANGE", vset, lo, "+", page)
        out.extend(g.decode("utf-8", "surrogateescape") for g in got)
        if len(got) < page:
            return out
        lo = b"(" + got[-1]


def is_queue_full(e):
    return "queue full" in str(e).lower() or "queue is full" in str(e).lower()


def pipeline_retry(r, cmds):
    """Runs cmds (lists of arguments) in pipelines of PIPE; a command answered "queue full" is sent
    again after a pause.  Returns the replies (an exception object where a command failed)."""
    import redis
    out = [None] * len(cmds)
    todo = list(range(len(cmds)))
    for attempt in range(RETRIES):
        again = []
        for k in range(0, len(todo), PIPE):
            idx = todo[k:k + PIPE]
            p = r.pipeline(transaction=False)
            for i in idx:
                p.execute_command(*cmds[i])
            for i, rep in zip(idx, p.execute(raise_on_error=False)):
                if isinstance(rep, redis.exceptions.ResponseError) and is_queue_full(rep):
                    again.append(i)
                out[i] = rep
        if not again:
            return out
        todo = again
        time.sleep(min(2.0, 0.05 * 2 ** attempt))
    return out


# ---------------------------------------------------------------- the run

class Config:
    """What a run needs besides the files: set by cli.py."""

    def __init__(self, **kw):
        self.vset = "docs"
        self.embedder = None
        self.max_chunk = None
        self.overlap = None
        self.max_bytes = 16384
        self.quant = "Q8"
        self.jobs = 8
        self.__dict__.update(kw)


class Encoder:
    """The embedder's limits and a token counter (INFER.TOKENIZE), with a cache of line counts."""

    def __init__(self, r, name, info):
        self.name = name
        self.dim = int(info["dim"])
        self.context = int(info["context"])
        self.path = info.get("path", "")
        one = len(r.execute_command("INFER.TOKENIZE", name, "a"))
        two = len(r.execute_command("INFER.TOKENIZE", name, "a a"))
        self.specials = max(0, 2 * one - two)     # [CLS] and [SEP] for BERT: 2
        self.cache = {}
        self.lock = threading.Lock()

    def count(self, r, texts):
        """Token counts as the encoder sees them (special tokens included)."""
        out = []
        for k in range(0, len(texts), PIPE):
            p = r.pipeline(transaction=False)
            for t in texts[k:k + PIPE]:
                p.execute_command("INFER.TOKENIZE", self.name, t)
            out.extend(len(x) for x in p.execute())
        return out

    def line_tokens(self, r, lines):
        """Each line's token count without the special tokens (blank lines: 0), cached by content."""
        need = sorted({ln for ln in lines if ln.strip() and ln not in self.cache})
        if need:
            got = self.count(r, need)
            with self.lock:
                for ln, n in zip(need, got):
                    self.cache[ln] = max(0, n - self.specials)
        return [self.cache[ln] if ln.strip() else 0 for ln in lines]


def fingerprint(cfg, enc):
    """What makes chunks and vectors of one run comparable with another's: a change re-ingests all."""
    d = {"v": VERSION, "model": enc.path, "dim": enc.dim, "max_chunk": cfg.max_chunk, "overlap": cfg.overlap,
         "max_bytes": cfg.max_bytes, "quant": cfg.quant}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def attrs_of(rel, lang, c):
    a = {"path": rel, "lines": [c.start, c.end], "lang": lang, "kind": c.kind}
    if c.part:
        a["part"] = c.part
    if c.names:
        a["symbols"] = c.names[:8]
    a["text"] = c.text
    return json.dumps(a, ensure_ascii=False, separators=(",", ":"))


def chunk_file(r, enc, cfg, fd):
    """(lang, [(element, attrs json, text)]) for a file's text."""
    lines = chunker.split_lines(fd.text)
    lang = chunker.detect(fd.rel, fd.text)
    toks = enc.line_tokens(r, lines)
    chunks = chunker.chunk_lines(lines, toks, lang, cfg.max_chunk - enc.specials, cfg.overlap, cfg.max_bytes)
    chunks = chunker.refine(chunks, lambda texts: enc.count(r, texts), cfg.max_chunk, cfg.max_bytes)
    out, seen = [], set()
    for c in chunks:
        name = c.element(fd.rel)
        if name in seen:                       # cannot happen (refine numbers parts); never write twice
            raise IngestError("%s: two chunks named %s" % (fd.rel, name))
        seen.add(name)
        out.append((name, attrs_of(fd.rel, lang, c), c.text))
    return lang, out


def ahash(attrs):
    return hashlib.sha256(attrs.encode("utf-8")).hexdigest()[:16]


class State:
    """What the server holds for a corpus."""

    def __init__(self, r, keys):
        self.records = {}
        for k, v in r.hgetall(keys.files).items():
            try:
                rec = json.loads(v)
                rec["chunks"] = [tuple(x) for x in rec.get("chunks", [])]
            except (ValueError, TypeError, AttributeError):
                rec = {"chunks": []}          # unreadable: the file counts as changed
            self.records[k.decode("utf-8", "surrogateescape")] = rec
        self.meta = {k.decode(): v.decode("utf-8", "replace") for k, v in r.hgetall(keys.meta).items()}
        self.exists = r.exists(keys.vset) == 1
        self.kind = s(r.type(keys.vset))
        self.elements = set(all_elements(r, keys.vset)) if self.kind == "vectorset" else set()
        self.dim = int(r.execute_command("VDIM", keys.vset)) if self.kind == "vectorset" else None
        self.quant = None
        if self.kind == "vectorset":
            info = pairs(r.execute_command("VINFO", keys.vset))
            self.quant = s(info.get("quant-type"))


class Plan:
    def __init__(self, state, files, cfg_fp, force=False):
        """files: FileData taken this run (not skipped)."""
        self.new, self.changed, self.unchanged, self.deleted = [], [], [], []
        self.state_records = state.records
        self.present = state.elements
        ondisk = {}
        for fd in files:
            ondisk[fd.rel] = fd
            rec = state.records.get(fd.rel)
            if rec is None:
                self.new.append(fd)
            elif (force or rec.get("sha256") != fd.sha or rec.get("cfg") != cfg_fp or
                  any(e not in state.elements for e, _ in rec["chunks"])):
                self.changed.append(fd)
            else:
                self.unchanged.append(fd)
        for rel, rec in sorted(state.records.items()):
            if rel not in ondisk:
                self.deleted.append((rel, rec))
        listed = set()
        for rec in state.records.values():
            listed.update(e for e, _ in rec["chunks"])
        # elements no record lists: what an interrupted run wrote before the file's record.  Those of a
        # file this run writes anyway are adopted by it (kept when they are what it would write, else
        # overwritten or removed); the others are removed
        self.adopt = {}
        self.orphans = []
        taken = {fd.rel for fd in self.new + self.changed}
        for e in sorted(state.elements - listed):
            path = element_path(e)
            if path in taken:
                self.adopt.setdefault(path, []).append(e)
            else:
                self.orphans.append(e)

    def empty(self):
        return not (self.new or self.changed or self.deleted or self.orphans)


def element_path(e):
    """The file path of an element name path:start-end[#k] (None when it is not one of ours)."""
    path, sep, rng = e.rpartition(":")
    a, dash, b = rng.partition("#")[0].partition("-")
    return path if sep and dash and a.isdigit() and b.isdigit() else None


class Lock:
    """{set}:lock while a run writes: SET NX EX 120, refreshed every 20 s, deleted at the end."""

    def __init__(self, r, key):
        self.r, self.key = r, key
        self.token = "%s:%d:%s" % (socket.gethostname(), os.getpid(), os.urandom(4).hex())
        self.stop = threading.Event()
        self.t = None

    def acquire(self):
        if not self.r.set(self.key, self.token, nx=True, ex=120):
            holder = s(self.r.get(self.key))
            raise IngestError("another run holds %s (%s); it expires 120 s after that run stops" % (self.key, holder))
        self.t = threading.Thread(target=self._refresh, daemon=True)
        self.t.start()

    def _refresh(self):
        while not self.stop.wait(20):
            try:
                if s(self.r.get(self.key)) == self.token:
                    self.r.expire(self.key, 120)
            except Exception:  # noqa: BLE001 - the main thread reports connection trouble
                pass

    def release(self):
        self.stop.set()
        try:
            if s(self.r.get(self.key)) == self.token:
                self.r.delete(self.key)
        except Exception:  # noqa: BLE001
            pass


class Pool:
    """Connections that send batches of commands (each batch pipelined on one connection; a batch
    answered "queue full" is retried).  The embeddings of one big file are spread over all of them,
    so the encoder's scheduler batches them together instead of seeing one request at a time.
    Daemon threads: an interrupted run exits at once (the server cancels the embeddings in flight
    when their connections close)."""

    BATCH = 16

    def __init__(self, n, connect):
        self.q = queue.Queue()
        self.threads = [threading.Thread(target=self._serve, args=(connect,), daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _serve(self, connect):
        r = None
        while True:
            job = self.q.get()
            if job is None:
                return
            try:
                r = r or connect()
                job.result = pipeline_retry(r, job.cmds)
            except Exception as e:  # noqa: BLE001 - handed to the waiting file
                job.result = [e] * len(job.cmds)
                r = None
            job.done.set()

    def submit(self, cmds):
        job = _Job(cmds)
        self.q.put(job)
        return job

    def close(self):
        for _ in self.threads:
            self.q.put(None)


class _Job:
    def __init__(self, cmds):
        self.cmds, self.result, self.done = cmds, None, threading.Event()


class Writer:
    """Writes files' chunks and records: r is the calling thread's connection (tokenizing, VREM,
    the record); the embeddings go through pool when there is one."""

    def __init__(self, r, keys, cfg, enc, cfg_fp, pool=None):
        self.r, self.keys, self.cfg, self.enc, self.cfg_fp, self.pool = r, keys, cfg, enc, cfg_fp, pool

    def file(self, fd, old_rec, present, adopt=(), dry=False, sent=None):
        """Writes a file's chunks, then its record; present: the set's elements when the run began;
        adopt: elements of this file that no record lists (an interrupted run's).  An element whose
        name and attributes are unchanged (and that is there) is not written again.
        sent(n, total) is called as embeddings are done.
        Returns (chunks written, chunks kept, chunks removed, element names)."""
        lang, chunks = chunk_file(self.r, self.enc, self.cfg, fd)
        old = dict(old_rec["chunks"]) if old_rec else {}
        if adopt:
            p = self.r.pipeline(transaction=False)
            for e in adopt:
                p.execute_command("VGETATTR", self.keys.vset, e)
            for e, a in zip(adopt, p.execute(raise_on_error=False)):
                old[e] = ahash(a.decode("utf-8", "surrogateescape")) if isinstance(a, bytes) else None
        new = {name: ahash(attrs) for name, attrs, _ in chunks}
        todo = [(name, attrs, text) for name, attrs, text in chunks
                if old.get(name) != new[name] or name not in present]
        gone = [e for e in old if e not in new]
        if dry:
            return len(todo), len(chunks) - len(todo), len(gone), [n for n, _, _ in chunks]
        cmds = [["INFER.EMBED", self.enc.name, "INTO", self.keys.vset, name, text, "SETATTR", attrs, self.cfg.quant]
                for name, attrs, text in todo]
        if self.pool:
            jobs = [self.pool.submit(cmds[k:k + Pool.BATCH]) for k in range(0, len(cmds), Pool.BATCH)]
        else:
            jobs = [_Job(cmds)]
            jobs[0].result = pipeline_retry(self.r, cmds)
            jobs[0].done.set()
        failed = None
        for job in jobs:
            job.done.wait()
            for cmd, rep in zip(job.cmds, job.result):
                if isinstance(rep, Exception) and failed is None:
                    failed = IngestError("%s: INFER.EMBED ... INTO %s: %s" % (fd.rel, cmd[4], rep))
            if sent:
                sent(len(job.cmds), len(cmds))
        if failed:
            raise failed
        for e, rep in zip(gone, pipeline_retry(self.r, [["VREM", self.keys.vset, e] for e in gone])):
            if isinstance(rep, Exception):
                raise IngestError("%s: VREM %s: %s" % (fd.rel, e, rep))
        rec = {"sha256": fd.sha, "cfg": self.cfg_fp, "lang": lang, "bytes": fd.size,
               "chunks": [[name, new[name]] for name, _, _ in chunks]}
        self.r.hset(self.keys.files, fd.rel, json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
        return len(todo), len(chunks) - len(todo), len(gone), [n for n, _, _ in chunks]

    def delete(self, rel, rec):
        cmds = [["VREM", self.keys.vset, e] for e, _ in rec["chunks"]]
        for rep in pipeline_retry(self.r, cmds):
            if isinstance(rep, Exception):
                raise IngestError("%s: VREM: %s" % (rel, rep))
        self.r.hdel(self.keys.files, rel)
        return len(cmds)

    def orphans(self, names):
        cmds = [["VREM", self.keys.vset, e.encode("utf-8", "surrogateescape")] for e in names]
        for rep in pipeline_retry(self.r, cmds):
            if isinstance(rep, Exception):
                raise IngestError("VREM: %s" % rep)
        return len(names)
