"""Fixed-window counters, the way Appwrite's abuse TimeLimit counts.

Windows start at multiples of their length since the epoch. A hit is counted only while under the
limit; `remaining` is reported before this hit is counted, minus one, never below zero, which is
what the `X-RateLimit-Remaining` header of a real server says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowDecision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # unix seconds at which the current window ends

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class FixedWindowLimiter:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        # key -> (window start, hits); one entry per key, so memory is bounded by the keys.
        self._windows: dict[Hashable, tuple[int, int]] = {}

    def hit(self, key: Hashable, limit: int, seconds: int) -> WindowDecision:
        start = math.floor(self._clock() / seconds) * seconds
        window_start, count = self._windows.get(key, (start, 0))
        if window_start != start:
            count = 0
        remaining = max(0, limit - (count + 1))
        allowed = count < limit
        if allowed:
            count += 1
        self._windows[key] = (start, count)
        return WindowDecision(allowed, limit, remaining, start + seconds)

    def forget(self, key: Hashable) -> None:
        self._windows.pop(key, None)

    def clear(self) -> None:
        self._windows.clear()
