"""Shared state for limits and caches: Redis when configured, per-process memory otherwise, and
memory again while Redis is unreachable (the exchange keeps working; limits become per-replica)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import structlog
from aiocache.base import BaseCache
from aiocache.serializers import NullSerializer
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.backoff import NoBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import (
    AskError,
    AuthenticationError,
    AuthorizationError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from appwrite_token_exchange.env import SettingsError
from appwrite_token_exchange.observability.log_once import LogOnce
from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.state.admission import AdmissionAnswer, AdmissionQuery, Reservation
from appwrite_token_exchange.state.expiry import ExpiryQueues
from appwrite_token_exchange.state.lru import LRU
from appwrite_token_exchange.state.redis_store import RedisState
from appwrite_token_exchange.state.redis_url import RedisConfig
from appwrite_token_exchange.state.sliding_window import Check, Decision, MemoryLimiter

_log = structlog.get_logger(logger_name="state")
T = TypeVar("T")

# Sessions keep their user for as long as a session plausibly lives; Appwrite's default is a year,
# but a day bounds the cache and the mapping is relearned from the next token anyway.
SESSION_USER_TTL_SECONDS = 86_400
REDIS_RETRY_SECONDS = 1.0
DEFAULT_MEMORY_MAX_ENTRIES = 100_000
_PROBE_POLICY = RateLimit(1, 60)


# A cached value and when it ends, on the cache's clock (time.monotonic; inf for no ttl). A plain
# pair, not a NamedTuple, for the garbage collector's sake (see _Window in sliding_window.py).
_Cached = tuple[object, float]


def _as_cached(entry: object) -> _Cached | None:
    """The stored value if it is a cache entry (the windows in the same LRU are triples)."""
    return entry if type(entry) is tuple and len(entry) == 2 else None


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
        self._expiries = ExpiryQueues(store.max_entries)

    def _read(self, key: str) -> object:
        entry = _as_cached(self._store.get(key))
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= self._clock():
            self._store.pop(key)
            return None
        return value

    async def _get(self, key: str, encoding: str = "utf-8", _conn: object = None) -> object:
        return self._read(key)

    async def _multi_get(self, keys: list[str], encoding: str = "utf-8", _conn: object = None) -> list[object]:
        return [self._read(key) for key in keys]

    async def _exists(self, key: str, _conn: object = None) -> bool:
        return self._read(key) is not None

    async def _set(self, key: str, value: object, ttl: float | None = None, _cas_token: object = None,
                   _conn: object = None) -> bool:
        expires_at = self._clock() + ttl if ttl else math.inf
        if ttl:
            self._expiries.add(key, ttl, expires_at)
        self._store.set(key, (value, expires_at))
        return True

    async def _multi_set(self, pairs: list[tuple[str, object]], ttl: float | None = None,
                         _conn: object = None) -> bool:
        for key, value in pairs:
            await self._set(key, value, ttl)
        return True

    async def _delete(self, key: str, _conn: object = None) -> int:
        return 0 if self._store.pop(key) is None else 1

    def drop_expired(self, budget: int) -> int:
        """Drops entries past their ttl; returns how many deadlines it looked at (at most `budget`)."""
        now = self._clock()
        due = self._expiries.due(now, budget)
        for key, _ in due:
            entry = _as_cached(self._store.peek(key))
            if entry is not None and entry[1] <= now:
                self._store.pop(key)
        return len(due)


# The memory state's sweep: how often it runs, and how many deadlines it handles between yields.
SWEEP_SECONDS = 1.0
SWEEP_CHUNK = 2_000

# How long /readyz keeps naming a misconfiguration after Redis last answered with it.
MISCONFIGURED_SHOWN_SECONDS = 60.0

# cause -> what to fix. Each names REDIS_URL or the server; none repeats a secret.
_FIXES = {
    "auth": "Redis refused the credentials: check the user and password in REDIS_URL "
            "(and sentinel_password for Sentinel)",
    "noscript": "Redis lost the rate-limit script right after loading it: REDIS_URL reaches several "
                "servers through one address (a proxy?); point it at one server, or use redis+cluster://",
    "crossslot": "Redis Cluster refused keys in different slots: REDIS_URL must use redis+cluster:// "
                 "(or rediss+cluster://) for a Cluster",
    "wrongtype": "a key under rtx: holds another type: another application shares this database; give "
                 "the service its own database (/N in REDIS_URL) or server",
    "cluster_server": "REDIS_URL names a Redis Cluster node with a single-server scheme; use redis+cluster:// "
                      "(or rediss+cluster://) and list the nodes",
    "not_cluster": "REDIS_URL uses redis+cluster:// but the server is not in cluster mode; use redis:// "
                   "(or redis+sentinel://)",
    "replica": "REDIS_URL points at a read-only replica; point it at the master, or use redis+sentinel://",
    "refused": "Redis refused a command the service needs (ACL or renamed command?); check the user in REDIS_URL",
}


class StateConfigError(SettingsError):
    """Redis is configured (REDIS_URL) but unusable: the service refuses to start."""

    def __init__(self, cause: str, problem: str) -> None:
        super().__init__("REDIS_URL", problem)
        self.cause = cause


def misconfiguration(error: BaseException, kind: str = "redis") -> str | None:
    """The cause (a _FIXES key) when `error` says Redis is configured wrong; None for an outage."""
    text = str(error)
    first = text.split(" ", 1)[0].upper() if text else ""
    if isinstance(error, (AuthenticationError, AuthorizationError)) or first in ("NOAUTH", "WRONGPASS"):
        return "auth"
    if isinstance(error, NoScriptError) or first == "NOSCRIPT":
        return "noscript"
    if first == "CROSSSLOT" or "same key slot" in text:
        return "crossslot"
    if first == "WRONGTYPE":
        return "wrongtype"
    if isinstance(error, (MovedError, AskError)) or first in ("MOVED", "ASK"):
        return "cluster_server"
    # Only the Cluster client sends CLUSTER commands; a server without cluster mode refuses them.
    if "cluster support disabled" in text.lower() or (
        isinstance(error, RedisClusterException) and "cluster mode is not enabled" in text.lower()
    ):
        return "not_cluster"
    if first == "READONLY":
        # Behind Sentinel a failover briefly leaves clients on the old master: an outage.
        return "replica" if kind == "redis" else None
    if first == "CLUSTERDOWN" or first == "TRYAGAIN" or first == "LOADING" or first == "MASTERDOWN":
        return None
    if isinstance(error, (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)):
        return None
    if isinstance(error, RedisClusterException) and "reachable" in text:
        return None  # no node of the Cluster answered: an outage
    if isinstance(error, (ResponseError, RedisClusterException)) or first in ("NOPERM", "ERR"):
        return "refused"
    return None


def describe(cause: str) -> str:
    return _FIXES[cause]


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
        kind: str = "redis",
        on_error: Callable[[str], None] = lambda cause: None,
    ) -> None:
        self._redis = redis
        self._kind = kind
        self._on_error = on_error
        self._misconfigured: tuple[str, float] | None = None
        self._logged_causes = LogOnce()
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
        """memory, redis, redis-sentinel or redis-cluster."""
        return "memory" if self._redis is None else self._kind

    @property
    def memory_entries(self) -> int:
        """Entries in the memory state (windows and caches together)."""
        return len(self._memory)

    async def sweep_forever(self, every: float = SWEEP_SECONDS) -> None:
        """Drops expired windows and cache entries from the memory state, so memory given to a
        burst of callers comes back once their windows pass; a chunk at a time, yielding between
        chunks, so that a million expiring at once never hold up the requests being served."""
        while True:
            await asyncio.sleep(every)
            while self.sweep_expired(SWEEP_CHUNK) == SWEEP_CHUNK:  # noqa: ASYNC110 - a yield, not a poll
                await asyncio.sleep(0)
            self._memory.compact()

    def sweep_expired(self, budget: int) -> int:
        """One chunk of the sweep: how many deadlines it looked at (`budget` when more may be due)."""
        looked = self._memory_limiter.drop_expired(budget)
        return looked + self._memory_cache.drop_expired(budget - looked)

    @property
    def degraded(self) -> bool:
        return self._redis_down_since is not None

    def misconfigured(self) -> str | None:
        """The cause Redis last answered with, while it is recent."""
        if self._misconfigured is None:
            return None
        cause, at = self._misconfigured
        return cause if time.monotonic() - at < MISCONFIGURED_SHOWN_SECONDS else None

    def readiness(self) -> dict[str, object]:
        if self._redis is None:
            return {"status": "ok", "backend": "memory"}
        if (cause := self.misconfigured()) is not None:
            return {"status": "misconfigured", "backend": self._kind, "cause": cause, "fix": describe(cause),
                    "fallback": "memory"}
        if self.degraded:
            return {"status": "degraded", "backend": self._kind, "fallback": "memory"}
        return {"status": "ok", "backend": self._kind}

    @staticmethod
    def key(scope: str, fingerprint: str) -> str:
        return f"rtx:rl:{scope}:{fingerprint}"

    async def admit(self, query: AdmissionQuery) -> AdmissionAnswer:
        """Everything an exchange asks before Appwrite is called (see admission.py), in one go."""
        answer = await self._on_redis(lambda redis: redis.admit(query))
        return await self._admit_in_memory(query) if isinstance(answer, _Unavailable) else answer

    async def _admit_in_memory(self, query: AdmissionQuery) -> AdmissionAnswer:
        decisions = self._memory_limiter.hit([query.ip]) if query.ip is not None else []
        if not all(decision.allowed for decision in decisions):
            return AdmissionAnswer(decisions)
        rejected, user_id = await self._memory_cache.multi_get([query.rejected_key, query.user_key])
        if rejected:
            return AdmissionAnswer(decisions, rejected=True)
        user_id = user_id if isinstance(user_id, str) else None
        user_check = query.user_check(user_id)
        group = [check for check in (query.session, user_check) if check is not None]
        # No await from here to the count: concurrent admissions cannot both take the last unit.
        now = time.time()
        group_decisions = self._memory_limiter.hit(group, now) if group else []
        reserved = None
        if user_check is not None and user_check.count and all(decision.allowed for decision in group_decisions):
            reserved = Reservation(user_check, int(now // user_check.policy.window_seconds), in_memory=True)
        return AdmissionAnswer(decisions + group_decisions, user_id=user_id, reserved=reserved)

    async def give_back(self, reservation: Reservation) -> None:
        """Take back a unit reserved at admission, in the state that counted it. A Redis count that
        Redis cannot take back now (down) stands: the limit errs toward refusing."""
        if reservation.in_memory:
            self._memory_limiter.give_back(reservation.check, reservation.window_index)
        else:
            await self._on_redis(lambda redis: redis.give_back(reservation))

    async def hit(self, checks: list[Check]) -> list[Decision]:
        decisions = await self._on_redis(lambda redis: redis.hit(checks))
        return self._memory_limiter.hit(checks) if isinstance(decisions, _Unavailable) else decisions

    async def add(self, check: Check) -> None:
        if isinstance(await self._on_redis(lambda redis: redis.add(check)), _Unavailable):
            self._memory_limiter.add(check)

    async def get_cached(self, *keys: str) -> list[str | None]:
        """Several cache entries in one round trip."""
        values = await self._on_redis(lambda redis: redis.get_cached(list(keys)))
        if isinstance(values, _Unavailable):
            values = await self._memory_cache.multi_get(list(keys))
        return [value if isinstance(value, str) else None for value in values]

    async def set_cached(self, key: str, value: str, ttl: int) -> None:
        if ttl <= 0:
            return
        if isinstance(await self._on_redis(lambda redis: redis.cache.set(key, value, ttl=ttl)), _Unavailable):
            await self._memory_cache.set(key, value, ttl=ttl)

    async def add_once(self, key: str, ttl: int) -> bool:
        """True the first time `key` is added within `ttl` seconds; False while it is still there."""
        added = await self._on_redis(lambda redis: redis.add_once(key, ttl))
        if isinstance(added, _Unavailable):
            once_key = f"once:{key}"
            if await self._memory_cache.exists(once_key):
                return False
            await self._memory_cache.set(once_key, "1", ttl=ttl)
            return True
        return added

    async def _on_redis(self, call: Callable[[RedisState], Awaitable[T]]) -> T | _Unavailable:
        """The call's result, or _UNAVAILABLE when there is no Redis, or it is down, or it just failed."""
        redis = self._redis
        now = time.monotonic()
        if redis is None or (self.degraded and now < self._next_redis_try):
            return _UNAVAILABLE
        try:
            result = await call(redis)
        except (RedisError, RedisClusterException, OSError, TimeoutError) as error:
            cause = misconfiguration(error, self._kind)
            if cause is not None:
                # Not an outage: Redis answers, and says the configuration is wrong. This call is
                # served from memory, but loudly: logged once per cause, counted, named by /readyz.
                self._misconfigured = (cause, now)
                self._on_error(cause)
                if self.degraded:  # it answers again, so the outage is over
                    self._redis_down_since = None
                    self._on_fallback_change(False)
                if self._logged_causes.first(cause):
                    _log.error("state.redis_misconfigured", cause=cause, fix=describe(cause),
                               error=type(error).__name__)
                return _UNAVAILABLE
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


