"""Segmenter for brace languages: C, C++, Rust, Go, JavaScript / TypeScript, Java-likes.

A tolerant scanner, not a parser.  It lexes the file once, skipping
comments (// and /* */, nested in Rust), strings ("...", '...' where they
are strings or char literals, Rust lifetimes told apart from chars, Rust
raw strings r#"..."#, Go raw strings `...`, JS template literals with
${...} inside, JS regex literals after an operator), and C preprocessor
lines (with their \\ continuations), and records for each line the bracket
depth ({ ( [ together) at its end, the last significant character, and
whether it ends inside a string or comment.

A unit at depth d is a run of lines that ends on a line back at depth d
whose last significant character closes a statement: `;` or `}` in C, C++,
Rust and Java (so `static int\\nfoo(void)\\n{` stays together and a
`typedef struct {...} t;` ends at its `;`), anything but an operator or an
opening bracket in Go and JS (their statements end at the newline), or a
preprocessor line.  Comments and attributes above an item are lines that
do not close anything, so they stay with it.  Unbalanced input (an #if
with two opening braces) only makes units bigger; it never loses lines.

A unit whose header names a container - `impl`, `mod`, `trait`, `class`,
`namespace`, `extern "C"`, a Go `var (` block... - gets its items at depth
d+1 as children, used when it is too big to be one chunk.  Other big units
(long functions) are cut into windows by chunk.py.
"""
import re

from .segment import Segment

LANGS = {"c", "cpp", "rust", "go", "js", "java"}

_CLOSERS = {"c": ";}", "cpp": ";}", "rust": ";}", "java": ";}"}
_CONTINUE = set(",([{=+-*/%&|^<>!?:.~\\")
_CONTAINER = {
    "c": re.compile(r'\bextern\s*"C(\+\+)?"|\b(struct|union|enum)\b[^(]*$', re.S),
    "cpp": re.compile(r'\bextern\s*"C(\+\+)?"|\bnamespace\b|\b(class|struct|union|enum)\b[^(]*$', re.S),
    "rust": re.compile(r"\b(impl|mod|trait)\b|\bextern\s*\"C\""),
    "go": re.compile(r"^\s*(var|const|type|import)\s*\(", re.M),
    "js": re.compile(r"\bclass\b|\bnamespace\b|\binterface\b"),
    "java": re.compile(r"\b(class|interface|namespace|enum|struct|object|record|trait|extension|protocol)\b"),
}
_REGEX_BEFORE = set("(,=:[!&|?{};+-*%<>~^")
_REGEX_WORDS = {"return", "typeof", "case", "do", "else", "in", "of", "new", "delete", "void", "throw", "yield",
                "await"}
_IDENT = re.compile(r"[A-Za-z0-9_$]")

CODE, BLOCK, STR, RAW, TEMPLATE = range(5)


class Lines:
    """Per-line facts from the scan (0-based lists)."""

    def __init__(self, n):
        self.depth = [0] * n      # bracket depth at the end of the line
        self.last = [""] * n      # last significant character outside comments
        self.code = [False] * n   # has something outside comments
        self.pre = [False] * n    # a C preprocessor line
        self.open = [False] * n   # ends inside a string or a comment


