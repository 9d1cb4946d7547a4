"""Chunking: a file's lines -> chunks that each fit the encoder.

A language's segmenter cuts the file into segments by structure (a C
function, a Python class and its methods, a Markdown section); a segment
may carry children (a class's methods, an impl block's items) used only
when the whole does not fit.  Then:

  1. normalize  the segments are made a partition of the file's non-blank
                lines: overlaps clipped, gaps become "block" segments, blank
                lines at a segment's ends trimmed, blank-only segments dropped
  2. expand     a segment that fits stays whole; one that does not is
                replaced by its children, else cut into windows of lines
                with `overlap` tokens repeated between neighbours (a window
                ends at a blank line near its end when there is one; a line
                longer than the budget is cut into pieces by characters)
  3. pack       neighbouring whole segments share a chunk while they fit, so
                a file of one-line declarations is not a hundred tiny chunks;
                a segment is never cut to fill a chunk

"Fits" means: token count (the encoder's own tokenizer, counted per line by
the caller; WordPiece counts add up over lines) within `budget` and UTF-8
size within `max_bytes`.  The caller checks every final chunk against the
encoder once more (refine()) and splits any that still do not fit, so a
tokenizer whose counts do not add up exactly cannot produce a chunk the
server refuses.

Line numbers are 1-based and inclusive everywhere.  A chunk's text is
exactly lines start..end of the file joined by "\\n" (or, for a piece of a
long line, a substring of that line).
"""
import os
import re

from . import lang_brace, lang_markdown, lang_python
from .segment import Chunk, Segment

# extension -> language
LANGS = {
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hh": "cpp", ".hpp": "cpp", ".hxx": "cpp", ".inl": "cpp",
    ".rs": "rust",
    ".go": "go",
    ".js": "js", ".mjs": "js", ".cjs": "js", ".jsx": "js", ".ts": "js", ".tsx": "js", ".mts": "js",
    ".java": "java", ".cs": "java", ".kt": "java", ".kts": "java", ".scala": "java", ".swift": "java",
    ".py": "python", ".pyi": "python",
    ".md": "markdown", ".markdown": "markdown", ".mdx": "markdown",
}
PY_SHEBANG = re.compile(r"^#!.*\bpython[0-9.]*\b")


def detect(path, text):
    """The language of a file from its name (and a python shebang); 'text' otherwise."""
    ext = os.path.splitext(path)[1].lower()
    if ext in LANGS:
        return LANGS[ext]
    if not ext and PY_SHEBANG.match(text[:200]):
        return "python"
    return "text"


def split_lines(text):
    """The file's lines without their "\\n" (a final newline ends the last line, it does not start one)."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def segment(lang, lines):
    """The language's top-level segments (a list of Segment; normalize() makes them a partition)."""
    if lang == "python":
        return lang_python.segments(lines)
    if lang == "markdown":
        return lang_markdown.segments(lines)
    if lang in lang_brace.LANGS:
        return lang_brace.segments(lines, lang)
    return [Segment(1, len(lines), "text")] if lines else []


class Sizer:
    """Token and byte sizes of line ranges (prefix sums)."""

    def __init__(self, lines, toks, budget, max_bytes):
        self.lines, self.budget, self.max_bytes = lines, budget, max_bytes
        self.t = [0]
        self.b = [0]
        for line, n in zip(lines, toks):
            self.t.append(self.t[-1] + n)
            self.b.append(self.b[-1] + len(line.encode("utf-8", "surrogatepass")) + 1)

    def tokens(self, a, b):
        return self.t[b] - self.t[a - 1]

    def nbytes(self, a, b):
        return self.b[b] - self.b[a - 1] - 1

    def fits(self, a, b):
        return self.tokens(a, b) <= self.budget and self.nbytes(a, b) <= self.max_bytes

    def blank(self, i):
        return not self.lines[i - 1].strip()


