"""test_ingest.py - tools/ingest (inferkv-ingest, inferkv-ask) against a real
inferkv-server.

Unit tests first (unittest style, no server): the brace scanner (C, Rust,
Go, JS: comments, strings, chars vs lifetimes, raw strings, template
literals, regex literals, preprocessor lines, containers), the Python
segmenter (ast, decorators, comments, a class cut at its methods, the
fallback for unparsable files), Markdown headings (fences, setext, the
heading path), windows (never over the budget, overlap, balanced, pieces of
long lines, every non-blank line covered), refine() against a counter,
hash tags and slots, the walk's filters and skip rules.

Then the tools on a real server, with stories260K (from $INFERKV_SHARED,
else its gguf-gen twin) as the generator and a gguf-gen tiny-bert over the
BGE vocabulary as the encoder (64 dimensions, 128-token context):

- a temporary tree with colliding file names (src/main.rs and
  examples/main.rs, two README.md), a .py, a .c, a .md with headings, a
  long file that needs windows, a binary and a huge file (skipped with a
  message), ignored directories: every file recorded, every chunk's
  attributes true to the file (text == its lines, <= the context in
  tokens), every chunk retrievable by its own exact text as the top hit;
  a second run writes nothing (rdb_changes_since_last_save and VINFO
  hnsw-max-node-uid unchanged); a modified file's chunks replaced and the
  others untouched; a deleted file's chunks and record gone; orphans of an
  interrupted run and missing elements repaired; --dry-run writes nothing;
  errors (dimension, quantization, a held lock, no such model);
- inferkv-ask: answer and sources, --filter, --stream equal to the plain
  answer, --json;
- this repository's src/ and docs/ (a snapshot copied to a temporary
  directory, so that edits made meanwhile cannot disturb the checks): a
  run interrupted with SIGINT, then completed by a re-run; every chunk
  retrievable by its exact text; a second run writes nothing.

The sets are NOQUANT: the generated encoder's random weights put code
chunks within 0.999 cosine of each other, closer than Q8's rounding, so a
Q8 set would lose exact-text ties that a real encoder separates.  A chunk
"retrievable as the top hit" is the top hit of VSIM (INFER.RAG's search);
a miss there is looked up again exactly (TRUTH) to tell HNSW recall (at
most 1% allowed) from a wrong chunk (none allowed); two chunks whose texts
tokenize to the same ids (they differ only in white space) are one hit.

Prints "N passed, N failed, N skipped"; exits 1 on failure.
"""
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import Server, Skip, Tally, check, eq  # noqa: E402

ROOT = server_harness.ROOT
TOOLS = os.path.join(ROOT, "tools", "ingest")
sys.path.insert(0, TOOLS)
from ingest import chunk, index, lang_brace, lang_markdown, lang_python, walk  # noqa: E402
from ingest.progress import Progress  # noqa: E402

BUILD = server_harness.BUILD
if os.environ.get("INFERKV_SERVER"):
    server_harness.SERVER = os.path.abspath(os.environ["INFERKV_SERVER"])
SHARED = os.environ.get("INFERKV_SHARED", "/work/shared")
STORIES = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
BERT_VOCAB = os.path.join(SHARED, "models/ggml-org_llama.cpp/ggml-vocab-bert-bge.gguf")
GEN = os.path.join(BUILD, "gguf-gen")
INGEST = os.path.join(TOOLS, "inferkv-ingest")
ASK = os.path.join(TOOLS, "inferkv-ask")
PY = "/usr/bin/python3"
SLOW = int(os.environ.get("INFERKV_TEST_SLOWDOWN", "1"))


