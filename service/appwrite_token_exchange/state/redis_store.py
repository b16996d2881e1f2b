"""Shared state in Redis: one atomic script per admission, aiocache for the small caches.

Key design (Redis Cluster safe): a rate-limit window lives in ONE hash key per scope and
fingerprint (`rtx:rl:<scope>:<fp>`, fields w, i, c, p: window length, window index, current and
previous count), rolled forward by the script with Redis's own clock. So a script touches only the
keys it declares in KEYS, and Redis's TIME stays the one clock for every replica. A session's
window and its two cache entries (`invalid:{fp}`, `user:{fp}`) share the hash tag `{fp}`: one slot.

Round trips per exchange: on one server (or behind Sentinel) one script decides everything (IP,
caches, session, user) in one call. A Cluster cannot: an IP's, a session's and a user's keys live in
different slots, so three calls go out together (one round-trip time), and counts made by a call
whose request another call refused are taken back (a second round trip, on refusals only).
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from aiocache import RedisCache
from aiocache.serializers import StringSerializer

from appwrite_token_exchange.state.admission import AdmissionAnswer, AdmissionQuery, Reservation
from appwrite_token_exchange.state.sliding_window import Check, Decision, decide

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

# The admission (state/admission.py) with Redis's own clock (replicas' clocks may differ).
# ARGV[1]: the user id the cookie names; then per window KEYS[i]: limit, window, mode, where mode
#   'i' is decided and counted alone, first (when it refuses, nothing else is looked at);
#   'g' counted, 'l' only looked at: both only if every one of them allows.
# KEYS after the windows (optional): the session's rejected and user cache entries. A rejected
# session stops there ('invalid'); a learned user other than the named one stops there too
# ('other': the caller decides with that user's window, which this call did not declare).
# Returns per window: previous count, current count, window index, 1 if counted; then the status,
# the learned user ('' if none) and the server time.
_ADMIT_LUA = _ROLL + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = (#ARGV - 1) / 3
local out, seen = {}, {}
for i = 1, 4 * n do out[i] = 0 end
local function finish(status, user)
  out[4 * n + 1] = status
  out[4 * n + 2] = user or ''
  out[4 * n + 3] = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  return out
end
local function fits(i)
  local limit, window = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local index = math.floor(now / window)
  local current, previous, same = roll(KEYS[i], window, index)
  out[4 * i - 3], out[4 * i - 2], out[4 * i - 1] = previous, current, index
  seen[i] = {window, index, current, previous, same}
  return previous * (1 - (now % window) / window) + current + 1 <= limit
end
local function add(i)
  local s = seen[i]
  count(KEYS[i], s[1], s[2], s[3], s[4], s[5])
  out[4 * i] = 1
end
for i = 1, n do
  if ARGV[3 * i + 1] == 'i' then
    if not fits(i) then return finish('ip') end
    add(i)
  end
end
local user = false
if #KEYS > n then
  if redis.call('EXISTS', KEYS[n + 1]) == 1 then return finish('invalid') end
  user = redis.call('GET', KEYS[n + 2])
  if user and user ~= ARGV[1] then return finish('other', user) end
end
local allowed = true
for i = 1, n do
  if ARGV[3 * i + 1] ~= 'i' and not fits(i) then allowed = false end
end
if allowed then
  for i = 1, n do
    if ARGV[3 * i + 1] == 'g' then add(i) end
  end
end
return finish('ok', user)
"""

_ADD_LUA = _ROLL + """
local t = redis.call('TIME')
local window = tonumber(ARGV[1])
local index = math.floor(tonumber(t[1]) / window)
local current, previous, same = roll(KEYS[1], window, index)
count(KEYS[1], window, index, current, previous, same)
return 1
"""