def _client_options() -> dict[str, Any]:
    """Short timeouts: during an outage each request pays at most this, then memory takes over."""
    return {
        # Without this, redis-py reads its own package metadata from disk for every new pooled
        # connection: a blocking call on the event loop.
        "driver_info": DriverInfo(name="redis-py", lib_version=redis.__version__),
        "socket_timeout": 0.25,
        "socket_connect_timeout": 0.25,
        "health_check_interval": 0,
        # No client-side retries: a failure falls back to memory at once instead of stalling.
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": False,
    }


def redis_client(url: str) -> Redis:
    """One server (redis://, rediss://, unix://)."""
    return Redis.from_url(url, retry_on_timeout=False, **_client_options())


def redis_client_for(config: RedisConfig) -> Any:
    """The client for REDIS_URL's topology: one server, a Sentinel master (follows a failover) or a
    Cluster. Every kind gets the same timeouts, no retries and the DriverInfo fix."""
    if config.kind == "redis":
        return redis_client(config.url)
    options = _client_options()
    # TLS (the rediss+ schemes) checks the servers' certificates against ssl_ca_certs, or the
    # system's CAs; the sentinels and the data servers alike.
    tls: dict[str, Any] = {"ssl": True, "ssl_ca_certs": config.ca_file} if config.tls else {}
    if config.kind == "redis-sentinel":
        sentinel_options = {**options, **tls, "username": config.sentinel_username,
                            "password": config.sentinel_password}
        sentinel = Sentinel(
            list(config.hosts), sentinel_kwargs=sentinel_options, **options
        )
        assert config.master_name is not None
        master = sentinel.master_for(
            config.master_name, redis_class=Redis, username=config.username,
            password=config.password, db=config.db, **tls,
        )
        # The Sentinels' own connections are closed with the master's (close_client).
        master._rtx_sentinels = sentinel.sentinels
        return master
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in config.hosts],
        username=config.username, password=config.password, **tls,
        **options,
    )


