"""Where a key lives, for inferkv-ingest: on the server given on the command
line, or - when that server is a Redis Cluster node (INFO cluster says
cluster_enabled:1) - on the primary that owns the key's hash slot, as
CLUSTER SLOTS lists it.

A plain connection per node rather than redis-py's RedisCluster: a set's
work is pipelines of commands on its own keys, all in the set's slot, so
one node takes all of it; and INFER.MODELS, INFER.TOKENIZE and INFER.LOAD
name no key, which RedisCluster will not route ("Missing key").  The
connections to other nodes are made like the first one (password, TLS,
timeouts), with the node's address.
"""
import bisect
import threading

from redis.crc import key_slot

from .index import IngestError, s


def node_name(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


class Topology:
    """r: a connection to the node given; connect(): a new one to that node."""

    def __init__(self, r, connect):
        self.r, self._connect = r, connect
        kw = r.connection_pool.connection_kwargs
        self.origin_host = kw.get("host")
        self.origin = node_name(kw["host"], int(kw["port"])) if "host" in kw else kw.get("path", "?")
        # inferkv-server and a Redis outside cluster mode both answer cluster_enabled:0; a server whose
        # INFO has no such section is no cluster either
        self.cluster = str(r.info("cluster").get("cluster_enabled", 0)) == "1"
        self.starts, self.ranges = [], []
        if self.cluster:
            self._read_slots()
        self._conns = {}
        self._lock = threading.Lock()

    def _read_slots(self):
        rows = []
        for row in self.r.execute_command("CLUSTER", "SLOTS"):
            lo, hi, primary = int(row[0]), int(row[1]), row[2]
            host, port = s(primary[0]), int(primary[1])
            if host == "":
                host = self.origin_host    # "the address this connection reached", as the Redis docs say
            if host == "?":
                raise IngestError("CLUSTER SLOTS on %s gives no address for the primary of slots %d-%d "
                                  "(cluster-preferred-endpoint-type?)" % (self.origin, lo, hi))
            rows.append((lo, hi, host, port))
        rows.sort()
        self.starts = [r[0] for r in rows]
        self.ranges = rows

    def node_of(self, key):
        """The "host:port" of the node that holds key (the node given, outside a cluster)."""
        if not self.cluster:
            return self.origin
        slot = key_slot(key.encode("utf-8"))
        k = bisect.bisect_right(self.starts, slot) - 1
        if k < 0 or self.ranges[k][1] < slot:
            raise IngestError("no node serves slot %d (of %s): CLUSTER SLOTS on %s lists no owner; is the cluster "
                              "up (CLUSTER INFO)?" % (slot, key, self.origin))
        return node_name(self.ranges[k][2], self.ranges[k][3])

    def address(self, node):
        for lo, hi, host, port in self.ranges:
            if node_name(host, port) == node:
                return host, port
        raise KeyError(node)

    def primaries(self):
        """The nodes that own slots (the node given, outside a cluster)."""
        if not self.cluster:
            return [self.origin]
        return sorted({node_name(h, p) for _, _, h, p in self.ranges})

    def connector(self, node):
        """A function that opens a new connection to node."""
        if not self.cluster:
            return self._connect
        host, port = self.address(node)
        import redis
        pool = self.r.connection_pool
        cls, kw = pool.connection_class, dict(pool.connection_kwargs)
        if issubclass(cls, redis.UnixDomainSocketConnection):
            # a cluster reached over a local socket: its nodes announce TCP addresses
            cls = redis.Connection
            kw.pop("path", None)
        kw.update(host=host, port=port)
        return lambda: redis.Redis(connection_pool=redis.ConnectionPool(connection_class=cls, **kw))

    def conn(self, node):
        """A connection to node kept for the run (redis-py's clients are safe to share between threads)."""
        with self._lock:
            if node not in self._conns:
                self._conns[node] = self.r if node == self.origin else self.connector(node)()
            return self._conns[node]
