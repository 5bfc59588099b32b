"""``python -m bench.gc_probe LOG streamhub-args...``: ``streamhub`` with every full garbage collection logged.

One line per full collection (generation 2) to LOG: its start on ``time.monotonic()`` (the clock the load
generators report on), its duration, and the objects it freed. The probe is the last ``gc.callbacks`` entry, and
``streamhub.heap`` puts itself first, so a duration includes the freezing done right after the collection.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any, TextIO

__all__ = ["main", "read"]


class _Probe:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.monotonic()
        else:
            self._out.write(f"{self._started:.6f} {time.monotonic() - self._started:.6f} {info['collected']}\n")


def read(path: str, start: float = 0.0, end: float = float("inf")) -> dict[str, float]:
    """Full collections that started in [start, end]: how many, their total and longest pause (ms)."""
    pauses = []
    with open(path) as log:
        for line in log:
            began, took, _ = line.split()
            if start <= float(began) <= end:
                pauses.append(float(took))
    return {"count": len(pauses), "total_ms": round(sum(pauses) * 1000, 1),
            "max_ms": round(max(pauses, default=0.0) * 1000, 1)}


def main() -> None:
    out = open(sys.argv[1], "a", buffering=1)  # open for the life of the process
    gc.callbacks.append(_Probe(out))
    from streamhub.cli import main as streamhub

    raise SystemExit(streamhub(sys.argv[2:]))


if __name__ == "__main__":
    main()
