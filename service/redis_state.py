"""Shared state in Redis: one atomic script per rate-limit decision, aiocache for the small caches."""

from __future__ import annotations

from aiocache import RedisCache
from aiocache.serializers import StringSerializer
from redis.asyncio import Redis

from service.sliding_window import Check, Decision, decide

# Decides every check with Redis's own clock (replicas' clocks may differ) and counts the request
# only if all allow it, in the windows of the checks that count (ARGV per check: limit, window,
# count 1/0; a 0 only looks). KEYS are hashed base keys; the window index is appended here.
# Returns, per check, the previous and current counts seen and the server time in microseconds.
_SLIDING_WINDOW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local counts = {}
local allowed = true
for i, base in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 2])
  local window = tonumber(ARGV[3 * i - 1])
  local index = math.floor(now / window)
  local current = tonumber(redis.call('GET', base .. ':' .. index) or '0')
  local previous = tonumber(redis.call('GET', base .. ':' .. (index - 1)) or '0')
  local elapsed = (now % window) / window
  if previous * (1 - elapsed) + current + 1 > limit then allowed = false end
  counts[2 * i - 1] = previous
  counts[2 * i] = current
end
if allowed then
  for i, base in ipairs(KEYS) do
    if ARGV[3 * i] == '1' then
      local window = tonumber(ARGV[3 * i - 1])
      local key = base .. ':' .. math.floor(now / window)
      redis.call('INCR', key)
      redis.call('EXPIRE', key, 2 * window)
    end
  end
end
counts[#counts + 1] = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
return counts
"""

_ADD_LUA = """
local t = redis.call('TIME')
local window = tonumber(ARGV[1])
local key = KEYS[1] .. ':' .. math.floor(tonumber(t[1]) / window)
redis.call('INCR', key)
redis.call('EXPIRE', key, 2 * window)
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
    """Rate limits and caches shared by every replica. Keys are only ever HMAC fingerprints."""

    def __init__(self, client: Redis, prefix: str = "rtx") -> None:
        self._client = client
        self._prefix = prefix
        self._hit_script = client.register_script(_SLIDING_WINDOW_LUA)
        self._add_script = client.register_script(_ADD_LUA)
        # aiocache builds a pool of its own; swap in ours so there is one pool with our timeouts,
        # and never call its close() (redis-py 5+ warns) or clear() (FLUSHDB on the whole database).
        self.cache = _RedisCache(namespace=f"{prefix}:cache", serializer=StringSerializer(), timeout=None)
        self.cache.client = client

    def key(self, scope: str, fingerprint: str) -> str:
        return f"{self._prefix}:rl:{scope}:{fingerprint}"

    async def hit(self, checks: list[Check]) -> list[Decision]:
        keys = [check.key for check in checks]
        args: list[int] = []
        for check in checks:
            args += [check.policy.limit, check.policy.window_seconds, int(check.count)]
        raw = await self._hit_script(keys=keys, args=args)
        now = float(raw[-1])
        return [decide(check, int(raw[2 * i]), int(raw[2 * i + 1]), now) for i, check in enumerate(checks)]

    async def add(self, check: Check) -> None:
        await self._add_script(keys=[check.key], args=[check.policy.window_seconds])

    async def ping(self) -> None:
        await self._client.ping()
