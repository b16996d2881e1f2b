"""The sliding-window counter's arithmetic, with a fixed clock."""

from __future__ import annotations

from appwrite_token_exchange.rate_limit import RateLimit, parse_rate_limit
from appwrite_token_exchange.state.lru import LRU
from appwrite_token_exchange.state.sliding_window import Check, MemoryLimiter

TEN_PER_MINUTE = RateLimit(10, 60)


def _hits(limiter: MemoryLimiter, count: int, at: float, key: str = "k") -> int:
    return sum(all(d.allowed for d in limiter.hit([Check("s", key, TEN_PER_MINUTE)], now=at)) for _ in range(count))


def test_no_double_burst_at_the_window_edge() -> None:
    limiter = MemoryLimiter()
    assert _hits(limiter, 10, at=59.0) == 10
    # A fixed window would allow 10 more at t=61; the sliding estimate still counts ~9.8 of them.
    assert _hits(limiter, 10, at=61.0) == 0


def test_room_comes_back_as_the_previous_window_slides_out() -> None:
    limiter = MemoryLimiter()
    assert _hits(limiter, 10, at=59.0) == 10
    # Half of the previous window still overlaps: 10 * 0.5 = 5 used, so 5 more fit.
    assert _hits(limiter, 10, at=90.0) == 5
    assert _hits(limiter, 10, at=200.0) == 10


def test_refusal_says_when_to_come_back() -> None:
    limiter = MemoryLimiter()
    _hits(limiter, 10, at=10.0)
    [decision] = limiter.hit([Check("s", "k", TEN_PER_MINUTE)], now=10.0)
    assert not decision.allowed
    assert decision.remaining == 0
    # Nothing decays inside this window; in the next one the 10 decay linearly, one request fits
    # once 10 * (1 - f) <= 9, i.e. f >= 0.1: 50 s to the edge plus 6 s.
    assert decision.retry_after == 56
    assert all(d.allowed for d in limiter.hit([Check("s", "k", TEN_PER_MINUTE)], now=10.0 + 56))


def test_a_refusal_in_one_scope_counts_in_none() -> None:
    limiter = MemoryLimiter()
    one = RateLimit(1, 60)
    limiter.hit([Check("a", "a", one)], now=0.0)
    decisions = limiter.hit([Check("a", "a", one), Check("b", "b", one)], now=1.0)
    assert [d.allowed for d in decisions] == [False, True]
    # "b" was not charged for the refused request.
    assert limiter.hit([Check("b", "b", one)], now=2.0)[0].allowed


def test_a_look_counts_nothing() -> None:
    limiter = MemoryLimiter()
    one = RateLimit(1, 60)
    for _ in range(3):
        [decision] = limiter.hit([Check("user", "u", one, count=False)], now=0.0)
        assert decision.allowed and decision.remaining == 0
    limiter.add(Check("user", "u", one), now=0.0)
    assert not limiter.hit([Check("user", "u", one, count=False)], now=0.0)[0].allowed


def test_a_flood_of_keys_stays_at_the_bound_and_keeps_the_recent_ones() -> None:
    store: LRU[str, object] = LRU(100)
    limiter = MemoryLimiter(store)
    limiter.hit([Check("ip", "regular", TEN_PER_MINUTE)], now=0.0)
    for i in range(1000):
        limiter.hit([Check("ip", f"ip-{i}", TEN_PER_MINUTE)], now=1.0)
        if i % 50 == 0:  # a caller who keeps calling is never the least recently used
            limiter.hit([Check("ip", "regular", TEN_PER_MINUTE)], now=1.0)
    assert len(store) == 100
    # The caller and the 99 newest keys remain.
    assert "regular" in store and "ip-900" not in store and all(f"ip-{i}" in store for i in range(901, 1000))
    # The caller's window kept its count through the flood: 1 + 20 of 10 allowed → refused.
    assert not limiter.hit([Check("ip", "regular", TEN_PER_MINUTE)], now=1.0)[0].allowed


def test_policy_specs() -> None:
    assert parse_rate_limit("60/minute") == RateLimit(60, 60)
    assert parse_rate_limit("5/second") == RateLimit(5, 1)
    assert parse_rate_limit("100/hour") == RateLimit(100, 3600)
    assert parse_rate_limit("off") is None
    for bad in ("60", "0/minute", "ten/minute", "5/day", "-1/hour"):
        try:
            parse_rate_limit(bad)
        except ValueError as error:
            assert bad in str(error)
        else:
            raise AssertionError(f"{bad} was accepted")