# Takes back a count made in window ARGV[1] (Cluster: another call refused the same request; or a
# reservation no token came of): from the current count while that window lasts, from the previous
# one once the next window has begun; later it weighs on nothing.
_REFUND_LUA = """
local s = redis.call('HMGET', KEYS[1], 'i', 'c', 'p')
local index = tonumber(ARGV[1])
if tonumber(s[1]) == index and (tonumber(s[2]) or 0) > 0 then
  redis.call('HINCRBY', KEYS[1], 'c', -1)
elseif tonumber(s[1]) == index + 1 and (tonumber(s[3]) or 0) > 0 then
  redis.call('HINCRBY', KEYS[1], 'p', -1)
end
return 1
"""


class _Window(NamedTuple):
    check: Check
    previous: int
    current: int
    window_index: int
    counted: bool

    def decision(self, now: float) -> Decision:
        return decide(self.check, self.previous, self.current, now)


class _Answer(NamedTuple):
    """One run of the admission script."""

    windows: list[_Window]
    status: str  # ok, ip, invalid or other
    user_id: str | None
    now: float

    def decisions(self) -> list[Decision]:
        """The windows it decided (all, unless it stopped early)."""
        if self.status == "ip":
            return [self.windows[0].decision(self.now)]
        if self.status in ("invalid", "other"):
            return [window.decision(self.now) for window in self.windows if window.counted]
        return [window.decision(self.now) for window in self.windows]


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
        self._admit_script = client.register_script(_ADMIT_LUA)
        self._add_script = client.register_script(_ADD_LUA)
        self._refund_script = client.register_script(_REFUND_LUA)
        # aiocache builds a pool of its own; swap in ours so there is one pool with our timeouts,
        # and never call its close() (redis-py 5+ warns) or clear() (FLUSHDB on the whole database).
        # The admission script reads the same entries, by the names aiocache gives them.
        self.cache = _RedisCache(namespace=f"{prefix}:cache", serializer=StringSerializer(), timeout=None)
        self.cache.client = client

    @property
    def client(self) -> Any:
        return self._client

    def key(self, scope: str, fingerprint: str) -> str:
        return f"{self._prefix}:rl:{scope}:{fingerprint}"

    async def admit(self, query: AdmissionQuery) -> AdmissionAnswer:
        if self._cluster:
            return await self._admit_on_cluster(query)
        named_user = query.user_check(query.named_user_id)
        user_mode = "g" if named_user is None or named_user.count else "l"
        windows = [(check, mode) for check, mode in ((query.ip, "i"), (query.session, "g"), (named_user, user_mode))
                   if check is not None]
        answer = await self._run(windows, [query.rejected_key, query.user_key], query.named_user_id)
        decisions = answer.decisions()
        reserved = _reservation(named_user, answer.windows) if answer.status == "ok" else None
        if answer.status == "other":  # a token showed another user: decide with that user's window
            learned = query.user_check(answer.user_id)
            more, counted = await self._hit([c for c in (query.session, learned) if c])
            decisions += more
            reserved = _reservation(learned, counted)
        return AdmissionAnswer(decisions, answer.status == "invalid", answer.user_id, reserved)

    async def _admit_on_cluster(self, query: AdmissionQuery) -> AdmissionAnswer:
        """Three calls at once: the IP's window; the session's window and caches (one slot); the
        named user's window (the reservation), taken back if anything refused the request or the
        caches name another user."""
        named_user = query.user_check(query.named_user_id)
        ip_call = self._run([(query.ip, "i")]) if query.ip is not None else None
        session_call = self._run([(query.session, "g")] if query.session else [],
                                 [query.rejected_key, query.user_key], query.named_user_id)
        user_call = self._run([(named_user, "g" if named_user.count else "l")]) if named_user is not None else None
        calls = [call for call in (ip_call, session_call, user_call) if call is not None]
        answers = iter(await _gather(calls))
        ip = next(answers) if ip_call is not None else None
        session = next(answers)
        user = next(answers) if user_call is not None else None
        decisions = ip.decisions() if ip is not None else []
        refused = not all(decision.allowed for decision in decisions) or session.status in ("invalid", "other")
        group = [answer for answer in (session, user) if answer is not None]
        if not refused:
            decisions += [decision for answer in group for decision in answer.decisions()]
            refused = not all(decision.allowed for decision in decisions)
        # Take back what this request must not cost: all of the group if anything refused it.
        if refused:
            await self._refund([window for answer in group for window in answer.windows if window.counted])
        reserved = _reservation(named_user, user.windows) if user is not None and not refused else None
        if session.status == "other":
            learned = query.user_check(session.user_id)
            more, counted = await self._hit([c for c in (query.session, learned) if c])
            decisions += more
            reserved = _reservation(learned, counted)
        return AdmissionAnswer(decisions, session.status == "invalid", session.user_id, reserved)

    async def hit(self, checks: list[Check]) -> list[Decision]:
        """Decide every check; count (where `count`) only if all allow."""
        return (await self._hit(checks))[0]

    async def _hit(self, checks: list[Check]) -> tuple[list[Decision], list[_Window]]:
        """`hit`, and the windows it counted (with the window each was counted in)."""
        modes = [(check, "g" if check.count else "l") for check in checks]
        if not self._cluster or len(checks) <= 1:
            answer = await self._run(modes)
            return answer.decisions(), [window for window in answer.windows if window.counted]
        # Cluster: one call per check, all at once, each counting if it allows; when another
        # refused, the counts made are taken back (a second round trip, on refusals only).
        answers = await _gather([self._run([mode]) for mode in modes])
        decisions = [decision for answer in answers for decision in answer.decisions()]
        counted = [window for answer in answers for window in answer.windows if window.counted]
        if not all(decision.allowed for decision in decisions):
            await self._refund(counted)
            counted = []
        return decisions, counted

    async def give_back(self, reservation: Reservation) -> None:
        """Take back a unit reserved at admission (no token came of it)."""
        await self._refund_script(keys=[reservation.check.key], args=[reservation.window_index])

    async def _run(self, windows: list[tuple[Check, str]], cache_keys: list[str] | None = None,
                   named_user_id: str = "") -> _Answer:
        args: list[int | str] = [named_user_id]
        for check, mode in windows:
            args += [check.policy.limit, check.policy.window_seconds, mode]
        keys = [check.key for check, _ in windows]
        keys += [self.cache.build_key(key) for key in cache_keys or ()]
        raw: list[Any] = await self._admit_script(keys=keys, args=args)
        n = len(windows)
        parsed = [_Window(check, int(raw[4 * i]), int(raw[4 * i + 1]), int(raw[4 * i + 2]), int(raw[4 * i + 3]) == 1)
                  for i, (check, _) in enumerate(windows)]
        user_id = _text(raw[4 * n + 1])
        return _Answer(parsed, _text(raw[4 * n]), user_id or None, float(raw[4 * n + 2]))

    async def _refund(self, windows: list[_Window]) -> None:
        await asyncio.gather(*(self._refund_script(keys=[w.check.key], args=[w.window_index]) for w in windows))

    async def add(self, check: Check) -> None:
        await self._add_script(keys=[check.key], args=[check.policy.window_seconds])

    async def ping(self) -> None:
        await self._client.ping()

    async def add_once(self, key: str, ttl: int) -> bool:
        """True the first time `key` is added within `ttl` seconds (SET NX: atomic across replicas)."""
        return bool(await self._client.set(f"{self._prefix}:once:{key}", b"1", nx=True, ex=ttl))

    async def get_cached(self, keys: list[str]) -> list[object]:
        """Several cache entries in one call: the callers' keys share a hash tag (one slot)."""
        values: list[object] = await self.cache.multi_get(keys)
        return values


def _reservation(check: Check | None, windows: list[_Window]) -> Reservation | None:
    """The unit counted in `check`'s window, if this call counted one there."""
    for window in windows:
        if check is not None and window.check is check and window.counted:
            return Reservation(check, window.window_index)
    return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _gather(calls: list[Any]) -> list[_Answer]:
    """Every call's answer; the first failure raised once all have ended (none left running)."""
    answers: list[_Answer] = []
    for result in await asyncio.gather(*calls, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result
        answers.append(result)
    return answers