def normalize(segs, lo, hi, lines):
    """segs made a partition of the non-blank lines of lo..hi (see the module text)."""
    out = []
    pos = lo
    for s in sorted(segs, key=lambda s: (s.start, -s.end)):
        a, b = max(s.start, pos), min(s.end, hi)
        if a > b:
            continue
        if a > pos:
            out.append(Segment(pos, a - 1))
        out.append(s if (a, b) == (s.start, s.end) else Segment(a, b, s.kind, s.name, s.children))
        pos = b + 1
    if pos <= hi:
        out.append(Segment(pos, hi))
    res = []
    for s in out:
        a, b = s.start, s.end
        while a <= b and not lines[a - 1].strip():
            a += 1
        while b >= a and not lines[b - 1].strip():
            b -= 1
        if a > b:
            continue
        if (a, b) != (s.start, s.end):
            s = Segment(a, b, s.kind, s.name, s.children)
        res.append(s)
    return res


def chunk_lines(lines, toks, lang, budget, overlap, max_bytes):
    """The chunks of a file: lines, their token counts (without the encoder's special tokens), the
    language, the budget in tokens per chunk (without the special tokens), the overlap in tokens
    between windows, the maximum bytes per chunk."""
    if budget < 1:
        raise ValueError("chunk budget must be at least 1 token")
    sz = Sizer(lines, toks, budget, max_bytes)
    items = expand(normalize(segment(lang, lines), 1, len(lines), lines), sz, max(0, min(overlap, budget // 2)))
    return pack(items, sz)


def expand(segs, sz, overlap):
    items = []
    for s in segs:
        if sz.fits(s.start, s.end):
            items.append(s)
        elif s.children:
            items.extend(expand(normalize(s.children, s.start, s.end, sz.lines), sz, overlap))
        else:
            items.extend(windows(s, sz, overlap))
    return items


def pack(items, sz):
    chunks, group = [], []

    def flush():
        if group:
            a, b = group[0].start, group[-1].end
            names = [g.name for g in group if g.name]
            kind = group[0].kind if len(group) == 1 else "group"
            chunks.append(Chunk(a, b, "\n".join(sz.lines[a - 1:b]), kind, names))
            del group[:]

    for it in items:
        if isinstance(it, Chunk):
            flush()
            chunks.append(it)
        elif group and sz.fits(group[0].start, it.end):
            group.append(it)
        else:
            flush()
            group.append(it)
    flush()
    return chunks


def windows(s, sz, overlap):
    """Segment s cut into windows of whole lines that fit, `overlap` tokens repeated between neighbours.

    Balanced: as many windows as the budget needs, each about the same size, rather than full windows
    and a scrap of a tail.  The target size starts 10% above the even share (line granularity) and
    is lowered a few times while the last window would still be a scrap (under a quarter of the
    budget); the first cut whose smallest window is largest is kept."""
    total = sz.tokens(s.start, s.end)
    step = max(1, sz.budget - overlap)
    n = max(1, -(-max(0, total - overlap) // step))
    even = (total + (n - 1) * overlap) / n
    best, best_min = None, -1
    for f in (1.1, 1.0, 0.95, 0.9, 0.85, 0.8):
        out = _windows(s, sz, overlap, min(sz.budget, int(f * even) + 1))
        whole = [sz.tokens(c.start, c.end) for c in out if not c.part]
        smallest = min(whole) if whole else 0
        if smallest > best_min:
            best, best_min = out, smallest
        if len(whole) < 2 or whole[-1] >= sz.budget // 4:
            break
    return best


def _windows(s, sz, overlap, target):
    out = []
    names = [s.name] if s.name else []
    i, end = s.start, s.end
    while i <= end:
        while i <= end and sz.blank(i):
            i += 1
        if i > end:
            break
        if not sz.fits(i, i):                 # one line alone is too big: pieces of it
            out.extend(Chunk(i, i, p, "window", names, k, off) for k, (off, p) in enumerate(
                split_text(sz.lines[i - 1], sz.tokens(i, i), sz.budget, sz.max_bytes), 1))
            i += 1
            continue
        j = i
        while j < end and sz.fits(i, j + 1) and sz.tokens(i, j + 1) <= target:
            j += 1
        if j < end:                           # end at a blank line in the window's last quarter
            for k in range(j, i + (j - i) * 3 // 4, -1):
                if sz.blank(k) and k - 1 >= i:
                    j = k - 1
                    break
        while sz.blank(j):
            j -= 1
        out.append(Chunk(i, j, "\n".join(sz.lines[i - 1:j]), "window", names))
        if j >= end:
            break
        nxt = j + 1
        while nxt - 1 > i and sz.tokens(nxt - 1, j) <= overlap:
            nxt -= 1
        i = nxt
    return out


def split_text(text, ntok, budget, max_bytes):
    """A string too big for one chunk cut into (offset, piece) pairs by characters, at white space
    when there is some near the cut; the sizes are estimates (ntok: its token count), refine()
    checks them."""
    pieces = []
    n = len(text)
    per = max(1, int(n * budget / max(ntok, 1) * 0.9))
    per = min(per, max(1, max_bytes // 4))
    i = 0
    while i < n:
        j = min(n, i + per)
        if j < n:
            k = text.rfind(" ", i + per * 3 // 4, j)
            if k > i:
                j = k + 1
        p = text[i:j]
        if p.strip():
            pieces.append((i, p))
        i = j
    return pieces


def refine(chunks, count, max_tokens, max_bytes):
    """Checks each chunk with count(list of texts) -> token counts as the encoder sees them (special
    tokens included) and splits any over max_tokens or max_bytes in two until all fit.  Then numbers
    the pieces of ranges that occur more than once (part 1, 2, ...)."""
    done, todo = [], list(chunks)
    for _ in range(64):
        if not todo:
            break
        again = []
        for c, n in zip(todo, count([c.text for c in todo])):
            if n <= max_tokens and len(c.text.encode("utf-8", "surrogatepass")) <= max_bytes:
                done.append(c)
            else:
                again.extend(halve(c))
        todo = again
    if todo:
        raise RuntimeError("could not cut a chunk to fit %d tokens" % max_tokens)
    done.sort(key=lambda c: (c.start, c.end, c.off))
    return number_parts(done)


def halve(c):
    """Two chunks for one that does not fit: by lines when it has several, else by characters."""
    lines = c.text.split("\n")
    if c.end > c.start and len(lines) == c.end - c.start + 1:
        total = len(c.text)
        acc, cut = 0, 1
        for k, line in enumerate(lines[:-1], 1):
            acc += len(line) + 1
            cut = k
            if acc >= total / 2:
                break
        out = []
        for a, part in ((c.start, lines[:cut]), (c.start + cut, lines[cut:])):
            while part and not part[0].strip():
                part, a = part[1:], a + 1
            while part and not part[-1].strip():
                part = part[:-1]
            if part:
                out.append(Chunk(a, a + len(part) - 1, "\n".join(part), "window", c.names))
        return out
    t = c.text
    mid = len(t) // 2
    k = t.rfind(" ", len(t) // 4, mid)
    mid = k + 1 if k > 0 else max(1, mid)
    return [Chunk(c.start, c.end, p, "window", c.names, 1, c.off + o)
            for o, p in ((0, t[:mid]), (mid, t[mid:])) if p.strip()]


def number_parts(chunks):
    """Chunks that share a line range (pieces of one long line) get parts 1, 2, ... in order; a range
    that occurs once has part 0 (no suffix in its element name)."""
    seen = {}
    for c in chunks:
        seen.setdefault((c.start, c.end), []).append(c)
    for group in seen.values():
        for k, c in enumerate(group, 1):
            c.part = k if len(group) > 1 else 0
    return chunks