def scan(lines, lang):
    info = Lines(len(lines))
    depth = 0
    state, quote, nest, term = CODE, "", 0, ""
    stack = []                    # JS: "{" for a brace, "T" for a template's ${
    c_like = lang in ("c", "cpp")
    in_pre = False
    prev_sig = ""                 # JS regex detection: the previous significant character / word
    prev_word = ""
    for li, line in enumerate(lines):
        n = len(line)
        j = 0
        last = ""
        if c_like and state == CODE and (in_pre or line.lstrip().startswith("#")):
            info.pre[li] = True
            in_pre = line.rstrip().endswith("\\")
            info.open[li] = in_pre            # a directive continued on the next line
            info.depth[li] = depth
            continue
        while j < n:
            ch = line[j]
            if state == CODE:
                nx = line[j + 1] if j + 1 < n else ""
                if ch == "/" and nx == "/":
                    break
                if ch == "/" and nx == "*":
                    state, nest = BLOCK, 1
                    j += 2
                    continue
                if ch.isspace():
                    j += 1
                    continue
                info.code[li] = True
                if ch == '"':
                    state, quote = STR, '"'
                elif ch == "'":
                    if lang == "rust":
                        # 'a' or '\n' is a char, 'a (no closing quote after one char) a lifetime
                        if nx == "\\" or (j + 2 < n and line[j + 2] == "'"):
                            state, quote = STR, "'"
                    else:
                        state, quote = STR, "'"
                elif ch == "`" and lang == "go":
                    state, term = RAW, "`"
                elif ch == "`" and lang == "js":
                    state = TEMPLATE
                elif lang == "rust" and ch in "rb" and (j == 0 or not _IDENT.match(line[j - 1])):
                    m = re.match(r"b?r(#*)\"", line[j:])
                    if m:
                        state, term = RAW, '"' + m.group(1)
                        j += m.end()
                        last = '"'
                        continue
                elif lang == "js" and ch == "/" and (prev_sig in _REGEX_BEFORE or prev_sig == "" or
                                                     prev_word in _REGEX_WORDS):
                    k = _regex_end(line, j)
                    if k > 0:
                        j = k
                        last = prev_sig = "/"
                        prev_word = ""
                        continue
                elif ch in "{([":
                    depth += 1
                    if lang == "js" and ch == "{":
                        stack.append("{")
                elif ch in "})]":
                    if lang == "js" and ch == "}" and stack and stack[-1] == "T":
                        stack.pop()
                        state = TEMPLATE
                        j += 1
                        continue
                    if lang == "js" and ch == "}" and stack:
                        stack.pop()
                    depth = max(0, depth - 1)
                last = ch
                if _IDENT.match(ch):
                    m = re.match(r"[A-Za-z0-9_$]+", line[j:])
                    prev_word = m.group(0)
                    last = prev_word[-1]
                    prev_sig = "a"
                    j += m.end()
                    continue
                prev_sig, prev_word = ch, ""
                j += 1
            elif state == BLOCK:
                if line.startswith("*/", j):
                    nest -= 1
                    j += 2
                    if nest == 0 or lang != "rust":
                        state = CODE
                elif lang == "rust" and line.startswith("/*", j):
                    nest += 1
                    j += 2
                else:
                    j += 1
            elif state == STR:
                if ch == "\\":
                    j += 2
                    continue
                j += 1
                if ch == quote:
                    state = CODE
                    last = prev_sig = quote
                    prev_word = ""
            elif state == RAW:
                if line.startswith(term, j):
                    j += len(term)
                    state = CODE
                    last = prev_sig = '"'
                else:
                    j += 1
            else:  # TEMPLATE
                if ch == "\\":
                    j += 2
                    continue
                if ch == "`":
                    state = CODE
                    last = prev_sig = "`"
                    j += 1
                    continue
                if line.startswith("${", j):
                    stack.append("T")
                    state = CODE
                    j += 2
                    continue
                j += 1
        if state == STR and lang != "rust" and not line.endswith("\\"):
            state = CODE          # an unterminated one-line string: tolerate it
        info.depth[li] = depth
        info.last[li] = last
        info.code[li] = info.code[li] or bool(last)
        info.open[li] = state != CODE
    return info


def _regex_end(line, j):
    """The index after a JS regex literal starting at line[j] == '/', or 0 when there is none on the line."""
    k, n, cls = j + 1, len(line), False
    while k < n:
        c = line[k]
        if c == "\\":
            k += 2
            continue
        if c == "[":
            cls = True
        elif c == "]":
            cls = False
        elif c == "/" and not cls:
            k += 1
            while k < n and line[k].isalpha():
                k += 1
            return k
        k += 1
    return 0


def _closes(info, i, lang):
    if info.pre[i]:
        return not info.open[i]
    if info.open[i] or not info.code[i]:
        return False
    closers = _CLOSERS.get(lang)
    if closers:
        return info.last[i] in closers
    return info.last[i] not in _CONTINUE


def units(lines, info, lang, lo, hi, d):
    """(start, end) pairs of the units at depth d in lines lo..hi (0-based, inclusive)."""
    out, start = [], None
    for i in range(lo, hi + 1):
        if start is None:
            if not lines[i].strip():
                continue
            start = i
        if info.depth[i] <= d and _closes(info, i, lang):
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, hi))
    return out


def name_of(lines, a, b):
    """A unit's display name: its first line that is code (not a comment, attribute or decorator)."""
    for k in range(a, min(b, a + 40) + 1):
        s = lines[k].strip()
        if not s or s.startswith(("//", "/*", "*", "#[", "#!", "@")) or (s.startswith("#") and not s.startswith(
                "#define")):
            continue
        return s[:120]
    return None


def build(lines, info, lang, lo, hi, d, kind):
    segs = []
    for a, b in units(lines, info, lang, lo, hi, d):
        seg = Segment(a + 1, b + 1, kind, name_of(lines, a, b))
        # a container: an opening line (depth above d) before its last line, and a header that says so
        o = next((k for k in range(a, b) if info.depth[k] > d), None)
        if o is not None and info.depth[b] <= d and b > o + 1 and d < 8:
            header = "\n".join(lines[a:o + 1])
            if _CONTAINER[lang].search(_strip_comments(header)):
                seg.children = [Segment(a + 1, o + 1, "header", seg.name)]
                seg.children += build(lines, info, lang, o + 1, b - 1, info.depth[o], "item")
                seg.children.append(Segment(b + 1, b + 1, "footer"))
        segs.append(seg)
    return segs


def _strip_comments(s):
    return re.sub(r"//[^\n]*|/\*.*?\*/", " ", s, flags=re.S)


def segments(lines, lang):
    info = scan(lines, lang)
    return build(lines, info, lang, 0, len(lines) - 1, 0, "unit")
