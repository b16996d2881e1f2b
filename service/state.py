"""Shared state for limits and caches: Redis when configured, per-process memory otherwise, and
memory again while Redis is unreachable (the exchange keeps working; limits become per-replica)."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

import redis
import structlog
from aiocache.base import BaseCache
from aiocache.serializers import NullSerializer
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import RedisError

from service.lru import LRU
from service.redis_state import RedisState
from service.sliding_window import Check, Decision, MemoryLimiter

_log = structlog.get_logger(logger_name="state")
T = TypeVar("T")

# Sessions keep their user for as long as a session plausibly lives; Appwrite's default is a year,
# but a day bounds the cache and the mapping is relearned from the next token anyway.
SESSION_USER_TTL_SECONDS = 86_400
REDIS_RETRY_SECONDS = 1.0
DEFAULT_MEMORY_MAX_ENTRIES = 100_000


class _Cached(NamedTuple):
    value: object
    expires_at: float  # on the cache's clock (time.monotonic); inf for no ttl


class BoundedMemoryCache(BaseCache):  # type: ignore[misc]
    """An aiocache memory backend kept in the state's LRU (get, set, exists, delete; no locking).

    aiocache's SimpleMemoryCache keeps every key until its ttl ends, with one event-loop timer per
    key: 200,000 distinct sessions grew the process by 160 MB, for a day. Here an entry ends at its
    ttl (checked when read; no timers) or when the LRU evicts it, whichever comes first. An evicted
    entry is a cache miss: a forgotten rejected session is asked of Appwrite again, a forgotten
    session -> user mapping is relearned from the next token.
    """

    NAME = "bounded-memory"

    def __init__(self, store: LRU[str, object], clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._store = store
        self._clock = clock

    def _read(self, key: str) -> object:
        entry = self._store.get(key)
        if not isinstance(entry, _Cached):
            return None
        if entry.expires_at <= self._clock():
            self._store.pop(key)
            return None
        return entry.value

    async def _get(self, key: str, encoding: str = "utf-8", _conn: object = None) -> object:
        return self._read(key)

    async def _multi_get(self, keys: list[str], encoding: str = "utf-8", _conn: object = None) -> list[object]:
        return [self._read(key) for key in keys]

    async def _exists(self, key: str, _conn: object = None) -> bool:
        return self._read(key) is not None

    async def _set(self, key: str, value: object, ttl: float | None = None, _cas_token: object = None,
                   _conn: object = None) -> bool:
        self._store.set(key, _Cached(value, self._clock() + ttl if ttl else math.inf))
        return True

    async def _multi_set(self, pairs: list[tuple[str, object]], ttl: float | None = None,
                         _conn: object = None) -> bool:
        for key, value in pairs:
            await self._set(key, value, ttl)
        return True

    async def _delete(self, key: str, _conn: object = None) -> int:
        return 0 if self._store.pop(key) is None else 1


class _Unavailable:
    """Marks a state call that Redis could not serve, so memory serves it instead."""


_UNAVAILABLE = _Unavailable()


class State:
    """Every read and write goes to Redis if it is healthy, else to memory; never raises on outage."""

    def __init__(
        self,
        redis: RedisState | None,
        on_fallback_change: Callable[[bool], None],
        max_entries: int = DEFAULT_MEMORY_MAX_ENTRIES,
    ) -> None:
        self._redis = redis
        # One LRU holds the memory windows and the memory caches, so MEMORY_STATE_MAX_ENTRIES bounds
        # them together. Every key is a fixed-size fingerprint and every value a few small numbers
        # or a short id, so the entry bound is a bound on bytes too (about 400 bytes an entry).
        self._memory: LRU[str, object] = LRU(max_entries)
        self._memory_limiter = MemoryLimiter(self._memory)
        # timeout=None: aiocache would otherwise wrap every call in asyncio.wait_for (a task per
        # call); memory needs none, and Redis calls are bounded by the client's socket timeouts.
        self._memory_cache = BoundedMemoryCache(
            self._memory, serializer=NullSerializer(), namespace="rtx:cache:", timeout=None
        )
        self._on_fallback_change = on_fallback_change
        self._redis_down_since: float | None = None
        self._next_redis_try = 0.0

    @property
    def backend(self) -> str:
        return "memory" if self._redis is None else "redis"

    @property
    def memory_entries(self) -> int:
        """Entries in the memory state (windows and caches together)."""
        return len(self._memory)

    @property
    def degraded(self) -> bool:
        return self._redis_down_since is not None

    def readiness(self) -> dict[str, object]:
        if self._redis is None:
            return {"status": "ok", "backend": "memory"}
        if self.degraded:
            return {"status": "degraded", "backend": "redis", "fallback": "memory"}
        return {"status": "ok", "backend": "redis"}

    @staticmethod
    def key(scope: str, fingerprint: str) -> str:
        return f"rtx:rl:{scope}:{fingerprint}"

    async def hit(self, checks: list[Check]) -> list[Decision]:
        decisions = await self._on_redis(lambda redis: redis.hit(checks))
        return self._memory_limiter.hit(checks) if isinstance(decisions, _Unavailable) else decisions

    async def add(self, check: Check) -> None:
        if isinstance(await self._on_redis(lambda redis: redis.add(check)), _Unavailable):
            self._memory_limiter.add(check)

    async def get_cached(self, *keys: str) -> list[str | None]:
        """Several cache entries in one round trip."""
        values = await self._on_redis(lambda redis: redis.cache.multi_get(list(keys)))
        if isinstance(values, _Unavailable):
            values = await self._memory_cache.multi_get(list(keys))
        return [value if isinstance(value, str) else None for value in values]

    async def set_cached(self, key: str, value: str, ttl: int) -> None:
        if ttl <= 0:
            return
        if isinstance(await self._on_redis(lambda redis: redis.cache.set(key, value, ttl=ttl)), _Unavailable):
            await self._memory_cache.set(key, value, ttl=ttl)

    async def _on_redis(self, call: Callable[[RedisState], Awaitable[T]]) -> T | _Unavailable:
        """The call's result, or _UNAVAILABLE when there is no Redis, or it is down, or it just failed."""
        redis = self._redis
        now = time.monotonic()
        if redis is None or (self.degraded and now < self._next_redis_try):
            return _UNAVAILABLE
        try:
            result = await call(redis)
        except (RedisError, OSError, TimeoutError) as error:
            self._next_redis_try = now + REDIS_RETRY_SECONDS
            if not self.degraded:
                self._redis_down_since = now
                # Once per outage, not once per request.
                _log.warning("state.redis_unavailable", fallback="memory", error=type(error).__name__)
                self._on_fallback_change(True)
            return _UNAVAILABLE
        if self.degraded:
            _log.warning("state.redis_recovered", outage_seconds=round(now - (self._redis_down_since or now), 1))
            self._redis_down_since = None
            self._on_fallback_change(False)
        return result


def redis_client(url: str) -> Redis:
    """Short timeouts: during an outage each request pays at most this, then memory takes over."""
    return Redis.from_url(
        url,
        # Without this, redis-py reads its own package metadata from disk for every new pooled
        # connection: a blocking call on the event loop.
        driver_info=DriverInfo(name="redis-py", lib_version=redis.__version__),
        socket_timeout=0.25,
        socket_connect_timeout=0.25,
        health_check_interval=0,
        retry_on_timeout=False,
        # No client-side retries: a failure falls back to memory at once instead of stalling.
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )
