"""Shared state in Redis: one atomic script per rate-limit decision, aiocache for the small caches.

Key design (Redis Cluster safe): a rate-limit window lives in ONE hash key per scope and
fingerprint (`rtx:rl:<scope>:<fp>`, fields w, i, c, p: window length, window index, current and
previous count), rolled forward by the script with Redis's own clock. So a script touches only the
keys it declares in KEYS, and Redis's TIME stays the one clock for every replica. The two cache
entries of a session (`invalid:{fp}`, `user:{fp}`) share the hash tag `{fp}`, so their MGET stays
one call in one slot. A session's window and a user's window cannot share a slot (a user has many
sessions): on a Cluster they are decided by separate calls issued together (one round-trip time);
on one server (or behind Sentinel) one script decides all checks in one round trip.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiocache import RedisCache
from aiocache.serializers import StringSerializer

from service.sliding_window import Check, Decision, decide

# Rolls the hash KEYS[i] to the current window of `window` seconds; returns current, previous.
_ROLL = """
local function roll(key, window, index)
  local s = redis.call('HMGET', key, 'w', 'i', 'c', 'p')
  if tonumber(s[1]) ~= window then return 0, 0, false end
  local stored = tonumber(s[2])
  if stored == index then return tonumber(s[3]) or 0, tonumber(s[4]) or 0, true end
  if stored == index - 1 then return 0, tonumber(s[3]) or 0, false end
  return 0, 0, false
end
local function count(key, window, index, current, previous, same)
  if same then
    redis.call('HINCRBY', key, 'c', 1)
  else
    redis.call('HSET', key, 'w', window, 'i', index, 'c', 1, 'p', previous)
  end
  redis.call('EXPIRE', key, 2 * window)
end
"""

# Decides every check with Redis's own clock (replicas' clocks may differ) and counts the request
# only if all allow it, in the windows of the checks that count (ARGV per check: limit, window,
# count 1/0; a 0 only looks). Returns, per check, the previous and current counts seen, the window
# index and 1 if it was counted, then the server time.
_SLIDING_WINDOW_LUA = _ROLL + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
local seen = {}
local allowed = true
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 2])
  local window = tonumber(ARGV[3 * i - 1])
  local index = math.floor(now / window)
  local current, previous, same = roll(key, window, index)
  local elapsed = (now % window) / window
  if previous * (1 - elapsed) + current + 1 > limit then allowed = false end
  seen[i] = {window, index, current, previous, same}
  out[4 * i - 3] = previous
  out[4 * i - 2] = current
  out[4 * i - 1] = index
  out[4 * i] = 0
end
if allowed then
  for i, key in ipairs(KEYS) do
    if ARGV[3 * i] == '1' then
      local s = seen[i]
      count(key, s[1], s[2], s[3], s[4], s[5])
      out[4 * i] = 1
    end
  end
end
out[#out + 1] = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
return out
"""

_ADD_LUA = _ROLL + """
local t = redis.call('TIME')
local window = tonumber(ARGV[1])
local index = math.floor(tonumber(t[1]) / window)
local current, previous, same = roll(KEYS[1], window, index)
count(KEYS[1], window, index, current, previous, same)
return 1
"""

# Takes back a count made in window ARGV[1] (Cluster: another scope refused the same request).
_REFUND_LUA = """
if redis.call('HGET', KEYS[1], 'i') == ARGV[1] then redis.call('HINCRBY', KEYS[1], 'c', -1) end
return 1
"""


class _RedisCache(RedisCache):  # type: ignore[misc]
    """aiocache 0.12 writes with SETEX/PSETEX, which redis-py 8 deprecates; SET EX/PX is the same."""

    async def _set(self, key: str, value: object, ttl: int | float | None = None, _cas_token: object = None,
                   _conn: object = None) -> object:
        if _cas_token is not None or ttl is None:
            return await super()._set(key, value, ttl=ttl, _cas_token=_cas_token, _conn=_conn)
        if isinstance(ttl, float):
            return await self.client.set(key, value, px=int(ttl * 1000))
        return await self.client.set(key, value, ex=ttl)


class RedisState:
    """Rate limits and caches shared by every replica. Keys are only ever HMAC fingerprints.

    `client` is a redis.asyncio Redis (one server or a Sentinel master) or a RedisCluster.
    """

    def __init__(self, client: Any, prefix: str = "rtx", cluster: bool = False) -> None:
        self._client = client
        self._prefix = prefix
        self._cluster = cluster
        self._hit_script = client.register_script(_SLIDING_WINDOW_LUA)
        self._add_script = client.register_script(_ADD_LUA)
        self._refund_script = client.register_script(_REFUND_LUA)
        # aiocache builds a pool of its own; swap in ours so there is one pool with our timeouts,
        # and never call its close() (redis-py 5+ warns) or clear() (FLUSHDB on the whole database).
        self.cache = _RedisCache(namespace=f"{prefix}:cache", serializer=StringSerializer(), timeout=None)
        self.cache.client = client

    @property
    def client(self) -> Any:
        return self._client

    def key(self, scope: str, fingerprint: str) -> str:
        return f"{self._prefix}:rl:{scope}:{fingerprint}"

    async def hit(self, checks: list[Check]) -> list[Decision]:
        if not self._cluster or len(checks) <= 1:
            raw = await self._hit(checks)
            now = float(raw[-1])
            return [decide(check, int(raw[4 * i]), int(raw[4 * i + 1]), now) for i, check in enumerate(checks)]
        # Cluster: one call per check, all at once. Each counts only if its own check allows; when
        # another scope refused, the counts made are taken back (a second round trip, on refusals
        # only), so a refused request is still charged nowhere once this returns.
        results = await asyncio.gather(*(self._hit([check]) for check in checks), return_exceptions=True)
        raws: list[list[Any]] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            raws.append(result)
        pairs = list(zip(checks, raws, strict=True))
        decisions = [decide(check, int(raw[0]), int(raw[1]), float(raw[-1])) for check, raw in pairs]
        if not all(decision.allowed for decision in decisions):
            await asyncio.gather(*(
                self._refund_script(keys=[check.key], args=[int(raw[2])])
                for check, raw in pairs if int(raw[3]) == 1
            ))
        return decisions

    async def _hit(self, checks: list[Check]) -> list[Any]:
        args: list[int] = []
        for check in checks:
            args += [check.policy.limit, check.policy.window_seconds, int(check.count)]
        raw: list[Any] = await self._hit_script(keys=[check.key for check in checks], args=args)
        return raw

    async def add(self, check: Check) -> None:
        await self._add_script(keys=[check.key], args=[check.policy.window_seconds])

    async def ping(self) -> None:
        await self._client.ping()

    async def get_cached(self, keys: list[str]) -> list[object]:
        """Several cache entries in one call: the callers' keys share a hash tag (one slot)."""
        values: list[object] = await self.cache.multi_get(keys)
        return values
