"""index_worker.py - a separate process for test_find's multi-process test.

    python3 index_worker.py PORT PREFIX create START   -> schema.create(), prints the report's state
    python3 index_worker.py PORT PREFIX write START N  -> N random updates through save()

Both wait until the wall-clock time START so that they all run at once.
"""
from __future__ import annotations

import os
import random
import sys
import time
from typing import Annotated

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import inferkv  # noqa: E402
from inferkv import Model, Range, Tag  # noqa: E402

COLORS = ["red", "green", "blue", "cyan"]


class Paint(Model):
    """Version 2 of the model: the same fields as version 1, now indexed."""

    color: Annotated[str, Tag()]
    n: Annotated[int, Range()]


def main() -> None:
    port, prefix, role, start = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
    c = inferkv.Client(port=port)
    schema = c.schema(prefix)
    repo = schema.register(Paint, name="Paint")
    time.sleep(max(0.0, start - time.time()))
    if role == "create":
        print(schema.create().models["Paint"])
    else:
        rnd = random.Random(os.getpid())
        for _ in range(int(sys.argv[5])):
            i = rnd.randrange(300)
            repo.save(Paint(id=f"p{i}", color=rnd.choice(COLORS), n=rnd.randrange(1000)))
        print("wrote")
    c.close()


if __name__ == "__main__":
    main()
