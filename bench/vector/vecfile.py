"""vecfile.py - reader and writer for the vector benchmark's matrix files.

The vector benchmark (bench/vector/) keeps every dataset as a few flat files
that C++, Node and Python read without a parser: a 16-byte header, then a
row-major matrix of little-endian 4-byte values.

    offset  size  field
    0       4     magic: b"IKVF" (float32 rows) or b"IKVI" (int32 rows)
    4       4     version, uint32 LE, = 1
    8       4     rows, uint32 LE (vectors, or queries for a ground truth file)
    12      4     cols, uint32 LE (dimension, or k for a ground truth file)
    16      ...   rows * cols values, float32 LE or int32 LE, row after row

The data starts at byte 16, so it stays 16-byte aligned when a file is
mapped.  A dataset directory written by gen_vectors.py holds:

    base.f32        n x dim      the vectors to index (L2-normalised)
    queries.f32     q x dim      query vectors (same distribution, not in base)
    gt.i32          q x 100      exact top-100 ids (row numbers in base.f32)
                                 by cosine similarity, best first
    gt_scores.f32   q x 100      the cosine similarities matching gt.i32
    meta.json       how the set was made (kind, n, dim, seed, sigma, ...)

Imported by gen_vectors.py and recall.py; hnswlib_peer.cpp and
usearch_peer.mjs carry their own ten-line readers of the same layout.
"""
import os
import struct

import numpy as np

MAGIC_F32 = b"IKVF"
MAGIC_I32 = b"IKVI"
VERSION = 1
HEADER = struct.Struct("<4sIII")  # 16 bytes


class FormatError(Exception):
    pass


def _dtype(magic):
    if magic == MAGIC_F32:
        return np.dtype("<f4")
    if magic == MAGIC_I32:
        return np.dtype("<i4")
    raise FormatError("bad magic %r (want %r or %r)" % (magic, MAGIC_F32, MAGIC_I32))


def read_header(path):
    """(magic, rows, cols) of a matrix file; FormatError when it is not one."""
    if not os.path.exists(path):
        raise FileNotFoundError("dataset file missing: %s (make it with bench/vector/gen_vectors.py)" % path)
    with open(path, "rb") as f:
        head = f.read(HEADER.size)
    if len(head) != HEADER.size:
        raise FormatError("%s: shorter than the 16-byte header" % path)
    magic, version, rows, cols = HEADER.unpack(head)
    _dtype(magic)
    if version != VERSION:
        raise FormatError("%s: version %d, this reader knows %d" % (path, version, VERSION))
    want = HEADER.size + rows * cols * 4
    have = os.path.getsize(path)
    if have != want:
        raise FormatError("%s: %d bytes, header says %d" % (path, have, want))
    return magic, rows, cols


def read_matrix(path, mmap=True):
    """The matrix in `path` as a (rows, cols) numpy array (float32 or int32),
    memory-mapped read-only unless mmap=False."""
    magic, rows, cols = read_header(path)
    dt = _dtype(magic)
    if mmap:
        return np.memmap(path, dtype=dt, mode="r", offset=HEADER.size, shape=(rows, cols))
    with open(path, "rb") as f:
        f.seek(HEADER.size)
        return np.fromfile(f, dtype=dt, count=rows * cols).reshape(rows, cols)


class MatrixWriter:
    """Streams rows into a matrix file: the header is written up front (rows
    and cols are known), then write(block) appends row blocks in order."""

    def __init__(self, path, rows, cols, kind="f32"):
        self.magic = MAGIC_F32 if kind == "f32" else MAGIC_I32
        self.dtype = _dtype(self.magic)
        self.rows, self.cols, self.done = rows, cols, 0
        self.path = path
        self.tmp = path + ".part"
        self.f = open(self.tmp, "wb")
        self.f.write(HEADER.pack(self.magic, VERSION, rows, cols))

    def write(self, block):
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.ndim != 2 or block.shape[1] != self.cols:
            raise ValueError("block of shape %s, want (*, %d)" % (block.shape, self.cols))
        if self.done + block.shape[0] > self.rows:
            raise ValueError("more rows than the header says (%d)" % self.rows)
        block.tofile(self.f)
        self.done += block.shape[0]

    def close(self):
        self.f.close()
        if self.done != self.rows:
            os.unlink(self.tmp)
            raise ValueError("%s: wrote %d rows of %d" % (self.path, self.done, self.rows))
        os.replace(self.tmp, self.path)  # a file is either whole or absent


def write_matrix(path, array, kind=None):
    array = np.asarray(array)
    if kind is None:
        kind = "i32" if np.issubdtype(array.dtype, np.integer) else "f32"
    w = MatrixWriter(path, array.shape[0], array.shape[1], kind)
    w.write(array)
    w.close()
