"""When the memory state's entries may go, so that a sweep costs what has expired, not what is held.

The LRU alone bounds the memory state, but keeps every entry until something newer pushes it out:
a million callers seen once stay a million entries. Here each entry's deadline is queued once (a
window when it opens, a cache entry when it is set), in a FIFO per lifetime: within one lifetime,
deadlines arrive in order, so the due ones are always at the front. Keys whose deadlines fall in the
same second share one bucket (a list), so a queued key costs one list slot (8 bytes).
"""

from __future__ import annotations

import math
from collections import deque


class ExpiryQueues:
    """Deadlines by lifetime. A key queued again (its window reopened, its cache entry set again) is
    queued twice: the owner checks the entry itself before dropping it."""

    def __init__(self, max_queued: int) -> None:
        # A bound like the LRU's: a flood of distinct keys cannot grow the queues without end. Past
        # it the oldest bucket goes unswept; its entries still leave the LRU by eviction.
        self._max_queued = max_queued
        self._queued = 0
        self._queues: dict[float, deque[tuple[int, list[str]]]] = {}

    def __len__(self) -> int:
        return self._queued

    def add(self, key: str, lifetime: float, deadline: float) -> None:
        second = math.ceil(deadline)
        queue = self._queues.get(lifetime)
        if queue is None:
            queue = self._queues[lifetime] = deque()
        if queue and queue[-1][0] == second:
            queue[-1][1].append(key)
        else:
            queue.append((second, [key]))
        self._queued += 1
        if self._queued > self._max_queued:
            self._queued -= len(queue.popleft()[1])

    def due(self, now: float, budget: int) -> list[tuple[str, float]]:
        """(key, lifetime) of deadlines that have passed, at most `budget`, each queue oldest first."""
        found: list[tuple[str, float]] = []
        for lifetime, queue in self._queues.items():
            while queue and queue[0][0] <= now and len(found) < budget:
                keys = queue[0][1]
                while keys and len(found) < budget:
                    found.append((keys.pop(), lifetime))
                if not keys:
                    queue.popleft()
        self._queued -= len(found)
        return found
