"""The tree walk: which files are ingested.

Paths are relative to the root, with "/" separators, in sorted order.
Skipped without a word: directories in DEFAULT_EXCLUDE_DIRS (.git and
other hidden directories, build output, caches, dependencies), files with
an extension in BINARY_EXT, symbolic links (they could leave the tree or
repeat it), and whatever --exclude names.  Skipped with a message (the
caller prints it): files larger than max_size, files with a NUL byte or
that are not UTF-8 (binary).

Globs (--include / --exclude): a pattern without "/" matches a file's name
or any directory name on its path ("*.min.js", "vendor"); a pattern with
"/" matches the whole relative path, where "*" also crosses "/" ("src/*.c",
"docs/**", "tests/fuzz/*").  With --include, only files matching at least
one include pattern are taken; --exclude wins over --include.
"""
import fnmatch
import hashlib
import os

DEFAULT_EXCLUDE_DIRS = ["node_modules", "__pycache__", "target", "dist", "build", "build-*", "venv",
                        "*.egg-info", "out"]
BINARY_EXT = {
    ".o", ".a", ".so", ".dylib", ".dll", ".exe", ".obj", ".lib", ".pyc", ".pyo", ".class", ".jar", ".wasm",
    ".gguf", ".bin", ".safetensors", ".pt", ".pth", ".onnx", ".npy", ".npz", ".pkl", ".rdb",
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".webp", ".tif", ".tiff", ".pdf", ".woff", ".woff2",
    ".ttf", ".otf", ".mp3", ".mp4", ".wav", ".ogg", ".avi", ".mov",
    ".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".tar", ".rar", ".deb", ".rpm", ".iso", ".db", ".sqlite",
}


def _match(rel, pattern):
    if "/" in pattern:
        return fnmatch.fnmatchcase(rel, pattern.strip("/")) or fnmatch.fnmatchcase(rel, pattern.strip("/") + "/*")
    return any(fnmatch.fnmatchcase(part, pattern) for part in rel.split("/"))


class Filter:
    def __init__(self, include=(), exclude=(), default_excludes=True):
        self.include = list(include)
        self.exclude = list(exclude)
        self.dir_exclude = DEFAULT_EXCLUDE_DIRS if default_excludes else []
        self.default_excludes = default_excludes

    def dir_ok(self, name, rel):
        if self.default_excludes and (name.startswith(".") or any(fnmatch.fnmatchcase(name, p)
                                                                  for p in self.dir_exclude)):
            return False
        # patterns with a "/" are judged per file (with "*" crossing "/", a directory match says
        # nothing certain about the files below it)
        return not any(fnmatch.fnmatchcase(name, p) for p in self.exclude if "/" not in p)

    def file_ok(self, rel):
        if self.default_excludes and os.path.splitext(rel)[1].lower() in BINARY_EXT:
            return False
        if any(_match(rel, p) for p in self.exclude):
            return False
        if self.include and not any(_match(rel, p) for p in self.include):
            return False
        return True


def walk(root, flt):
    """The relative paths of the regular files under root that the filter takes, sorted."""
    out = []
    root = os.path.abspath(root)
    for d, dirs, files in os.walk(root):
        reld = os.path.relpath(d, root)
        reld = "" if reld == "." else reld.replace(os.sep, "/") + "/"
        dirs[:] = sorted(x for x in dirs if not os.path.islink(os.path.join(d, x)) and flt.dir_ok(x, reld + x))
        for f in files:
            rel = reld + f
            full = os.path.join(d, f)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            if flt.file_ok(rel):
                out.append(rel)
    out.sort()
    return out


class FileData:
    """A file read for ingestion: its text and content hash, or why it is skipped."""
    __slots__ = ("rel", "text", "sha", "size", "skip")

    def __init__(self, rel, text=None, sha=None, size=0, skip=None):
        self.rel, self.text, self.sha, self.size, self.skip = rel, text, sha, size, skip


def read(root, rel, max_size):
    full = os.path.join(root, rel)
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return FileData(rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                        skip="file name not UTF-8")
    try:
        size = os.path.getsize(full)
        if size > max_size:
            return FileData(rel, size=size, skip="%d bytes, over --max-file-size %d" % (size, max_size))
        with open(full, "rb") as f:
            data = f.read(max_size + 1)
    except OSError as e:
        return FileData(rel, skip="unreadable: %s" % (e.strerror or e))
    if len(data) > max_size:
        return FileData(rel, size=len(data), skip="over --max-file-size %d" % max_size)
    if b"\0" in data:
        return FileData(rel, size=len(data), skip="binary (NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return FileData(rel, size=len(data), skip="binary or not UTF-8 (byte %d)" % e.start)
    if text.startswith("\ufeff"):
        text = text[1:]
    return FileData(rel, text, hashlib.sha256(data).hexdigest(), len(data))