async def close_client(client: Any) -> None:
    """Close a client from redis_client_for, and for Sentinel the connections to the Sentinels."""
    await client.aclose()
    for sentinel in getattr(client, "_rtx_sentinels", ()):
        await sentinel.aclose()


async def check_redis(redis_state: RedisState, kind: str) -> None:
    """At start: Redis answers, accepts the credentials, is the topology REDIS_URL says, and runs
    the scripts and the cache. Raises StateConfigError (naming REDIS_URL) when not."""
    try:
        client = redis_state.client
        if kind == "redis-cluster":
            await client.initialize()
        else:
            info = await client.info("cluster")
            if int(info.get("cluster_enabled", 0)) == 1:
                raise StateConfigError("cluster_server", describe("cluster_server"))
        probe = Check("probe", redis_state.key("probe", "boot"), _PROBE_POLICY, count=False)
        await redis_state.hit([probe])
        await redis_state.get_cached(["probe:{boot}", "probe2:{boot}"])
    except StateConfigError:
        raise
    except (TypeError, ValueError) as error:
        # An option in REDIS_URL redis-py took but its connection refused (parse_redis_url checks
        # each one it can): its message quotes the value, so only its name is said.
        raise StateConfigError(
            "options", f"the Redis client refused an option in REDIS_URL ({type(error).__name__}); check its options"
        ) from None
    except (RedisError, RedisClusterException, OSError, TimeoutError) as error:
        cause = misconfiguration(error, kind)
        if isinstance(error, MasterNotFoundError):
            raise StateConfigError(
                "no_master",
                "the Sentinels named in REDIS_URL know no reachable master by its master name; check the name "
                "after the hosts, the Sentinels' addresses and sentinel_password",
            ) from None
        if cause is None:
            raise StateConfigError(
                "unreachable",
                f"Redis did not answer at start ({type(error).__name__}); check the host and port in REDIS_URL, "
                "or unset REDIS_URL to run on per-process memory",
            ) from None
        raise StateConfigError(cause, describe(cause)) from None
