"""cluster_harness.py - Redis Cluster nodes for the integration tests:
Debian's redis-server with inferkv.so, on loopback ports below 45536 (the
cluster bus is port + 10000), joined by `redis-cli --cluster create`.

Why a module of its own: test_cluster.py (routing, replicas, failover,
cross-shard RAG) and test_ingest_cluster.py (sharded ingestion) start
clusters the same way, and a difference between their setups would be a
difference between what each tests.
"""
import os
import random
import shutil
import socket
import subprocess
import threading

from server_harness import LoggedProcess, RawClient, wait_until, wait_up

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("INFERKV_BUILD", os.path.join(ROOT, "build"))
MODULE = os.path.abspath(os.environ.get("INFERKV_MODULE", os.path.join(BUILD, "inferkv.so")))
PRELOAD = os.environ.get("INFERKV_PRELOAD", "")  # e.g. libasan.so for an ASan build of the module
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
BAD_LOG = ("AddressSanitizer", "runtime error:", "ThreadSanitizer", "crashed by signal", "ASSERTION FAILED",
           "Guru Meditation")
_TAKEN = set()


def port_free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def node_port():
    """A loopback port below 45536 that is free, with port+10000 (the
    cluster bus) free too, and not handed out before."""
    while True:
        p = random.randrange(20000, 45536)
        if p not in _TAKEN and p + 10000 not in _TAKEN and port_free(p) and port_free(p + 10000):
            _TAKEN.update((p, p + 10000))
            return p


class Node(LoggedProcess):
    """redis-server with the module, its files under tmp; cluster-enabled
    unless cluster=False (then e.g. --replicaof in opts).  Every node made
    is appended to `registry` (a list), whose logs the test checks at the
    end (bad_log_lines)."""

    def __init__(self, tmp, models, registry, *opts, cluster=True, timeout_ms=5000):
        self.port = node_port()
        self.dir = os.path.join(tmp, "n%d" % self.port)
        os.mkdir(self.dir)
        cmd = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", self.dir]
        if cluster:
            cmd += ["--cluster-enabled", "yes", "--cluster-config-file",
                    os.path.join(self.dir, "nodes-%d.conf" % self.port), "--cluster-node-timeout", str(timeout_ms)]
        cmd += list(opts) + ["--loadmodule", MODULE, "infer-models-dir", models, "infer-threads", "1"]
        env = dict(os.environ)
        if PRELOAD:
            env["LD_PRELOAD"] = PRELOAD
        super().__init__(cmd, os.path.join(self.dir, "redis.log"), env=env)
        registry.append(self)
        if not wait_up(self.proc, lambda: self.client().ping(), 10, redis.exceptions.ConnectionError):
            raise RuntimeError("redis-server did not start:\n" + self.log_text())

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, **dict({"socket_timeout": 60}, **kw))

    def raw(self):
        return RawClient(self.port, timeout=60)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.client().shutdown(nosave=True)
            except redis.exceptions.ConnectionError:
                pass
        self.stop_process()


def plain(x):
    """A RawClient reply without its RESP types."""
    t, v = x
    if t in "*~>" and v is not None:
        return [plain(e) for e in v]
    if t == "%":
        return [plain(e) for kv in v for e in kv]
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    return v


def create_cluster(nodes, replicas):
    """redis-cli --cluster create over nodes (replicas per primary), then
    waits until every node says cluster_state:ok, knows every node, its
    replicas are linked and CLUSTER SLOTS lists len(nodes)/(replicas+1)
    ranges each with all its nodes.  (ok, what redis-cli printed last)."""
    out = subprocess.run([REDIS_CLI, "--cluster", "create"] + ["127.0.0.1:%d" % n.port for n in nodes] +
                         ["--cluster-replicas", str(replicas), "--cluster-yes"], capture_output=True, text=True,
                         timeout=60)
    last = out.stdout.strip().splitlines()[-1:]
    if out.returncode != 0:
        return False, last
    n_ranges = len(nodes) // (replicas + 1)

    def ready():
        for n in nodes:
            ci = n.client().cluster("info")
            if ci.get("cluster_state") != "ok" or int(ci.get("cluster_known_nodes", 0)) != len(nodes):
                return False
        if not all(n.client().info("replication").get("master_link_status", "up") == "up" for n in nodes):
            return False
        # every node sees each slot range with its primary and replicas
        # (what cluster clients discover the nodes from)
        for n in nodes:
            rc = n.raw()
            slots = plain(rc.call("CLUSTER", "SLOTS"))
            rc.close()
            if len(slots) != n_ranges or any(len(r) != 3 + replicas for r in slots):
                return False
        return True

    return wait_until(ready, 30, 0.1), last


def load_everywhere(nodes, models):
    """INFER.LOAD name file on every node at once (each blocks until its
    load ends); the errors, as "port: error" lines."""
    errs = []

    def one(n):
        try:
            c = n.client()
            for name, path in models:
                c.execute_command("INFER.LOAD", name, path)
        except Exception as e:  # noqa: BLE001 - reported below
            errs.append("%d: %r" % (n.port, e))

    ts = [threading.Thread(target=one, args=(n,)) for n in nodes]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return errs


def bad_log_lines(registry):
    """(port, line) for every sanitizer report or crash in the nodes' logs."""
    return [(n.port, line) for n in registry for line in n.log_text().splitlines() if any(b in line for b in BAD_LOG)]
