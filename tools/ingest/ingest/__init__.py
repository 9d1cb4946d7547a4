"""inferkv-ingest / inferkv-ask: a source tree as an inferkv vector set.

Modules:
  walk      the tree: include / exclude globs, binary and huge files skipped
  segment   Segment and Chunk
  chunk     segments -> chunks that fit the encoder (packing, windows), per-language dispatch
  lang_*    the segmenters: brace languages (C, C++, Rust, Go, JS/TS, Java...),
            Python (ast), Markdown (headings)
  index     the corpus in the server: key names, per-file records, the plan, the writes
  progress  the progress line / 10% lines
  cli       the two command lines

Python 3 standard library plus Debian's python3-redis; nothing from PyPI.
Design and key layout: docs/ingest.md.
"""

VERSION = "1"
