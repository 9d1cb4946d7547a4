"""inferkv-ingest / inferkv-ask: a source tree as an inferkv vector set.

Modules:
  walk      the tree: include / exclude globs, binary and huge files skipped
  segment   Segment and Chunk
  chunk     segments -> chunks that fit the encoder (packing, windows), per-language dispatch
  lang_*    the segmenters: brace languages (C, C++, Rust, Go, JS/TS, Java...),
            Python (ast), Markdown (headings)
  index     the corpus in the server: key names, per-file records, the plan, the writes
  run       one vector set's part of a run: setup, plan, writes (a single set, or one shard)
  corpus    the sets of a run (one, or N shards), the split checks, the writes, the summary
  topology  where a key lives: the server given, or its Redis Cluster primary (CLUSTER SLOTS)
  progress  the progress line / 10% lines
  cli       the two command lines

Python 3 standard library plus Debian's python3-redis; nothing from PyPI.
inferkv-ingest also imports clients/python/inferkv/shards.py (the shard
names), which its script puts on sys.path.
Design and key layout: docs/ingest.md.
"""

VERSION = "1"