def est(line):
    """A stand-in for the encoder's token counts in the unit tests: words and punctuation."""
    import re
    return sum(1 + (len(w) - 1) // 4 if w[0].isalnum() else 1 for w in re.findall(r"\w+|[^\w\s]", line))


def chunks_of(text, lang, budget=60, overlap=8, max_bytes=100000):
    lines = chunk.split_lines(text)
    return lines, chunk.chunk_lines(lines, [est(x) for x in lines], lang, budget, overlap, max_bytes)


def spans(segs):
    return [(s.start, s.end) for s in segs]


# ============================================================ unit tests

class BraceTests(unittest.TestCase):
    def segs(self, text, lang):
        return lang_brace.segments(chunk.split_lines(text), lang)

    def test_c_units(self):
        src = ("/* header { comment */\n"             # 1
               "#include <stdio.h>\n"                  # 2
               "#define BLOCK(x) do { \\\n"            # 3
               "    x; \\\n"                           # 4
               "} while (0)\n"                         # 5
               "\n"                                    # 6
               "static const char *s = \"}{\";\n"      # 7
               "static char c = '{';\n"                # 8
               "\n"                                    # 9
               "typedef struct {\n"                    # 10
               "    int a; /* } */\n"                  # 11
               "} point;\n"                            # 12
               "\n"                                    # 13
               "static int\n"                          # 14
               "add(int a,\n"                          # 15
               "    int b)\n"                          # 16
               "{\n"                                   # 17
               "    // } not a close\n"                # 18
               "    return a + b;\n"                   # 19
               "}\n"                                   # 20
               "int main(void) { return add(1, 2); }\n")  # 21
        segs = self.segs(src, "c")
        eq(spans(segs), [(1, 2), (3, 5), (7, 7), (8, 8), (10, 12), (14, 20), (21, 21)], "C units")
        eq(segs[5].name, "static int", "a function's name: its first code line")
        check(segs[4].children, "a struct is a container")

    def test_c_extern_container(self):
        body = "".join("int f%d(void) {\n    return %d;\n}\n" % (i, i) for i in range(4))
        segs = self.segs('#ifdef __cplusplus\nextern "C" {\n#endif\n' + body + "}\n", "cpp")
        big = [s for s in segs if s.children]
        eq(len(big), 1, "extern \"C\" { is a container")
        items = [c.name for c in big[0].children if c.kind == "item"]
        eq([n for n in items if n and n.startswith("int f")], ["int f%d(void) {" % i for i in range(4)],
           "its functions are its items")

    def test_rust(self):
        src = ("use std::fmt;\n"                                  # 1
               "\n"
               "/// A thing\n"                                    # 3
               "#[derive(Debug)]\n"                               # 4
               "struct P<'a> { s: &'a str }\n"                    # 5
               "\n"
               "impl<'a> P<'a> {\n"                               # 7
               "    fn new(s: &'a str) -> Self {\n"               # 8
               "        let c = '{';\n"                           # 9
               "        let r = r#\"}\"{\"#;\n"                   # 10
               "        /* nested /* } */ still { */\n"           # 11
               "        P { s }\n"                                # 12
               "    }\n"                                          # 13
               "\n"
               "    fn get(&self) -> &'a str { self.s }\n"        # 15
               "}\n"                                              # 16
               "\n"
               "fn main() {\n"                                    # 18
               "    let s = \"a\n"                                # 19 a string over two lines
               "}\";\n"                                           # 20
               "}\n")                                             # 21
        segs = self.segs(src, "rust")
        eq(spans(segs), [(1, 1), (3, 5), (7, 16), (18, 21)], "Rust units (doc comment and attribute attached)")
        eq([(c.start, c.end, c.kind) for c in segs[2].children],
           [(7, 7, "header"), (8, 13, "item"), (15, 15, "item"), (16, 16, "footer")], "impl items")

    def test_go(self):
        src = ("package main\n\nimport (\n\t\"fmt\"\n)\n\nvar s = `raw {\nstring`\n\n"
               "type T struct {\n\tA int\n}\n\nfunc (t T) M() int {\n\treturn t.A\n}\n")
        segs = self.segs(src, "go")
        eq(spans(segs), [(1, 1), (3, 5), (7, 8), (10, 12), (14, 16)], "Go units")
        check(segs[1].children, "an import ( block is a container")

    def test_js(self):
        src = ("import x from \"y\";\n"                     # 1
               "const re = /\\{[a-z]+/g;\n"                 # 2
               "const t = `a ${ {a: 1}.a } } {`;\n"         # 3
               "class A {\n"                                # 4
               "  m() { return `${this.x}}`; }\n"           # 5
               "  n() {\n"                                  # 6
               "    return 1;\n"                            # 7
               "  }\n"                                      # 8
               "}\n"                                        # 9
               "function f(a) {\n"                          # 10
               "  if (a / 2 > 1) { return a; }\n"           # 11
               "  return 0\n"                               # 12
               "}\n"                                        # 13
               "const g = () => {\n"                        # 14
               "  return `multi\n"                          # 15
               "line }`\n"                                  # 16
               "}\n"                                        # 17
               "export default f\n")                        # 18
        segs = self.segs(src, "js")
        eq(spans(segs), [(1, 1), (2, 2), (3, 3), (4, 9), (10, 13), (14, 17), (18, 18)], "JS units")
        eq([(c.start, c.end) for c in segs[3].children], [(4, 4), (5, 5), (6, 8), (9, 9)], "class members")

    def test_unbalanced_loses_nothing(self):
        src = ("int f(int a) {\n#if A\n    if (a) {\n#else\n    if (!a) {\n#endif\n        return 1;\n    }\n"
               "    return 0;\n}\nint g(void) { return 2; }\n")
        lines, chs = chunks_of(src, "c")
        covered = {i for c in chs for i in range(c.start, c.end + 1)}
        eq({i for i, x in enumerate(lines, 1) if x.strip()} - covered, set(), "no line lost")

    def test_names(self):
        lines = ["// comment", "#[inline]", "pub fn f() {", "}"]
        eq(lang_brace.name_of(lines, 0, 3), "pub fn f() {", "comments and attributes are skipped")


class PythonTests(unittest.TestCase):
    SRC = ("\"\"\"Module doc.\"\"\"\n"     # 1
           "import os\n"                  # 2
           "\n"
           "# about f\n"                  # 4
           "@decorator\n"                 # 5
           "def f(x):\n"                  # 6
           "    return x\n"               # 7
           "\n"
           "\n"
           "class C(Base):\n"             # 10
           "    \"\"\"Doc.\"\"\"\n"       # 11
           "    X = 1\n"                  # 12
           "\n"
           "    def a(self):\n"           # 14
           "        return 1\n"           # 15
           "\n"
           "    async def b(self):\n"     # 17
           "        return 2\n"           # 18
           "\n"
           "\n"
           "if __name__ == '__main__':\n"  # 21
           "    f(1)\n")                   # 22

    def test_ast_segments(self):
        segs = lang_python.segments(chunk.split_lines(self.SRC))
        eq([(s.start, s.end, s.name) for s in segs], [(4, 7, "def f"), (10, 18, "class C")],
           "defs with their decorators and comments")
        eq([(c.start, c.end, c.kind) for c in segs[1].children],
           [(10, 13, "header"), (14, 15, "function"), (17, 18, "function")], "a class's children")

    def test_class_cut_at_methods(self):
        methods = "".join("    def m%d(self):\n        return %s\n\n" % (i, " + ".join(["x"] * 12))
                          for i in range(6))
        src = "class Big:\n    \"\"\"A big class.\"\"\"\n\n" + methods
        lines, chs = chunks_of(src, "python", budget=70)
        check(len(chs) > 1, "cut")
        for c in chs:
            check(c.kind != "window", "cut at method boundaries, not windows: %r" % c)

    def test_fallback(self):
        src = "print 'python 2'\n\ndef f(x):\n    print x\n\n@d\ndef g():\n    pass\nX = 1\n"
        segs = lang_python.segments(chunk.split_lines(src))
        eq([(s.start, s.end, s.name) for s in segs], [(3, 5, "def f"), (6, 8, "def g")], "indentation fallback")


class MarkdownTests(unittest.TestCase):
    def test_headings(self):
        src = ("Intro text.\n"            # 1
               "# Title\n"                # 2
               "para\n"                   # 3
               "## Part A\n"              # 4
               "```sh\n"                  # 5
               "# not a heading\n"        # 6
               "```\n"                    # 7
               "Part B\n"                 # 8
               "------\n"                 # 9
               "text\n"                   # 10
               "### Deep\n"               # 11
               "x\n"                      # 12
               "# Other\n")               # 13
        segs = lang_markdown.segments(chunk.split_lines(src))
        eq([(s.start, s.end, s.name) for s in segs],
           [(1, 1, None), (2, 3, "Title"), (4, 7, "Title > Part A"), (8, 10, "Title > Part B"),
            (11, 12, "Title > Part B > Deep"), (13, 13, "Other")], "sections and their heading paths")

    def test_crlf(self):
        segs = lang_markdown.segments(chunk.split_lines("Title\r\n=====\r\ntext\r\n## Next ##\r\nmore\r\n"))
        eq([(s.start, s.end, s.name) for s in segs], [(1, 3, "Title"), (4, 5, "Title > Next")], "CRLF lines")


class WindowTests(unittest.TestCase):
    def test_windows_fit_and_overlap(self):
        body = "\n".join("    x%d = compute(a, b, c) + other(d, e);" % i for i in range(120))
        src = "int big(void) {\n" + body + "\n}\n"
        lines, chs = chunks_of(src, "c", budget=60, overlap=30)
        check(len(chs) > 3, "windows")
        for c in chs:
            check(sum(est(x) for x in lines[c.start - 1:c.end]) <= 60, "within the budget: %r" % c)
            eq(c.text, "\n".join(lines[c.start - 1:c.end]), "a window's text is its lines")
        for a, b in zip(chs, chs[1:]):
            check(b.start <= a.end, "windows overlap: %r %r" % (a, b))
        sizes = [sum(est(x) for x in lines[c.start - 1:c.end]) for c in chs]
        check(min(sizes) >= 60 // 4, "balanced, no scrap at the end: %r" % sizes)

    def test_long_line_pieces(self):
        src = "short line\n" + " ".join("word%d" % i for i in range(400)) + "\nanother\n"
        lines, chs = chunks_of(src, "text", budget=50, overlap=5)
        pieces = [c for c in chs if c.start == c.end == 2]
        check(len(pieces) > 3, "a long line is cut into pieces")
        eq("".join(c.text for c in pieces), lines[1], "the pieces make up the line")
        chs = chunk.refine(chs, lambda ts: [est(t) + 2 for t in ts], 52, 100000)
        names = [c.element("a.txt") for c in chs]
        eq(len(names), len(set(names)), "unique element names")
        check(all(n.startswith("a.txt:2-2#") for n in names if ":2-2" in n), "pieces numbered: %r" % names)

    def test_refine_splits(self):
        lines = ["alpha beta gamma delta"] * 10
        c = chunk.Chunk(1, 10, "\n".join(lines), "block", [])
        out = chunk.refine([c], lambda ts: [len(t.split()) + 2 for t in ts], 20, 100000)
        check(all(len(x.text.split()) + 2 <= 20 for x in out), "all fit")
        eq("\n".join(x.text for x in out), c.text, "nothing lost, in order")

    def test_coverage_and_packing(self):
        src = "".join("int f%d(void) { return %d; }\n" % (i, i) for i in range(30))
        lines, chs = chunks_of(src, "c", budget=60)
        covered = [i for c in chs for i in range(c.start, c.end + 1)]
        eq(sorted(covered), list(range(1, 31)), "each line in exactly one chunk")
        check(len(chs) < 30 and all(c.kind in ("group", "unit") for c in chs), "small units packed")

    def test_detect(self):
        eq(chunk.detect("a/b.rs", ""), "rust", ".rs")
        eq(chunk.detect("tool", "#!/usr/bin/python3\n"), "python", "a python shebang")
        eq(chunk.detect("notes.txt", ""), "text", "anything else")
        eq(chunk.split_lines("a\nb\n"), ["a", "b"], "a final newline ends the last line")


class KeyTests(unittest.TestCase):
    def test_slots(self):
        eq(index.crc16(b"123456789"), 0x31C3, "CRC16/XMODEM check value")
        eq(index.slot("foo"), 12182, "Redis's slot for foo")
        k = index.Keys("docs")
        eq((k.files, k.meta, k.lock), ("{docs}:files", "{docs}:meta", "{docs}:lock"), "default keys")
        check(index.slot(k.files) == index.slot("docs"), "same slot")
        k = index.Keys("{kb}docs")
        eq(k.files, "{kb}docs:files", "a set with a tag lends it")
        self.assertRaises(index.IngestError, index.Keys, "a}b")


class WalkTests(unittest.TestCase):
    def test_filters(self):
        d = tempfile.mkdtemp(prefix="ingest-walk-")
        try:
            for p in ("src/a.c", "src/b.min.js", "build/x.c", "build-rag/y.c", ".git/config", "node_modules/m.js",
                      "docs/r.md", "m.gguf", "tests/fuzz/c1", "src/builder.c"):
                os.makedirs(os.path.join(d, os.path.dirname(p)), exist_ok=True)
                with open(os.path.join(d, p), "w") as f:
                    f.write("x\n")
            got = walk.walk(d, walk.Filter())
            eq(got, ["docs/r.md", "src/a.c", "src/b.min.js", "src/builder.c", "tests/fuzz/c1"], "default excludes")
            eq(walk.walk(d, walk.Filter(exclude=["*.min.js", "tests/fuzz/*"])),
               ["docs/r.md", "src/a.c", "src/builder.c"], "--exclude")
            eq(walk.walk(d, walk.Filter(include=["src/**"])), ["src/a.c", "src/b.min.js", "src/builder.c"],
               "--include with a path")
            eq(walk.walk(d, walk.Filter(include=["*.md", "src"])),
               ["docs/r.md", "src/a.c", "src/b.min.js", "src/builder.c"], "--include by name or directory")
            with open(os.path.join(d, "bin"), "wb") as f:
                f.write(b"abc\0def")
            with open(os.path.join(d, "latin"), "wb") as f:
                f.write(b"caf\xe9\n")
            with open(os.path.join(d, "big"), "w") as f:
                f.write("x" * 5000)
            check("binary" in walk.read(d, "bin", 1000).skip, "NUL bytes")
            check("UTF-8" in walk.read(d, "latin", 1000).skip, "not UTF-8")
            check("max-file-size" in walk.read(d, "big", 1000).skip, "huge")
            fd = walk.read(d, "src/a.c", 1000)
            check(fd.skip is None and fd.text == "x\n" and len(fd.sha) == 64, "read")
        finally:
            shutil.rmtree(d)

    def test_progress_lines(self):
        out = io.StringIO()
        p = Progress(20, 2000, stream=out, tty=False)
        for _ in range(20):
            p.add(files=1, nbytes=100, chunks=3)
        lines = out.getvalue().splitlines()
        eq(len(lines), 10, "one line per 10%% when not a terminal: %r" % lines)
        check(lines[-1].startswith("[100%] files 20/20  chunks 60"), lines[-1])


UNIT = (BraceTests, PythonTests, MarkdownTests, WindowTests, KeyTests, WalkTests)


def run_unit(t):
    for cls in UNIT:
        for name in unittest.TestLoader().getTestCaseNames(cls):
            case = cls(name)

            def one(case=case):
                res = unittest.TestResult()
                case.run(res)
                for _, tb in res.errors + res.failures:
                    print(tb)
                    raise AssertionError(tb.strip().splitlines()[-1])

            one.__name__ = "%s.%s" % (cls.__name__, name)
            t.run(one)


# ============================================================ the tools on a server

def setup_models(models):
    if os.path.exists(STORIES):
        shutil.copy(STORIES, os.path.join(models, "s.gguf"))
    else:
        subprocess.run([GEN, "--preset", "stories260k", "-q", "-o", os.path.join(models, "s.gguf")], check=True)
    if not os.path.exists(BERT_VOCAB):
        raise Skip("no BERT vocabulary at %s" % BERT_VOCAB)
    enc = os.environ.get("INFERKV_RAG_ENCODER")
    if enc:
        shutil.copy(enc, os.path.join(models, "e.gguf"))
    elif subprocess.run([GEN, "--preset", "tiny-bert", "--vocab", BERT_VOCAB, "-q", "-o",
                         os.path.join(models, "e.gguf")], stderr=subprocess.DEVNULL).returncode != 0:
        raise Skip("gguf-gen has no tiny-bert preset")


class Tool:
    """Runs inferkv-ingest / inferkv-ask against the server."""

    def __init__(self, srv):
        self.srv = srv

    def ingest(self, root, *args, expect=0, timeout=300):
        t0 = time.time()
        p = subprocess.run([PY, INGEST, root, "--port", str(self.srv.port), "--json", *args],
                           capture_output=True, text=True, timeout=timeout * SLOW)
        self.last_seconds = time.time() - t0
        if p.returncode != expect:
            raise AssertionError("inferkv-ingest %s: exit %d, want %d\nstdout: %s\nstderr: %s" % (
                " ".join(args), p.returncode, expect, p.stdout[-2000:], p.stderr[-3000:]))
        out = json.loads(p.stdout.strip().splitlines()[-1]) if expect == 0 else None
        return out, p.stderr

    def ask(self, *args, expect=0):
        p = subprocess.run([PY, ASK, "--port", str(self.srv.port), *args], capture_output=True, text=True,
                           timeout=120 * SLOW)
        if p.returncode != expect:
            raise AssertionError("inferkv-ask %s: exit %d\nstdout: %s\nstderr: %s" % (
                " ".join(args), p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
        return p.stdout, p.stderr


def changes(r):
    return int(r.info("persistence")["rdb_changes_since_last_save"])


def max_uid(r, vset):
    return int(index.pairs(r.execute_command("VINFO", vset))["hnsw-max-node-uid"])


def elements(r, vset):
    return [e.decode() for e in r.execute_command("VRANGE", vset, "-", "+", -1)]


def attrs(r, vset, names):
    p = r.pipeline(transaction=False)
    for n in names:
        p.execute_command("VGETATTR", vset, n)
    return [json.loads(a) for a in p.execute()]


def records(r, vset):
    k = index.Keys(vset)
    return {f.decode(): json.loads(v) for f, v in r.hgetall(k.files).items()}


def consistent(r, vset):
    """Every element listed by exactly one record, every record's elements present."""
    els = set(elements(r, vset))
    listed = []
    for rec in records(r, vset).values():
        listed += [e for e, _ in rec["chunks"]]
    eq(len(listed), len(set(listed)), "no element in two records")
    eq(set(listed) - els, set(), "recorded elements missing from the set")
    eq(els - set(listed), set(), "elements no record lists (orphans)")
    return els


def check_true_to_files(r, vset, root, names=None):
    """Each element's attributes: path/lines/text as in the file; the text fits the encoder."""
    names = names if names is not None else elements(r, vset)
    ats = attrs(r, vset, names)
    cache = {}
    p = r.pipeline(transaction=False)
    for name, a in zip(names, ats):
        lines = cache.get(a["path"])
        if lines is None:
            with open(os.path.join(root, a["path"]), encoding="utf-8") as f:
                lines = cache[a["path"]] = chunk.split_lines(f.read())
        lo, hi = a["lines"]
        want = "\n".join(lines[lo - 1:hi])
        check(name.startswith("%s:%d-%d" % (a["path"], lo, hi)), "element name %r vs attributes %r" % (name, a))
        if "part" in a:
            check(a["text"] in want and lo == hi, "%s: a piece of its line" % name)
        else:
            eq(a["text"], want, "%s: text is the file's lines" % name)
        p.execute_command("INFER.TOKENIZE", "e", a["text"])
    sizes = [len(x) for x in p.execute()]
    check(max(sizes) <= 128, "every chunk within the encoder's 128 tokens (max %d)" % max(sizes))
    return ats


def retrievable(r, vset, names=None):
    """Each chunk's exact text, embedded, finds the chunk as VSIM's top hit; returns (n, hnsw misses).
    A chunk whose text tokenizes like another's is a tie; a miss of the HNSW search that the exact
    search (TRUTH) finds is counted, a chunk the exact search does not find fails."""
    names = names if names is not None else elements(r, vset)
    texts = [a["text"] for a in attrs(r, vset, names)]
    blobs = []
    for i in range(0, len(texts), 256):
        blobs += r.execute_command("INFER.EMBED", "e", *texts[i:i + 256], "FP32")
    p = r.pipeline(transaction=False)
    for b in blobs:
        p.execute_command("VSIM", vset, "FP32", b, "COUNT", 1)
    tops = [x[0].decode() if x else None for x in p.execute()]
    by_name = dict(zip(names, texts))
    toks = {}

    def ids(text):
        if text not in toks:
            toks[text] = r.execute_command("INFER.TOKENIZE", "e", text)
        return toks[text]

    def same(top, name):
        return top == name or (top in by_name and ids(by_name[top]) == ids(by_name[name]))

    hnsw, wrong = 0, []
    for name, blob, top in zip(names, blobs, tops):
        if same(top, name):
            continue
        exact = r.execute_command("VSIM", vset, "FP32", blob, "COUNT", 1, "TRUTH")
        if exact and same(exact[0].decode(), name):
            hnsw += 1
        else:
            wrong.append((name, top))
    check(not wrong, "%d chunks not retrievable by their exact text: %r" % (len(wrong), wrong[:5]))
    check(hnsw <= max(1, len(names) // 100), "HNSW missed %d of %d exact-text queries" % (hnsw, len(names)))
    return len(names), hnsw


LONG_TEXT = "\n\n".join(
    " ".join("%s%d" % (w, (i * 7 + j) % 97) for j, w in enumerate(
        "the river carries stones past the old mill while herons wait in reeds".split()))
    for i in range(60)) + "\n"


def make_tree(d):
    files = {
        "src/main.rs": "use std::env;\n\n/// Entry point of the server.\nfn main() {\n"
                       "    let args: Vec<String> = env::args().collect();\n    println!(\"server {:?}\", args);\n}\n",
        "examples/main.rs": "// An example client.\nfn main() {\n    let client = Client::connect(\"127.0.0.1:6379\");\n"
                            "    client.ping();\n}\n\nstruct Client;\n\nimpl Client {\n"
                            "    fn connect(_a: &str) -> Client { Client }\n    fn ping(&self) {}\n}\n",
        "README.md": "# Project\n\nThe project stores keys and answers questions.\n\n## Build\n\nRun make.\n",
        "docs/README.md": "# Documentation\n\nThe documents describe the commands.\n\n## Layout\n\nOne page each.\n",
        "pkg/util.py": "\"\"\"Utilities.\"\"\"\nimport os\n\n\ndef join(a, b):\n    return os.path.join(a, b)\n\n\n"
                       "class Cache:\n    \"\"\"A cache.\"\"\"\n\n    def get(self, k):\n        return self.d.get(k)\n\n"
                       "    def put(self, k, v):\n        self.d[k] = v\n",
        "lib/list.c": "#include <stdlib.h>\n\ntypedef struct node {\n    struct node *next;\n    int v;\n} node;\n\n"
                      "/* Pushes v. */\nnode *push(node *h, int v) {\n    node *n = malloc(sizeof *n);\n"
                      "    n->next = h;\n    n->v = v;\n    return n;\n}\n\nint len(const node *h) {\n"
                      "    int k = 0;\n    for (; h; h = h->next) k++;\n    return k;\n}\n",
        "guide.md": "# Guide\n\nIntro.\n\n## Install\n\n```sh\n# not a heading\nmake install\n```\n\n"
                    "## Use\n\nAsk a question.\n\n### Filters\n\nFilter by path.\n",
        "notes/long.txt": LONG_TEXT,
        "web/app.js": "const re = /a{2}/;\nclass App {\n  start() { return `port ${this.port}`; }\n}\n"
                      "export function run() {\n  return new App().start();\n}\n",
        ".git/config": "[core]\n",
        "build/gen.c": "int generated;\n",
    }
    for p, text in files.items():
        os.makedirs(os.path.join(d, os.path.dirname(p)), exist_ok=True)
        with open(os.path.join(d, p), "w") as f:
            f.write(text)
    with open(os.path.join(d, "assets.dat"), "wb") as f:
        f.write(b"\x00\x01binary\x00" * 100)
    with open(os.path.join(d, "huge.log"), "w") as f:
        f.write("log line\n" * 20000)
    return sorted(p for p in files if not p.startswith((".git/", "build/")))


class Suite:
    def __init__(self, srv, tree, expected):
        self.srv, self.r, self.tool = srv, srv.r, Tool(srv)
        self.tree, self.expected = tree, expected
        self.args = ["--set", "t", "--embedder", "e", "--quant", "NOQUANT", "--max-file-size", "100k"]

    def test_tree_first_run(self):
        out, err = self.tool.ingest(self.tree, *self.args)
        eq((out["new"], out["changed"], out["deleted"], out["skipped"]), (len(self.expected), 0, 0, 2),
           "new / changed / deleted / skipped")
        check("skipped assets.dat: binary" in err and "skipped huge.log:" in err, "skip messages: %s" % err)
        eq(sorted(records(self.r, "t")), self.expected, "one record per file")
        els = consistent(self.r, "t")
        eq(out["elements"], len(els), "elements reported")
        for p in ("src/main.rs", "examples/main.rs", "README.md", "docs/README.md"):
            check(any(e.startswith(p + ":") for e in els), "%s has its own chunks" % p)
        check(not any(e.startswith("main.rs:") for e in els), "no element keyed by a bare file name")
        ats = check_true_to_files(self.r, "t", self.tree)
        long_chunks = [a for a in ats if a["path"] == "notes/long.txt"]
        check(len(long_chunks) >= 5 and all(a["kind"] == "window" for a in long_chunks), "long.txt in windows")
        langs = {a["path"]: a["lang"] for a in ats}
        eq((langs["src/main.rs"], langs["pkg/util.py"], langs["lib/list.c"], langs["guide.md"], langs["web/app.js"]),
           ("rust", "python", "c", "markdown", "js"), "languages")
        check(any("fn main() {" in a.get("symbols", []) for a in ats if a["path"] == "examples/main.rs"),
              "symbols recorded")
        n, miss = retrievable(self.r, "t")
        print("       %d chunks, %d HNSW misses, first run %.2f s" % (n, miss, self.tool.last_seconds))
        meta = {k.decode(): v.decode() for k, v in self.r.hgetall("{t}:meta").items()}
        eq((meta["embedder"], meta["dim"], meta["max_chunk"]), ("e", "64", "128"), "meta")
        for k in self.r.keys("*t*"):
            eq(index.slot(k.decode()), index.slot("t"), "key %r in the set's slot" % k)

    def test_second_run_writes_nothing(self):
        before = (changes(self.r), max_uid(self.r, "t"), self.r.execute_command("VCARD", "t"))
        out, _ = self.tool.ingest(self.tree, *self.args)
        eq((out["new"], out["changed"], out["deleted"], out["chunks_written"], out["chunks_removed"],
            out["orphans_removed"]), (0, 0, 0, 0, 0, 0), "nothing to do")
        eq(out["unchanged"], len(self.expected), "all unchanged")
        eq((changes(self.r), max_uid(self.r, "t"), self.r.execute_command("VCARD", "t")), before,
           "no write: rdb_changes_since_last_save, hnsw-max-node-uid, VCARD")
        # the default set options are remembered: no --embedder needed the second time either
        out, _ = self.tool.ingest(self.tree, "--set", "t", "--quant", "NOQUANT", "--max-file-size", "100k")
        eq(out["chunks_written"], 0, "again without --embedder")
        eq(changes(self.r), before[0], "still no write")

    def test_dry_run(self):
        path = os.path.join(self.tree, "pkg/util.py")
        with open(path, "a") as f:
            f.write("\n\ndef extra():\n    return 'extra'\n")
        before = changes(self.r)
        out, _ = self.tool.ingest(self.tree, *self.args, "--dry-run")
        eq((out["changed"], out["new"], out["deleted"]), (1, 0, 0), "dry run plan")
        check(out["chunks_to_write"] >= 1, "chunks to write counted")
        eq(changes(self.r), before, "dry run writes nothing")

    def test_modified_file(self):
        rel = "examples/main.rs"
        old = {e for e in elements(self.r, "t") if e.startswith(rel + ":")}
        other = {e: self.r.execute_command("VGETATTR", "t", e) for e in elements(self.r, "t")
                 if e.startswith("src/main.rs:")}
        path = os.path.join(self.tree, rel)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write("// A changed example.\n// It now has a preamble.\n\n" + text.replace("ping", "pong") +
                    "\nfn helper() -> u32 {\n    42\n}\n")
        uid = max_uid(self.r, "t")
        out, _ = self.tool.ingest(self.tree, *self.args)
        eq(out["changed"], 2, "changed files (this one and util.py from the dry run)")
        new = {e for e in elements(self.r, "t") if e.startswith(rel + ":")}
        check(new and not (old & new), "the old ranges are gone, new ones in: %r -> %r" % (old, new))
        eq([e for e, _ in records(self.r, "t")[rel]["chunks"]], sorted(new, key=lambda e: int(e.split(":")[-1]
                                                                                               .split("-")[0])),
           "the record lists the new chunks")
        check_true_to_files(self.r, "t", self.tree, sorted(new))
        check(any("pong" in a["text"] for a in attrs(self.r, "t", sorted(new))), "the new text is stored")
        retrievable(self.r, "t", sorted(new))
        eq({e: self.r.execute_command("VGETATTR", "t", e) for e in other}, other, "src/main.rs untouched")
        eq(max_uid(self.r, "t") - uid, out["chunks_written"], "one new node per chunk written")
        consistent(self.r, "t")
        check(any(e.startswith("pkg/util.py:") and "extra" in a["text"]
                  for e, a in zip(elements(self.r, "t"), attrs(self.r, "t", elements(self.r, "t")))),
              "util.py's new function is in")

    def test_deleted_file(self):
        rel = "docs/README.md"
        gone = [e for e in elements(self.r, "t") if e.startswith(rel + ":")]
        check(gone, "it had chunks")
        os.remove(os.path.join(self.tree, rel))
        out, _ = self.tool.ingest(self.tree, *self.args)
        eq((out["deleted"], out["chunks_removed"], out["changed"], out["new"]), (1, len(gone), 0, 0), "deleted")
        for e in gone:
            eq(self.r.execute_command("VISMEMBER", "t", e), 0, "%s removed" % e)
        check(rel not in records(self.r, "t"), "record removed")
        check(any(e.startswith("README.md:") for e in elements(self.r, "t")), "the other README.md stays")
        consistent(self.r, "t")

    def test_interrupted_state_repaired(self):
        """What an interrupted run can leave - new elements no record lists yet, and a record whose
        elements are missing - is repaired by the next run."""
        self.r.execute_command("INFER.EMBED", "e", "INTO", "t", "lib/list.c:900-910", "stale text", "NOQUANT",
                               "SETATTR", '{"path":"lib/list.c","text":"stale text"}')
        victim = [e for e in elements(self.r, "t") if e.startswith("pkg/util.py:")][0]
        self.r.execute_command("VREM", "t", victim)
        out, _ = self.tool.ingest(self.tree, *self.args)
        eq(out["orphans_removed"], 1, "the orphan removed")
        eq(out["changed"], 1, "the file with a missing element re-embedded")
        eq(self.r.execute_command("VISMEMBER", "t", victim), 1, "the missing element is back")
        consistent(self.r, "t")
        retrievable(self.r, "t")

    def test_errors(self):
        r = self.r
        r.delete("bad")
        r.execute_command("VADD", "bad", "VALUES", 3, 1, 0, 0, "x")
        _, err = self.tool.ingest(self.tree, "--set", "bad", "--embedder", "e", expect=1)
        check("3-dimensional" in err and "--rebuild" in err, "dimension: %s" % err)
        _, err = self.tool.ingest(self.tree, "--set", "t", "--embedder", "e", expect=1)
        check("quantized f32" in err and "--quant NOQUANT" in err, "quantization: %s" % err)
        _, err = self.tool.ingest(self.tree, "--set", "t", "--embedder", "nosuch", expect=1)
        check("no model 'nosuch'" in err, "unknown model: %s" % err)
        _, err = self.tool.ingest(self.tree, "--set", "t", "--embedder", "s", expect=1)
        check("not an encoder" in err, "a generator as embedder: %s" % err)
        r.set("{t}:lock", "elsewhere:1:x", ex=60)
        with open(os.path.join(self.tree, "lib/list.c"), "a") as f:
            f.write("\nint more(void) { return 1; }\n")
        _, err = self.tool.ingest(self.tree, *self.args, expect=1)
        check("another run holds {t}:lock (elsewhere:1:x)" in err, "lock: %s" % err)
        r.delete("{t}:lock")
        out, _ = self.tool.ingest(self.tree, *self.args)
        eq(out["changed"], 1, "after the lock is gone")
        eq(r.exists("{t}:lock"), 0, "lock released")
        _, err = self.tool.ingest(self.tree, "--set", "rebuilt", "--embedder", "e", "--max-chunk", "4096", expect=1)
        check("over the context" in err, "max-chunk over the context: %s" % err)

    def test_load(self):
        """--load NAME=FILE loads a model that is not loaded; the same file under another name embeds the
        same vectors, so nothing is re-embedded."""
        before = max_uid(self.r, "t")
        out, _ = self.tool.ingest(self.tree, *self.args[:2], "--embedder", "e2", "--load", "e2=e.gguf",
                                  *self.args[4:])
        check("e2" in index.models(self.r), "e2 loaded")
        eq((out["embedder"], out["chunks_written"], max_uid(self.r, "t")), ("e2", 0, before),
           "same model file: nothing re-embedded")
        self.r.execute_command("INFER.UNLOAD", "e2")
        out, _ = self.tool.ingest(self.tree, *self.args[:2], *self.args[4:])
        eq((out["embedder"], out["chunks_written"]), ("e", 0), "recorded embedder gone: the only encoder")

    def test_rebuild(self):
        out, _ = self.tool.ingest(self.tree, *self.args, "--rebuild", "--quant", "Q8")
        eq((out["new"], out["elements"] > 0), (len(self.expected) - 1, True), "rebuilt from scratch")
        eq(index.pairs(self.r.execute_command("VINFO", "t"))["quant-type"], b"int8", "now Q8")
        consistent(self.r, "t")
        out, _ = self.tool.ingest(self.tree, *self.args, "--rebuild")   # back to NOQUANT for what follows
        consistent(self.r, "t")

    def test_ask(self):
        out, err = self.tool.ask("--set", "t", "--model", "s", "How", "does", "the", "example", "client", "ping?",
                                 "--maxtokens", "24", "--temperature", "0", "--count", "3")
        text, _, src = out.partition("\nsources:\n")
        check(text.strip(), "an answer: %r" % out)
        rows = [x.split() for x in src.strip().splitlines()]
        eq(len(rows), 3, "three sources: %r" % src)
        els = set(elements(self.r, "t"))
        for row in rows:
            check(row[1].rsplit(":", 1)[0] in {a.rsplit(":", 1)[0] for a in els}, "source %r is a chunk" % row)
            check(0 <= float(row[2]) <= 1 and row[3] in ("used", "cut", "no-text"), "score and state: %r" % row)
        out, _ = self.tool.ask("--set", "t", "--model", "s", "--json", "--filter", '.lang == "rust"',
                               "--maxtokens", "8", "--temperature", "0", "main function")
        j = json.loads(out)
        check(j["sources"] and all(s["path"].endswith(".rs") for s in j["sources"]), "filter: %r" % j["sources"])
        plain, _ = self.tool.ask("--set", "t", "--model", "s", "--maxtokens", "24", "--temperature", "0", "where",
                                 "are", "the", "docs?")
        streamed, _ = self.tool.ask("--set", "t", "--model", "s", "--maxtokens", "24", "--temperature", "0",
                                    "--stream", "where", "are", "the", "docs?")
        eq(streamed, plain, "--stream prints what the plain call prints")
        eq(self.r.keys("{t}:ask:*"), [], "the stream key is deleted")
        _, err = self.tool.ask("--set", "nothing", "--model", "s", "--embedder", "e", "q", expect=1)
        check("run inferkv-ingest first" in err, "no corpus: %s" % err)


def copy_repo_subset(dst):
    """A snapshot of src/ and docs/ (what the working tree has now)."""
    for top in ("src", "docs"):
        shutil.copytree(os.path.join(ROOT, top), os.path.join(dst, top),
                        ignore=shutil.ignore_patterns("*.o", "*.d", "__pycache__"))
    shutil.copy(os.path.join(ROOT, "README.md"), dst)


def test_repository(srv):
    """src/ and docs/ of this repository: interrupted, completed, every chunk retrievable, idempotent."""
    tool, r = Tool(srv), srv.r
    d = tempfile.mkdtemp(prefix="ingest-repo-")
    try:
        copy_repo_subset(d)
        args = ["--set", "repo", "--embedder", "e", "--quant", "NOQUANT"]
        t0 = time.time()
        p = subprocess.Popen([PY, INGEST, d, "--port", str(srv.port), "--json", *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        check(server_harness.wait_until(lambda: r.execute_command("VCARD", "repo") > 300, 120 * SLOW),
              "the first run writes")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        partial = r.execute_command("VCARD", "repo")
        if p.returncode == 0:
            print("       (the first run finished before SIGINT reached it: nothing interrupted)")
        else:
            eq(p.returncode, 130, "interrupted: %s" % err[-500:])
            check("a re-run completes the rest" in err, "says so: %s" % err[-300:])
        out, _ = tool.ingest(d, *args)
        t_full = time.time() - t0
        check(out["errors"] == 0 and (out["new"] > 0 or p.returncode == 0), "the re-run completes: %r" % out)
        els = consistent(r, "repo")
        check(out["chunks_written"] < len(els), "the interrupted run's chunks are not all written again: %r" % out)
        recs = records(r, "repo")
        eq(len(recs), out["files"], "every file recorded")
        check_true_to_files(r, "repo", d)
        t1 = time.time()
        n, miss = retrievable(r, "repo")
        t_check = time.time() - t1
        before = (changes(r), max_uid(r, "repo"))
        out2, _ = tool.ingest(d, *args)
        eq((out2["chunks_written"], out2["chunks_removed"], out2["changed"], out2["new"]), (0, 0, 0, 0),
           "second run: nothing to do")
        eq((changes(r), max_uid(r, "repo")), before, "second run writes nothing")
        print("       repository src/ + docs/ + README.md: %d files, %d chunks (%d written before the interrupt, "
              "%d of them adopted by the re-run); ingest %.1f s, exact-text check %.1f s (%d HNSW misses), "
              "second run %.2f s" % (out["files"], len(els), partial, out["orphans_adopted"], t_full, t_check, miss,
                                     tool.last_seconds))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    t = Tally()
    run_unit(t)
    if not os.path.exists(server_harness.SERVER) or not os.path.exists(GEN):
        print("SKIP: %s or %s not built" % (server_harness.SERVER, GEN))
        t.skip("the tools on a server")
        t.done()
    models = tempfile.mkdtemp(prefix="inferkv-ingest-models-")
    tree = tempfile.mkdtemp(prefix="inferkv-ingest-tree-")
    try:
        try:
            setup_models(models)
        except Skip as e:
            t.skip("the tools on a server: %s" % e)
            t.done()
        expected = make_tree(tree)
        srv = Server("--infer-models-dir", models, "--infer-threads", "2")
        import redis
        srv.r = redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=300 * SLOW)
        try:
            srv.r.execute_command("INFER.LOAD", "s", "s.gguf")
            srv.r.execute_command("INFER.LOAD", "e", "e.gguf")
            s = Suite(srv, tree, expected)
            for fn in (s.test_tree_first_run, s.test_second_run_writes_nothing, s.test_dry_run,
                       s.test_modified_file, s.test_deleted_file, s.test_interrupted_state_repaired, s.test_errors,
                       s.test_load, s.test_rebuild, s.test_ask):
                t.run(fn)
            if os.environ.get("INFERKV_INGEST_REPO", "1") != "0":
                t.run(test_repository, srv)

            def server_still_running(s=srv):
                check(s.alive(), "server still running")
            t.run(server_still_running)
        finally:
            srv.stop()
            shutil.rmtree(srv.dir, ignore_errors=True)
    finally:
        shutil.rmtree(models, ignore_errors=True)
        shutil.rmtree(tree, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
