"""The memory state gives back what has expired: windows two windows after their last hit, cache
entries at their ttl; the sweep skips anything still in use, and a shrunk table is rebuilt."""

from __future__ import annotations

import asyncio

import pytest
from aiocache.serializers import NullSerializer
from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.state.expiry import ExpiryQueues
from appwrite_token_exchange.state.lru import LRU
from appwrite_token_exchange.state.sliding_window import Check, MemoryLimiter
from appwrite_token_exchange.state.store import SWEEP_CHUNK, BoundedMemoryCache, State

PER_MINUTE = RateLimit(1000, 60)
PER_SECOND = RateLimit(1000, 1)


def test_queued_deadlines_come_due_in_order_per_lifetime_and_within_the_budget() -> None:
    queues = ExpiryQueues(max_queued=100)
    queues.add("a", 60, 120.0)
    queues.add("b", 60, 120.0)
    queues.add("c", 60, 180.0)
    queues.add("x", 1, 5.0)
    assert queues.due(4.9, budget=10) == []
    assert queues.due(5.0, budget=10) == [("x", 1)]
    assert sorted(queues.due(130.0, budget=1) + queues.due(130.0, budget=10)) == [("a", 60), ("b", 60)]
    assert len(queues) == 1
    assert queues.due(180.0, budget=10) == [("c", 60)]
    assert len(queues) == 0


def test_the_queues_are_bounded_against_a_flood_of_distinct_keys() -> None:
    queues = ExpiryQueues(max_queued=10)
    for n in range(1000):
        queues.add(f"k{n}", 60, 60.0 + n)  # one bucket per second: each add may drop the oldest
    assert len(queues) == 10
    assert [key for key, _ in queues.due(10_000.0, budget=100)] == [f"k{n}" for n in range(990, 1000)]


def test_a_window_goes_two_windows_after_its_last_hit_and_not_before() -> None:
    store: LRU[str, object] = LRU(100)
    limiter = MemoryLimiter(store)
    limiter.hit([Check("ip", "quiet", PER_MINUTE)], now=10.0)  # window 0: lapses at 120
    limiter.hit([Check("ip", "busy", PER_MINUTE)], now=10.0)
    limiter.hit([Check("ip", "busy", PER_MINUTE)], now=70.0)  # window 1: its counts weigh until 180
    limiter.drop_expired(SWEEP_CHUNK, now=119.0)
    assert "quiet" in store and "busy" in store
    limiter.drop_expired(SWEEP_CHUNK, now=120.0)
    assert "quiet" not in store and "busy" in store
    # Still counted at 179: 1 hit of window 1, weighted by what overlaps.
    assert limiter.hit([Check("ip", "busy", PER_MINUTE, count=False)], now=179.0)[0].remaining < 999
    limiter.drop_expired(SWEEP_CHUNK, now=180.0)
    assert len(store) == 0


def test_a_cache_entry_goes_at_its_ttl_and_a_set_again_entry_stays() -> None:
    now = [1000.0]
    store: LRU[str, object] = LRU(100)
    cache = BoundedMemoryCache(store, clock=lambda: now[0], serializer=NullSerializer(), timeout=None)

    async def fill() -> None:
        await cache.set("invalid:a", "1", ttl=30)
        await cache.set("invalid:b", "1", ttl=30)
        await cache.set("user:a", "u", ttl=86_400)
        now[0] += 20
        await cache.set("invalid:b", "1", ttl=30)  # refreshed: now ends at 1050

    asyncio.run(fill())
    now[0] = 1030.0
    cache.drop_expired(SWEEP_CHUNK)
    assert "invalid:a" not in store and "invalid:b" in store and "user:a" in store
    now[0] = 1050.0
    cache.drop_expired(SWEEP_CHUNK)
    assert "invalid:b" not in store and "user:a" in store


def test_a_table_emptied_by_expiry_is_rebuilt_smaller_in_the_same_order() -> None:
    lru: LRU[str, int] = LRU(100_000)
    for n in range(20_000):
        lru.set(f"k{n}", n)
    big_table = lru._entries  # the table itself is what is under test
    for n in range(15_000):
        lru.pop(f"k{n}")
    lru.compact()
    assert lru._entries is not big_table
    assert [lru.peek(f"k{n}") for n in (14_999, 15_000, 19_999)] == [None, 15_000, 19_999]
    lru.set("new", 0)
    assert len(lru) == 5_001
    kept = lru._entries
    lru.compact()  # nothing more to give back
    assert lru._entries is kept


@pytest.mark.slow
async def test_the_sweep_gives_back_every_expired_entry_in_chunks_and_keeps_the_live_ones() -> None:
    state = State(None, lambda down: None, max_entries=100_000)
    callers = 3 * SWEEP_CHUNK + 7  # several chunks, one partly filled
    for n in range(callers):
        await state.hit([Check("ip", State.key("ip", f"ip{n}"), PER_SECOND)])
    await state.set_cached("user:s1", "u1", 3600)
    assert state.memory_entries == callers + 1
    sweeper = asyncio.create_task(state.sweep_forever(every=0.05))
    try:
        for _ in range(100):  # the windows lapse within 2 s; bounded wait
            await asyncio.sleep(0.05)
            if state.memory_entries == 1:
                break
    finally:
        sweeper.cancel()
    assert state.memory_entries == 1
    assert await state.get_cached("user:s1") == ["u1"]
