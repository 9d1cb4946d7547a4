"""test_layers.py - the source tree keeps its layering.

The engine is built in layers, each including only those below it:
kernels/ -> gguf/ -> text/ -> runtime/, with infer.h (the public API)
beside all of them and cli/ on top through the public API only; inside
text/, unicode.h <- vocab.h <- tok.h, so that the vocabulary never depends
on the encoders.  Libraries do not include front-ends: libvset (src/vector)
knows no server, module, engine or command layer; libvcmd knows libvset
only; no library includes src/server or src/module.  This suite reads every
#include "..." and fails on any that breaks a rule, and on any include
cycle among the engine's headers.
"""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SRC = os.path.join(ROOT, "src")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

ENGINE_ORDER = ["kernels", "gguf", "text", "runtime", "cli"]
TEXT_ORDER = ["unicode.h", "vocab.h", "tok.h"]

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL " + what)


def files(sub):
    base = os.path.join(SRC, sub)
    for dirpath, _, names in os.walk(base):
        for n in sorted(names):
            if n.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(dirpath, n), SRC)


def includes(rel):
    with open(os.path.join(SRC, rel), encoding="utf-8", errors="replace") as f:
        return INCLUDE.findall(f.read())


def engine_layer(path):
    """The engine layer of a file or include path, or None."""
    parts = path.split("/")
    if parts[0] == "engine":
        parts = parts[1:]
    if len(parts) >= 2 and parts[0] in ENGINE_ORDER:
        return parts[0]
    return None


def main():
    # Engine: a file includes its own layer, lower layers, or infer.h.
    graph = {}
    for rel in files("engine"):
        own = engine_layer(rel)
        for inc in includes(rel):
            if inc == "infer.h" or inc.startswith("../"):
                continue
            layer = engine_layer(inc)
            if layer is None and os.path.exists(os.path.join(SRC, os.path.dirname(rel), inc)):
                layer = own  # a header beside the file: its own layer
            if layer is None:
                check(False, "%s includes %s, outside the engine's layers" % (rel, inc))
                continue
            if own is None:  # infer.h itself
                check(False, "%s includes %s" % (rel, inc))
                continue
            if own == "cli" and layer != "cli":
                check(False, "%s: the CLI uses the public API only, not %s" % (rel, inc))
                continue
            check(ENGINE_ORDER.index(layer) <= ENGINE_ORDER.index(own),
                  "%s (%s) includes %s from the higher layer %s" % (rel, own, inc, layer))
            if own == layer == "text":
                a = os.path.basename(rel)
                b = os.path.basename(inc)
                if a in TEXT_ORDER and b in TEXT_ORDER:
                    check(TEXT_ORDER.index(b) < TEXT_ORDER.index(a),
                          "text/%s includes text/%s: the order is %s" % (a, b, " <- ".join(TEXT_ORDER)))
            if rel.endswith(".h"):
                graph.setdefault(rel, set()).add("engine/" + inc)
    # No cycles among the engine's headers.
    state = {}

    def visit(n, stack):
        state[n] = 1
        for m in graph.get(n, ()):
            if state.get(m) == 1:
                check(False, "include cycle: " + " -> ".join(stack + [n, m]))
            elif not state.get(m):
                visit(m, stack + [n])
        state[n] = 2

    for n in list(graph):
        if not state.get(n):
            visit(n, [])
    check(True, "engine header graph walked")

    # Libraries never include front-ends or layers above them.
    rules = {
        "vector": ("vector/",),
        "vcmd": ("vector/", "vcmd/"),
        "core": ("core/",),
    }
    for lib, allowed in rules.items():
        for rel in files(lib):
            for inc in includes(rel):
                here = os.path.exists(os.path.join(SRC, lib, inc))
                ok = here or any(inc.startswith(a) for a in allowed) or \
                    os.path.exists(os.path.join(SRC, "vector", inc)) and lib == "vcmd"
                check(ok, "%s includes %s, outside what %s may use" % (rel, inc, lib))
    for lib in ("engine", "infercmd", "vector", "vcmd", "core"):
        for rel in files(lib):
            for inc in includes(rel):
                check(not (inc.startswith("server/") or inc.startswith("module/") or
                           inc in ("server.h", "mod.h", "redismodule_api.h")),
                      "%s (a library) includes the front-end header %s" % (rel, inc))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
