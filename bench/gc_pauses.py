"""Run a module as `python -m` would, writing down every full garbage collection it makes (the
oldest generation: the one that walks every object the process holds, and so grows with its
sockets), one line each: when it started (CLOCK_MONOTONIC, the clock every process on the machine
shares) and how long it took, in seconds.

    python -m bench.gc_pauses LOG MODULE [ARGS...]

The relay benchmark runs its servers this way to tell how much of an event's way to the last page
was the server stopped in a collection.
"""

from __future__ import annotations

import gc
import runpy
import sys
import time
from pathlib import Path
from typing import Any

OLDEST = 2


class FullCollections:
    def __init__(self, log: Path) -> None:
        self._log = log.open("a", buffering=1)  # a line per collection, seen at once by the reader
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != OLDEST:
            return
        if phase == "start":
            self._started = time.monotonic()
        else:
            self._log.write(f"{self._started:.6f} {time.monotonic() - self._started:.6f}\n")


def read_pauses(log: Path, since: float, until: float) -> list[float]:
    """The full collections that started between `since` and `until` (monotonic): their lengths."""
    if not log.exists():
        return []
    pauses = []
    for line in log.read_text().splitlines():
        started, seconds = (float(field) for field in line.split())
        if since <= started <= until:
            pauses.append(seconds)
    return pauses


def main() -> None:
    log, module, *args = sys.argv[1:]
    gc.callbacks.append(FullCollections(Path(log)))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
