"""The sliding-window counter: two fixed-window counts, the previous one weighted by how much of it
still overlaps the sliding window. Constant memory per key and one atomic step in Redis, unlike a
sliding log; and no 2x burst at a window edge, unlike a fixed window. The same math runs in Lua
(see redis_state.py) so memory and Redis state agree.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from service.rate_limits import RateLimit


@dataclass(frozen=True)
class Check:
    """One limit to apply to this request: the scope name, a hashed key, and the policy."""

    scope: str
    key: str
    policy: RateLimit


@dataclass(frozen=True)
class Decision:
    scope: str
    policy: RateLimit
    allowed: bool
    remaining: int
    reset_seconds: int
    retry_after: int


def estimate(previous: int, current: int, window: int, now: float) -> tuple[float, float]:
    """The sliding estimate of requests in the last `window` seconds, and the window's elapsed part."""
    elapsed = (now % window) / window
    return previous * (1.0 - elapsed) + current, elapsed


def decide(check: Check, previous: int, current: int, now: float) -> Decision:
    """Whether one more request fits, and when to come back if it does not."""
    limit, window = check.policy.limit, check.policy.window_seconds
    used, elapsed = estimate(previous, current, window, now)
    allowed = used + 1 <= limit
    reset_seconds = max(1, math.ceil(window * (1.0 - elapsed)))
    retry_after = 0 if allowed else _seconds_until_room(previous, current, limit, window, elapsed)
    remaining = max(0, math.floor(limit - used - (1 if allowed else 0)))
    return Decision(check.scope, check.policy, allowed, remaining, reset_seconds, retry_after)


def _seconds_until_room(previous: int, current: int, limit: int, window: int, elapsed: float) -> int:
    room = limit - 1 - current
    if room >= 0 and previous > 0:
        # Still in this window: wait until the previous window's weight has decayed enough.
        wait = (1.0 - room / previous - elapsed) * window
    else:
        # Only the next window helps; there the current count becomes the decaying one.
        needed = 1.0 - (limit - 1) / current if current > 0 else 0.0
        wait = (1.0 - elapsed) * window + max(0.0, needed) * window
    return max(1, math.ceil(wait))


class MemoryLimiter:
    """Per-process sliding-window counters: the default, and the fallback when Redis is down."""

    def __init__(self, max_keys: int = 100_000) -> None:
        # key -> (window seconds, window index, count in that window, count in the one before)
        self._windows: dict[str, tuple[int, int, int, int]] = {}
        self._max_keys = max_keys

    def _counts(self, key: str, window: int, index: int) -> tuple[int, int]:
        """(previous, current) counts for the window with this index."""
        stored = self._windows.get(key)
        if stored is None:
            return 0, 0
        _, stored_index, current, previous = stored
        if stored_index == index:
            return previous, current
        if stored_index == index - 1:
            return current, 0
        return 0, 0

    def hit(self, checks: list[Check], now: float | None = None) -> list[Decision]:
        """Decide every check; count the request in all of them only if all allow it."""
        now = time.time() if now is None else now
        decisions = []
        for check in checks:
            window = check.policy.window_seconds
            previous, current = self._counts(check.key, window, int(now // window))
            decisions.append(decide(check, previous, current, now))
        if all(decision.allowed for decision in decisions):
            for check in checks:
                self.add(check, now)
        return decisions

    def add(self, check: Check, now: float | None = None) -> None:
        """Count one request without deciding (for a scope learned only after the fact)."""
        now = time.time() if now is None else now
        window = check.policy.window_seconds
        index = int(now // window)
        previous, current = self._counts(check.key, window, index)
        self._windows[check.key] = (window, index, current + 1, previous)
        if len(self._windows) > self._max_keys:
            self._forget_stale(now)

    def _forget_stale(self, now: float) -> None:
        """Drop keys idle for two windows; bounds memory under a flood of distinct keys."""
        stale = [
            key for key, (window, index, _, _) in self._windows.items() if index < int(now // window) - 1
        ]
        for key in stale:
            del self._windows[key]
        # Still too many live keys (a flood of distinct IPs): forget the oldest rather than grow.
        for key in list(self._windows)[: max(0, len(self._windows) - self._max_keys * 9 // 10)]:
            del self._windows[key]
