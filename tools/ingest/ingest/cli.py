"""The command lines: inferkv-ingest and inferkv-ask (see docs/ingest.md)."""
import argparse
import json
import os
import signal
import sys
import threading

from . import VERSION
from . import index as ix
from .index import IngestError, Keys
from .run import QUANTS


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
    p.add_argument("--shards", type=int, metavar="N",
                   help="spread the corpus over N vector sets named after --set BASE (no hash tag), each on "
                        "the Redis Cluster primary that owns its slot; a file goes to shard crc32(path) %% N")
    p.add_argument("--jobs", "-j", type=int, default=8,
                   help="connections writing at once, per node (default 8)")
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
    if args.shards is not None:
        from .corpus import MAX_SHARDS, has_tag
        if not 1 <= args.shards <= MAX_SHARDS:
            sys.stderr.write("inferkv-ingest: --shards must be 1..%d\n" % MAX_SHARDS)
            return 2
        if has_tag(args.set):
            sys.stderr.write("inferkv-ingest: --shards takes --set BASE without a hash tag, got %r: each shard set "
                             "is a tag of its own (BASE.0 and {BASE.0}:files ...)\n" % args.set)
            return 2
    try:
        from .corpus import Corpus     # after _redis(): it needs redis-py, and inferkv.shards from clients/python
        r = connect(args)
        r.ping()
        return Corpus(args, r, lambda: connect(args)).run()
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
    p.add_argument("--shards", type=int, metavar="N",
                   help="the corpus was ingested with --shards N: search all N shard sets (on their nodes, in a "
                        "Redis Cluster) and answer from the best chunks of all of them")
    return p


def ask_main(argv=None):
    args = ask_parser().parse_args(argv)
    redis = _redis()
    try:
        r = connect(args)
        r.ping()
        return ask_sharded(args, r) if args.shards is not None else ask(args, r)
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
    sources = source_list(r, [keys.vset] * len(rep.get("sources") or []), rep.get("sources") or [])
    return print_answer(args, text, rep, sources)


def ask_sharded(args, r):
    """--shards N: inferkv.ClusterClient.rag over the N shard sets (VSIM on
    each, the best --count merged, INFER.ANSWER), a Redis Cluster or a
    single server alike."""
    from inferkv import ClusterClient, InferkvError, shard_set  # clients/python (the launcher's path)
    if args.stream:
        raise IngestError("--stream is not available with --shards (the answer comes from INFER.ANSWER "
                          "after the merge)")
    try:
        first = shard_set(args.set, 0, args.shards)
    except ValueError as e:
        raise IngestError("--shards: %s" % e)
    kw = r.connection_pool.connection_kwargs
    cc = ClusterClient(kw.get("host", "127.0.0.1"), kw.get("port", 6379), password=kw.get("password"),
                       username=kw.get("username"))
    try:
        if args.load:
            for n in cc.redis.get_nodes():  # every node may answer: the encoder and generator on each
                ix.load_models(cc.redis.get_redis_connection(n) if cc.clustered else r, args.load)
        ms = ix.models(r)
        meta = {k.decode(): v.decode("utf-8", "replace")
                for k, v in cc.redis.hgetall(Keys(first).meta).items()}
        if not meta:
            raise IngestError("no corpus %s in %d shards (%s has no %s): run inferkv-ingest --shards %d first" % (
                args.set, args.shards, first, Keys(first).meta, args.shards))
        if meta.get("shards") != str(args.shards):
            raise IngestError("the corpus %s is split over %s shards, not %d" % (
                args.set, meta.get("shards", "no"), args.shards))
        emb = ix.pick_model(ms, "encoder", args.embedder, meta.get("embedder"), "embedder")
        gen = ix.pick_model(ms, "generator", args.model, None, "model")
        try:
            a = cc.rag(gen, emb, " ".join(args.question), corpus=args.set, shards=args.shards, count=args.count,
                       filter=args.filter, max_tokens=args.maxtokens, temperature=args.temperature, seed=args.seed,
                       chat=args.chat, with_prompt=args.show_prompt)
        except InferkvError as e:
            raise IngestError(str(e))
        rep = {"chunks_used": a.chunks_used, "chunks_retrieved": a.chunks_retrieved, "tokens": a.tokens,
               "finish": a.finish, "prompt_tokens": a.prompt_tokens, "embed_ms": round(a.embed_ms, 1),
               "prefill_ms": a.prefill_ms, "decode_ms": a.decode_ms}
        if a.prompt is not None:
            rep["prompt"] = a.prompt
        sources = source_list(cc.redis, [x.vset for x in a.sources],
                              [(x.element, x.score, x.state) for x in a.sources])
        return print_answer(args, a.text, rep, sources)
    finally:
        cc.close()


def print_answer(args, text, rep, sources):
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


def source_list(r, vsets, sources):
    """sources ((element, score, state) each, from the set in vsets at the
    same place) with their paths and lines, from the elements' attributes."""
    out = []
    attrs = [r.execute_command("VGETATTR", v, s[0]) for v, s in zip(vsets, sources)]
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
