"""Segment and Chunk, shared by chunk.py and the segmenters."""


class Segment:
    """Lines start..end (1-based, inclusive) that belong together."""
    __slots__ = ("start", "end", "kind", "name", "children")

    def __init__(self, start, end, kind="block", name=None, children=None):
        self.start, self.end, self.kind, self.name, self.children = start, end, kind, name, children

    def __repr__(self):
        return "Segment(%d, %d, %r, %r%s)" % (self.start, self.end, self.kind, self.name,
                                              ", %d children" % len(self.children) if self.children else "")


class Chunk:
    """One element of the vector set: lines start..end (part > 0: the part-th piece of a long line)."""
    __slots__ = ("start", "end", "text", "kind", "names", "part", "off")

    def __init__(self, start, end, text, kind, names, part=0, off=0):
        self.start, self.end, self.text, self.kind, self.names = start, end, text, kind, names
        self.part, self.off = part, off     # off: a piece's offset in its line (characters)

    def element(self, path):
        """The element name: the file's relative path and the line range (seed risk A4: the full path,
        so src/main.rs and examples/main.rs never collide)."""
        return "%s:%d-%d%s" % (path, self.start, self.end, "#%d" % self.part if self.part else "")

    def __repr__(self):
        return "Chunk(%d, %d, %r, %r, part=%d, %r)" % (self.start, self.end, self.kind, self.names, self.part,
                                                       self.text[:40])
