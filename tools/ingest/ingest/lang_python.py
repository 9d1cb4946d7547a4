"""Segmenter for Python: the ast module.

Each def / async def / class at the top of the module is a segment, from
its first decorator (and the comment lines right above it) to its last
line; the statements between them are "block" segments.  A class's
children are its header (the class line, its docstring and whatever comes
before its first method) and its methods, the same way, so a class too big
for one chunk is cut at method boundaries; a function too big is cut into
windows by chunk.py.  A file the running Python cannot parse (Python 2, a
syntax error) falls back to an indentation scan: a line at column 0 that
starts with def, class, async def or @ starts a segment.
"""
import ast
import re

from .segment import Segment

_DEF = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_TOP = re.compile(r"(def|class|async\s+def)\s|@")


def segments(lines):
    text = "\n".join(lines)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return indent_segments(lines)
    return body(tree.body, lines)


def _start(node, lines):
    """A def's first line: its first decorator, then the comment lines directly above at its indentation."""
    a = min([node.lineno] + [d.lineno for d in node.decorator_list])
    indent = len(lines[a - 1]) - len(lines[a - 1].lstrip())
    while a > 1:
        prev = lines[a - 2]
        if prev.lstrip().startswith("#") and len(prev) - len(prev.lstrip()) == indent:
            a -= 1
        else:
            break
    return a


def _name(node):
    if isinstance(node, ast.ClassDef):
        return "class " + node.name
    return ("async def " if isinstance(node, ast.AsyncFunctionDef) else "def ") + node.name


def body(stmts, lines):
    segs = []
    for node in stmts:
        if not isinstance(node, _DEF):
            continue
        a, b = _start(node, lines), node.end_lineno
        seg = Segment(a, b, "class" if isinstance(node, ast.ClassDef) else "function", _name(node))
        if isinstance(node, ast.ClassDef):
            inner = body(node.body, lines)
            if inner:
                first = inner[0].start
                seg.children = [Segment(a, first - 1, "header", seg.name)] if first > a else []
                seg.children += inner
        segs.append(seg)
    return segs


def indent_segments(lines):
    segs, cur = [], None
    for i, line in enumerate(lines, 1):
        if line[:1] and not line[0].isspace() and not line.startswith(("#", ")", "]", "}")):
            m = re.match(r"(?:async\s+)?(def|class)\s+(\w+)", line)
            name = m and "%s %s" % (m.group(1), m.group(2))
            if line.startswith("@") or m:
                if cur is not None and cur.kind == "decorator":
                    cur.end = i
                    if m:
                        cur.kind, cur.name = "function", name
                    continue
                if cur is not None:
                    segs.append(cur)
                cur = Segment(i, i, "function" if m else "decorator", name)
            else:                      # a statement at column 0 ends the def
                if cur is not None:
                    segs.append(cur)
                cur = None
        elif cur is not None:
            cur.end = i
    if cur is not None:
        segs.append(cur)
    return segs
