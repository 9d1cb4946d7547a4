"""Segmenter for Markdown: one segment per heading.

A section runs from its heading to the line before the next heading of
any level; what comes before the first heading is a section of its own.
ATX headings (`#` to `######`, up to three spaces of indentation) and
setext headings (a paragraph line underlined with `===` or `---`) count;
lines inside fenced code blocks (``` or ~~~, closed by a fence of the same
character at least as long) and indented code do not.  A segment's name is
its heading path, "Title > Section > Subsection", which chunk.py keeps in
the chunk's attributes.  A section too big for one chunk is cut into
windows, at blank lines (paragraph ends) where it can.
"""
import re

from .segment import Segment

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t\r]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t\r]*$")
_LIST = re.compile(r"^ {0,3}([-*+]|\d+[.)])[ \t]")


def headings(lines):
    """(line number, level, title) of each heading, in order."""
    out = []
    fence = None
    for i, line in enumerate(lines, 1):
        m = _FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(
                    m.group(1)):].strip():
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        m = _ATX.match(line)
        if m:
            out.append((i, len(m.group(1)), (m.group(2) or "").strip()))
            continue
        if i >= 2 and _SETEXT.match(line) and lines[i - 2].strip():
            prev = lines[i - 2]
            if not _LIST.match(prev) and not prev.startswith(("    ", "\t", ">")) and not _ATX.match(prev) \
                    and not _FENCE.match(prev) and (not out or out[-1][0] != i - 1):
                level = 1 if line.strip()[0] == "=" else 2
                # the paragraph line is the heading: start the section there
                out.append((i - 1, level, prev.strip()))
    return out


def segments(lines):
    segs = []
    hs = headings(lines)
    path = []
    prev = 1
    for ln, level, title in hs:
        if ln > prev:
            segs.append(Segment(prev, ln - 1, "section", " > ".join(t for _, t in path) or None))
        path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
        prev = ln
    if prev <= len(lines):
        segs.append(Segment(prev, len(lines), "section", " > ".join(t for _, t in path) or None))
    return segs
