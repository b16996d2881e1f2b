"""The sliding-window counter: two fixed-window counts, the previous one weighted by how much of it
still overlaps the sliding window. Constant memory per key and one atomic step in Redis, unlike a
sliding log; and no 2x burst at a window edge, unlike a fixed window. The same math runs in Lua
(see redis_state.py) so memory and Redis state agree.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.state.expiry import ExpiryQueues
from appwrite_token_exchange.state.lru import LRU


@dataclass(frozen=True)
class Check:
    """One limit to apply to this request: the scope name, a hashed key, and the policy.

    `count=False` only looks: the request must fit, but is not counted (the caller may count it
    later with `add`, once it knows the request belongs there).
    """

    scope: str
    key: str
    policy: RateLimit
    count: bool = True


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


# One key's counts: (the current window's number, its count, the one before's). A plain tuple, not a
# NamedTuple: the garbage collector stops tracking an exact tuple of numbers, but not a subclass, and
# a full collection walking a million tracked windows doubled the CPU of an exchange at that size.
_Window = tuple[int, int, int]


def _as_window(stored: object) -> _Window | None:
    """The stored value if it is a window (the memory cache's entries in the same LRU are pairs)."""
    return stored if type(stored) is tuple and len(stored) == 3 else None


class MemoryLimiter:
    """Per-process sliding-window counters: the default, and the fallback when Redis is down.

    The windows live in an LRU bounded by MEMORY_STATE_MAX_ENTRIES (shared with the memory caches,
    see state.py). What eviction does to a limit: an evicted window forgets its count, so its key
    starts again with a full allowance. Only the least recently used go, so to reset the window of
    a caller who keeps calling, a flood must bring that many distinct new keys (IPs, sessions,
    users) between two of the caller's requests, each key a request that passed the IP limit.
    """

    def __init__(self, store: LRU[str, object] | None = None, max_entries: int = 100_000) -> None:
        self._store: LRU[str, object] = store if store is not None else LRU(max_entries)
        self._expiries = ExpiryQueues(self._store.max_entries)

    def _counts(self, key: str, index: int) -> tuple[int, int]:
        """(previous, current) counts for the window with this index."""
        stored = _as_window(self._store.get(key))
        if stored is None:
            return 0, 0
        number, current, previous = stored
        if number == index:
            return previous, current
        if number == index - 1:
            return current, 0
        return 0, 0

    def hit(self, checks: list[Check], now: float | None = None) -> list[Decision]:
        """Decide every check; count the request (where `count`) only if all allow it."""
        now = time.time() if now is None else now
        decisions = []
        for check in checks:
            previous, current = self._counts(check.key, int(now // check.policy.window_seconds))
            decisions.append(decide(check, previous, current, now))
        if all(decision.allowed for decision in decisions):
            for check in checks:
                if check.count:
                    self.add(check, now)
        return decisions

    def add(self, check: Check, now: float | None = None) -> None:
        """Count one request without deciding (for a scope learned only after the fact)."""
        now = time.time() if now is None else now
        window = check.policy.window_seconds
        index = int(now // window)
        previous, current = self._counts(check.key, index)
        if current == 0:
            # A window opens for this key; unless hit again, its counts mean nothing two windows on.
            self._expiries.add(check.key, window, (index + 2) * window)
        self._store.set(check.key, (index, current + 1, previous))

    def give_back(self, check: Check, window_index: int) -> None:
        """Take back one count made in window `window_index`: from the current count while that window
        lasts, from the previous one in the next window; later it weighs on nothing."""
        stored = _as_window(self._store.peek(check.key))
        if stored is None:
            return
        number, current, previous = stored
        if number == window_index and current > 0:
            self._store.set(check.key, (number, current - 1, previous))
        elif number == window_index + 1 and previous > 0:
            self._store.set(check.key, (number, current, previous - 1))

    def drop_expired(self, budget: int, now: float | None = None) -> int:
        """Drops keys whose counts no longer weigh on any decision; returns how many deadlines it
        looked at (at most `budget`: the caller sweeps in chunks)."""
        now = time.time() if now is None else now
        due = self._expiries.due(now, budget)
        for key, window in due:
            stored = _as_window(self._store.peek(key))
            if stored is not None and (stored[0] + 2) * window <= now:
                self._store.pop(key)
        return len(due)

