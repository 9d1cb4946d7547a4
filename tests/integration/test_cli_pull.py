"""test_cli_pull.py - `inferkv-cli pull` against a fake Hugging Face hub.

The hub is http.server in a thread on 127.0.0.1 (port 0) imitating the
public layout: /api/models/O/R (and /revision/REV) listing "siblings",
/api/models/O/R/tree/REV with sizes and LFS SHA-256s, /O/R/resolve/REV/FILE
answering 302 to a /cdn/ path (X-Linked-Etag, X-Linked-Size, ETag), a CDN
honouring Range with 206, 401 for a private repo without the token, 404 for
an unknown repo.  It records every request, and can cut a response half
way, flip a byte, or ignore Range.  A full disk comes from an LD_PRELOAD
shim (pull_fault_shim.c, compiled here: no root needed).  Files are a few
MiB of random bytes, so the suite takes a few seconds.
"""
import hashlib
import http.server
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from server_harness import Skip, Tally  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("INFERKV_BUILD", os.path.join(ROOT, "build"))
CLI = os.path.join(BUILD, "inferkv-cli")
TOKEN = "hf_secret_token"
MIB = 1 << 20


def blob(seed, n):
    return b"GGUF" + random.Random(seed).randbytes(n - 4)


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Hub:
    """The fake hub: repos[owner/name] = {files: {name: bytes}, private,
    cdn_host, lfs, extra (listed names with no content), raw (a listing
    body sent as is)}."""

    def __init__(self):
        self.repos = {}
        self.log = []
        self.cut = {}          # file name -> bytes sent before the connection is closed (once)
        self.corrupt = set()   # file names served with one byte flipped
        self.ignore_range = False
        self.lock = threading.Lock()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                hub.handle(self, True)

            def do_HEAD(self):
                hub.handle(self, False)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # the cut connections

        self.srv = Server(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def add(self, repo, files, private=False, cdn_host="127.0.0.1", lfs=True, extra=(), raw=None):
        self.repos[repo] = dict(files=files, private=private, cdn_host=cdn_host, lfs=lfs, extra=list(extra), raw=raw)

    def requests(self, prefix):
        with self.lock:
            return [r for r in self.log if r[1].startswith(prefix)]

    def clear(self):
        with self.lock:
            self.log.clear()

    # -- the handler --
    def send(self, h, code, body=b"", headers=(), with_body=True, cut=None):
        h.send_response(code)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not with_body:
            return
        if cut is not None:
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        h.wfile.write(body)

    def json(self, h, code, obj, with_body):
        self.send(h, code, json.dumps(obj).encode(), [("Content-Type", "application/json")], with_body)

    def handle(self, h, with_body):
        path = urllib.parse.urlsplit(h.path).path
        with self.lock:
            self.log.append((h.command, path, {k.lower(): v for k, v in h.headers.items()}))
        auth = h.headers.get("Authorization")
        if path.startswith("/cdn/"):
            return self.cdn(h, urllib.parse.unquote(path[5:]), with_body)
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):].split("/")
            repo = self.repos.get("/".join(rest[:2]))
            if repo is None:
                return self.json(h, 404, {"error": "Repository not found"}, with_body)
            if repo["private"] and auth != "Bearer " + TOKEN:
                return self.json(h, 401, {"error": "Invalid username or password."}, with_body)
            tail = rest[2:]
            if not tail or tail[0] == "revision":
                if repo["raw"] is not None:
                    return self.send(h, 200, repo["raw"], [("Content-Type", "application/json")], with_body)
                names = [".gitattributes", "README.md"] + sorted(repo["files"]) + repo["extra"]
                return self.json(h, 200, {
                    "_id": "x", "id": "/".join(rest[:2]), "private": repo["private"],
                    "tags": ["gguf", "text-generation"], "cardData": {"license": "apache-2.0", "nested": [[{}], 1.5e3]},
                    "siblings": [{"rfilename": n} for n in names]}, with_body)
            if tail[0] == "tree":
                entries = [{"type": "file", "oid": "0" * 40, "size": 17, "path": "README.md"},
                           {"type": "directory", "oid": "1" * 40, "size": 0, "path": "sub"}]
                for n, data in sorted(repo["files"].items()):
                    e = {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": n}
                    if repo["lfs"]:
                        e["lfs"] = {"oid": sha(data), "size": len(data), "pointerSize": 134}
                    entries.append(e)
                return self.json(h, 200, entries, with_body)
            return self.json(h, 404, {"error": "Not found"}, with_body)
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m:
            repo = self.repos.get(m.group(1))
            name = urllib.parse.unquote(m.group(3))
            if repo is None:
                return self.json(h, 404, {"error": "Repository not found"}, with_body)
            if repo["private"] and auth != "Bearer " + TOKEN:
                return self.json(h, 401, {"error": "Invalid username or password."}, with_body)
            if name not in repo["files"]:
                return self.json(h, 404, {"error": "Entry not found"}, with_body)
            data = repo["files"][name]
            if not repo["lfs"]:  # a plain git file: served here, no X-Linked-*
                return self.cdn(h, m.group(1) + "/" + name, with_body)
            loc = "http://%s:%d/cdn/%s/%s" % (repo["cdn_host"], self.port, m.group(1), urllib.parse.quote(name))
            return self.send(h, 302, b"", [("Location", loc), ("X-Linked-Etag", '"%s"' % sha(data)),
                                           ("X-Linked-Size", str(len(data))), ("ETag", '"%s"' % sha(data))],
                             with_body)
        return self.json(h, 404, {"error": "Not found"}, with_body)

    def cdn(self, h, rest, with_body):
        repo_name, _, name = rest.rpartition("/")
        repo = self.repos.get(repo_name)
        if repo is None or name not in repo["files"]:
            return self.send(h, 404, b"no such object", (), with_body)
        data = repo["files"][name]
        if name in self.corrupt:
            data = bytearray(data)
            data[len(data) // 2] ^= 0x01
            data = bytes(data)
        hdrs = [("ETag", '"%s"' % sha(repo["files"][name])), ("Accept-Ranges", "bytes"),
                ("Content-Type", "application/octet-stream")]
        code, start = 200, 0
        rng = h.headers.get("Range")
        if rng and not self.ignore_range:
            m = re.match(r"^bytes=(\d+)-$", rng)
            if not m:
                return self.send(h, 400, b"bad range", (), with_body)
            start = int(m.group(1))
            if start >= len(data):
                return self.send(h, 416, b"", [("Content-Range", "bytes */%d" % len(data))], with_body)
            code = 206
            hdrs.append(("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data))))
        with self.lock:
            cut = self.cut.pop(name, None)
        self.send(h, code, data[start:], hdrs, with_body, cut)


HUB = None
TMP = None
SHIM = None
Q8 = blob(1, 3 * MIB + 12345)
Q4 = blob(2, 200 * 1024)
Q8_NAME = "model-Q8_0.gguf"


def run(args, env_extra=None, token=None, preload=None):
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "hf_token", "hf_endpoint",
                                "inferkv_models_dir")}
    env["HF_ENDPOINT"] = HUB.url
    env["NO_PROXY"] = "*"
    if token:
        env["HF_TOKEN"] = token
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(env_extra or {})
    p = subprocess.run([CLI, "pull"] + args, env=env, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def newdir(name):
    d = os.path.join(TMP, name)
    os.mkdir(d)
    return d


def read(path):
    with open(path, "rb") as f:
        return f.read()


def cdn_gets(name):
    return [r for r in HUB.requests("/cdn/") if r[0] == "GET" and r[1].endswith("/" + name)]


def t_clean_pull():
    d = newdir("clean")
    HUB.clear()
    rc, out, err = run(["org/model-GGUF:Q8_0", "--dir", d])
    assert rc == 0, (rc, err)
    assert read(os.path.join(d, Q8_NAME)) == Q8, "bytes differ"
    assert os.listdir(d) == [Q8_NAME], os.listdir(d)  # no .part left
    assert out == os.path.join(d, Q8_NAME) + "\n", out
    gets = cdn_gets(Q8_NAME)
    assert len(gets) == 1 and "range" not in gets[0][2], gets
    assert HUB.requests("/api/models/org/model-GGUF/tree/main"), "tree listing not asked"


def t_non_tty_progress_lines():
    d = newdir("progress")
    rc, _, err = run(["org/model-GGUF:Q8_0", "--dir", d])
    assert rc == 0, err
    pct = [int(m) for m in re.findall(r"^model-Q8_0\.gguf: (\d+)% \(.* MiB/s, ETA ", err, re.M)]
    assert pct == list(range(10, 101, 10)), (pct, err)


def t_quiet():
    d = newdir("quiet")
    rc, out, err = run(["org/model-GGUF:model-Q8_0.gguf", "--dir", d, "--quiet"])
    assert rc == 0 and err == "" and out.strip() == os.path.join(d, Q8_NAME), (rc, out, err)


def t_second_pull_downloads_nothing():
    d = os.path.join(TMP, "clean")
    HUB.clear()
    rc, out, err = run(["org/model-GGUF:Q8_0", "--dir", d])
    assert rc == 0, err
    assert "nothing downloaded" in err, err
    assert not HUB.requests("/cdn/"), HUB.requests("/cdn/")
    assert not [r for r in HUB.log if "/resolve/" in r[1]], "resolve asked"
    assert read(os.path.join(d, Q8_NAME)) == Q8


def t_cut_then_resumed_with_range():
    d = newdir("resume")
    half = len(Q8) // 2
    HUB.clear()
    HUB.cut[Q8_NAME] = half
    rc, _, err = run(["org/model-GGUF:Q8_0", "--dir", d])
    part = os.path.join(d, "." + Q8_NAME + ".part")
    assert rc == 1, (rc, err)
    assert "run the same command again" in err, err
    assert os.path.exists(part) and not os.path.exists(os.path.join(d, Q8_NAME)), os.listdir(d)
    got = os.path.getsize(part)
    assert 0 < got <= half, got
    HUB.clear()
    rc, out, err = run(["org/model-GGUF:Q8_0", "--dir", d])
    assert rc == 0, err
    gets = cdn_gets(Q8_NAME)
    assert len(gets) == 1 and gets[0][2].get("range") == "bytes=%d-" % got, gets
    assert "resuming from" in err, err
    assert read(os.path.join(d, Q8_NAME)) == Q8 and os.listdir(d) == [Q8_NAME], os.listdir(d)


def t_range_ignored_starts_over():
    d = newdir("norange")
    with open(os.path.join(d, "." + Q8_NAME + ".part"), "wb") as f:
        f.write(b"X" * 1000)  # not even the file's bytes: a 200 must discard them
    HUB.ignore_range = True
    try:
        rc, _, err = run(["org/model-GGUF:Q8_0", "--dir", d])
    finally:
        HUB.ignore_range = False
    assert rc == 0, err
    assert "starting over" in err, err
    assert read(os.path.join(d, Q8_NAME)) == Q8


def t_corrupted_byte_not_installed():
    d = newdir("corrupt")
    HUB.corrupt.add(Q8_NAME)
    try:
        rc, _, err = run(["org/model-GGUF:Q8_0", "--dir", d])
    finally:
        HUB.corrupt.discard(Q8_NAME)
    bad = bytearray(Q8)
    bad[len(bad) // 2] ^= 1
    assert rc == 4, (rc, err)
    assert "SHA-256 mismatch" in err and sha(Q8) in err and sha(bytes(bad)) in err, err
    assert os.listdir(d) == [], os.listdir(d)  # no destination, no .part


def t_wrong_sha256_option_refused():
    d = newdir("wrongsha")
    HUB.clear()
    rc, _, err = run(["org/model-GGUF:Q8_0", "--dir", d, "--sha256", "ab" * 32])
    assert rc == 4 and "does not match" in err, (rc, err)
    assert os.listdir(d) == [] and not HUB.requests("/cdn/")
    rc, _, err = run(["org/model-GGUF:Q8_0", "--dir", d, "--sha256", "xyz"])
    assert rc == 2, (rc, err)


def t_sha256_option_verifies_unlisted_file():
    # a hub that publishes no SHA-256 (a plain git file): refused without
    # --sha256; with it, verified against it (right installs, wrong does not)
    d = newdir("plain")
    rc, _, err = run(["plain/repo", "--dir", d])
    assert rc == 1 and "--sha256" in err and os.listdir(d) == [], (rc, err, os.listdir(d))
    rc, _, err = run(["plain/repo", "--dir", d, "--sha256", "00" * 32])
    assert rc == 4 and "SHA-256 mismatch" in err and os.listdir(d) == [], (rc, err)
    rc, _, err = run(["plain/repo", "--dir", d, "--sha256", sha(Q4).upper()])
    assert rc == 0, err
    assert read(os.path.join(d, "plain-Q4_0.gguf")) == Q4


def t_404_repo():
    d = newdir("nf")
    rc, _, err = run(["org/missing-GGUF:Q8_0", "--dir", d])
    assert rc == 3 and "404" in err and "Repository not found" in err, (rc, err)
    assert os.listdir(d) == []


def t_401_without_token_then_ok_with_token_not_forwarded():
    d = newdir("private")
    rc, _, err = run(["secret/model-GGUF", "--dir", d])
    assert rc == 3 and "401" in err and "HF_TOKEN" in err, (rc, err)
    rc, _, err = run(["secret/model-GGUF", "--dir", d], token="hf_wrong")
    assert rc == 3 and "refused the token" in err, (rc, err)
    HUB.clear()
    rc, _, err = run(["secret/model-GGUF", "--dir", d], token=TOKEN)
    assert rc == 0, err
    assert read(os.path.join(d, "s-Q4_0.gguf")) == Q4
    api = [r for r in HUB.log if not r[1].startswith("/cdn/")]
    assert api and all(r[2].get("authorization") == "Bearer " + TOKEN for r in api), api
    cdn = HUB.requests("/cdn/")
    # the CDN is "localhost", another host than the hub's 127.0.0.1
    assert cdn and all(r[2].get("host", "").startswith("localhost:") for r in cdn), cdn
    assert all("authorization" not in r[2] for r in cdn), "token forwarded to the CDN host"


def t_token_option_and_endpoint_option():
    d = newdir("opts")
    HUB.clear()
    rc, _, err = run(["secret/model-GGUF", "--dir", d, "--token", TOKEN, "--endpoint", HUB.url + "/"],
                     env_extra={"HF_ENDPOINT": "http://127.0.0.1:9/"})
    assert rc == 0, err


def t_revision():
    d = newdir("rev")
    HUB.clear()
    rc, _, err = run(["org/model-GGUF:Q4_K_M", "--dir", d, "--revision", "v1.0"])
    assert rc == 0, err
    paths = [r[1] for r in HUB.log]
    assert "/api/models/org/model-GGUF/revision/v1.0" in paths and "/api/models/org/model-GGUF/tree/v1.0" in paths
    assert "/org/model-GGUF/resolve/v1.0/model-Q4_K_M.gguf" in paths, paths


def t_full_disk():
    if not SHIM:
        raise Skip("no C compiler for the LD_PRELOAD shim")
    d = newdir("full")
    rc, _, err = run(["org/model-GGUF:Q8_0", "--dir", d], preload=SHIM, env_extra={"PULL_ENOSPC_AFTER": str(MIB)})
    assert rc == 5, (rc, err)
    assert "disk full" in err and "after 1.0 MiB of 3.0 MiB" in err and "2.0 MiB more needed" in err, err
    # nothing installed; the .part is kept for a resume once space is freed
    assert os.listdir(d) == ["." + Q8_NAME + ".part"], os.listdir(d)
    # the space check before the transfer: nothing asked of the CDN
    d = newdir("full2")
    HUB.clear()
    rc, _, err = run(["org/model-GGUF:Q8_0", "--dir", d], preload=SHIM, env_extra={"PULL_FAKE_FREE": "100000"})
    assert rc == 5 and "not enough space" in err and "needed" in err, (rc, err)
    assert not HUB.requests("/cdn/") and not os.path.exists(os.path.join(d, Q8_NAME))


def t_hostile_name_refused():
    d = newdir("hostile")
    rc, _, err = run(["evil/repo:Q8_0", "--dir", d])
    assert rc != 0 and "unsafe file name" in err, (rc, err)
    assert os.listdir(d) == [] and not os.path.exists(os.path.join(TMP, "evil.gguf"))
    rc, _, err = run(["evil/repo:../evil.gguf", "--dir", d])
    assert rc == 2, (rc, err)
    rc, _, err = run(["../repo", "--dir", d])
    assert rc == 2, (rc, err)


def t_bad_json_refused():
    d = newdir("badjson")
    rc, _, err = run(["bad/json", "--dir", d])  # a trailing comma
    assert rc == 1 and "not the JSON expected" in err, (rc, err)
    rc, _, err = run(["deep/json", "--dir", d])  # nesting past the reader's bound
    assert rc == 1 and "not the JSON expected" in err, (rc, err)
    rc, _, err = run(["huge/json", "--dir", d])  # past the listing's size bound
    assert rc == 1 and "larger than" in err, (rc, err)
    rc, _, err = run(["nul/json", "--dir", d])  # an escaped NUL in a name
    assert rc == 1 and "unsafe file name 'a\\x00.gguf'" in err, (rc, err)
    assert os.listdir(d) == []


def t_symlink_destination_refused():
    d = newdir("symlink")
    target = os.path.join(TMP, "outside.gguf")
    with open(target, "wb") as f:
        f.write(b"keep")
    os.symlink(target, os.path.join(d, Q8_NAME))
    rc, _, err = run(["org/model-GGUF:Q8_0", "--dir", d])
    assert rc == 1 and "symbolic link" in err, (rc, err)
    assert read(target) == b"keep"


def t_quant_selection():
    d = newdir("multi")
    rc, _, err = run(["multi/repo:Q8_0", "--dir", d])
    assert rc == 3 and "m-7B-Q8_0.gguf" in err and "m-14B-Q8_0.gguf" in err, (rc, err)
    rc, _, err = run(["multi/repo:Q4_K", "--dir", d])  # a prefix of Q4_K_M/Q4_K_S is no match
    assert rc == 3 and "matches 'Q4_K'" in err, (rc, err)
    rc, _, err = run(["multi/repo:F16", "--dir", d])
    assert rc == 3 and "split into 2 files" in err, (rc, err)
    rc, _, err = run(["multi/repo", "--dir", d])
    assert rc == 3 and "6 .gguf files" in err, (rc, err)
    rc, _, err = run(["multi/repo:nope.gguf", "--dir", d])
    assert rc == 3 and "has no file" in err, (rc, err)
    assert os.listdir(d) == []
    rc, _, err = run(["multi/repo:q4_k_m", "--dir", d])  # case-insensitive
    assert rc == 0 and os.listdir(d) == ["m-Q4_K_M.gguf"], (rc, err)
    rc, _, err = run(["multi/repo:m-14B-Q8_0.gguf", "--dir", d])
    assert rc == 0 and sorted(os.listdir(d)) == ["m-14B-Q8_0.gguf", "m-Q4_K_M.gguf"], (rc, err)


def t_models_dir_env_default():
    d = newdir("envdir")
    rc, out, err = run(["org/model-GGUF:Q4_K_M"], env_extra={"INFERKV_MODELS_DIR": d})
    assert rc == 0 and os.path.exists(os.path.join(d, "model-Q4_K_M.gguf")), (rc, err)
    rc, _, err = run(["org/model-GGUF:Q4_K_M", "--dir", os.path.join(TMP, "absent")])
    assert rc == 1 and "--dir" in err, (rc, err)


def build_shim():
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    so = os.path.join(TMP, "pull_fault_shim.so")
    p = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", so, os.path.join(HERE, "pull_fault_shim.c"), "-ldl"],
                       capture_output=True)
    return so if p.returncode == 0 else None


def main():
    global HUB, TMP, SHIM
    tally = Tally()
    if not os.access(CLI, os.X_OK):
        print("FAIL %s not built" % CLI)
        print("0 passed, 1 failed, 0 skipped")
        sys.exit(1)
    TMP = tempfile.mkdtemp(prefix="inferkv-pull-")
    try:
        HUB = Hub()
        HUB.add("org/model-GGUF", {Q8_NAME: Q8, "model-Q4_K_M.gguf": Q4})
        HUB.add("secret/model-GGUF", {"s-Q4_0.gguf": Q4}, private=True, cdn_host="localhost")
        HUB.add("plain/repo", {"plain-Q4_0.gguf": Q4}, lfs=False)
        HUB.add("evil/repo", {"good-Q8_0.gguf": Q4}, extra=["../evil.gguf"])
        HUB.add("bad/json", {}, raw=b'{"siblings": [{"rfilename": "a.gguf"},]}')
        HUB.add("deep/json", {}, raw=b'{"x": ' + b"[" * 100 + b"]" * 100 + b', "siblings": []}')
        HUB.add("huge/json", {}, raw=b'{"x": "' + b"a" * (9 * MIB) + b'", "siblings": []}')
        HUB.add("nul/json", {}, raw=b'{"siblings": [{"rfilename": "a\\u0000.gguf"}]}')
        small = b"GGUF" + bytes(1000)
        HUB.add("multi/repo", {n: small for n in ["m-Q4_K_M.gguf", "m-Q4_K_S.gguf", "m-7B-Q8_0.gguf",
                                                  "m-14B-Q8_0.gguf", "m-F16-00001-of-00002.gguf",
                                                  "m-F16-00002-of-00002.gguf"]})
        SHIM = build_shim()
        for t in [t_clean_pull, t_non_tty_progress_lines, t_quiet, t_second_pull_downloads_nothing,
                  t_cut_then_resumed_with_range, t_range_ignored_starts_over, t_corrupted_byte_not_installed,
                  t_wrong_sha256_option_refused, t_sha256_option_verifies_unlisted_file, t_404_repo,
                  t_401_without_token_then_ok_with_token_not_forwarded, t_token_option_and_endpoint_option,
                  t_revision, t_full_disk, t_hostile_name_refused, t_bad_json_refused,
                  t_symlink_destination_refused, t_quant_selection, t_models_dir_env_default]:
            tally.run(t)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    tally.done()


if __name__ == "__main__":
    main()
