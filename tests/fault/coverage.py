"""coverage.py - how many of src/'s allocation sites the sweeps reached.

An allocation site is a line of src/ that calls an allocation primitive:
the C library's malloc / calloc / realloc / strdup, or the seams that wrap
them - km_* (core: the server's), ie_* and infer_* (libinfer,
libinfercmd, inferkv.so), vs_* and vset_mem_* (libvset, libvcmd).  A sweep reaches a site when it fails an
allocation made there: the primitives record the address their caller
returns to (km_fail_site, the site argument of infer_set_alloc_hook), which
addr2line turns into file:line.

  coverage.py --server-json build/asan/fault-sweep.json --server-json build/asan/fault-sweep-module.json \\
              --engine-sites build/asan/fault-engine-sites.txt [--list]

Prints a table per directory: sites, reached, and with --list the sites
not reached.  Figures for docs/testing.md; nothing here fails.
"""
import argparse
import json
import os
import re
import subprocess
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRIMITIVES = re.compile(r"(?<![\w.>])(malloc|calloc|realloc|strdup|km_malloc|km_calloc|km_realloc|km_strdup|"
                        r"ie_malloc|ie_calloc|ie_realloc|ie_strdup|infer_malloc|infer_calloc|infer_realloc|"
                        r"infer_strdup|vs_malloc|vs_calloc|vs_realloc|vs_memdup|vset_mem_alloc|vset_mem_calloc|"
                        r"vset_mem_realloc)\(")
# the primitives themselves, and code outside the libraries and servers
EXCLUDE = {"src/core/mem.c", "src/engine/kernels/ialloc.c", "src/vector/vmem.c"}
EXCLUDE_DIRS = ("src/engine/cli/",)


def static_sites():
    out = set()
    for d, _, files in os.walk(os.path.join(ROOT, "src")):
        for f in files:
            if not f.endswith(".c"):
                continue
            rel = os.path.relpath(os.path.join(d, f), ROOT)
            if rel in EXCLUDE or rel.startswith(EXCLUDE_DIRS):
                continue
            in_comment = False
            for n, line in enumerate(open(os.path.join(d, f), errors="replace"), 1):
                code = line
                if in_comment:
                    if "*/" not in code:
                        continue
                    code, in_comment = code.split("*/", 1)[1], False
                code = re.sub(r"/\*.*?\*/", "", code)
                if "/*" in code:
                    code, in_comment = code.split("/*", 1)[0], True
                code = code.split("//", 1)[0]
                code = re.sub(r'"(\\.|[^"\\])*"', '""', code)
                if PRIMITIVES.search(code):
                    out.add("%s:%d" % (rel, n))
    return out


def resolve(binary, offsets):
    """["0x..."] offsets of return addresses in binary -> file:line each."""
    if not offsets:
        return []
    args = ["addr2line", "-e", binary] + ["0x%x" % (int(o, 16) - 1) for o in offsets]
    lines = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout.splitlines()
    out = []
    for loc in lines:
        loc = loc.split(" ")[0]
        out.append(os.path.relpath(loc, ROOT) if loc.startswith("/") else loc)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-json", action="append", default=[], help="a sweep_server.py --json report (repeatable)")
    ap.add_argument("--engine-sites")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    total = static_sites()
    reached = set()
    for path in a.server_json:
        if os.path.exists(path):
            j = json.load(open(path))
            reached |= {k.split(" ")[0] for k in j.get("sites", {})}
    if a.engine_sites and os.path.exists(a.engine_sites):
        raw = [ln.split()[-1] for ln in open(a.engine_sites) if ln.strip().startswith("site ")]
        by_bin = defaultdict(list)
        for r in raw:
            b, off = r.rsplit("+", 1)
            by_bin[b].append(off)
        for b, offs in by_bin.items():
            reached |= set(resolve(b if os.path.isabs(b) else os.path.join(ROOT, b), offs))
    per = defaultdict(lambda: [0, 0])
    for s in total:
        d = os.path.dirname(s.split(":")[0])
        per[d][0] += 1
        per[d][1] += s in reached
    print("%-28s %6s %8s" % ("directory", "sites", "reached"))
    for d in sorted(per):
        print("%-28s %6d %8d" % (d, per[d][0], per[d][1]))
    hit = len(total & reached)
    print("%-28s %6d %8d  (%.0f%%)" % ("all", len(total), hit, 100.0 * hit / max(1, len(total))))
    if a.list:
        for s in sorted(total - reached):
            print("  not reached: %s" % s)


if __name__ == "__main__":
    main()
