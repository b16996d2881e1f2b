"""The rate limits both routes charge (per IP, session and user) and the memory of rejected sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from multidict import CIMultiDict

from appwrite_token_exchange.access.client_ip import limit_key_for_ip
from appwrite_token_exchange.access.fingerprints import Fingerprinter
from appwrite_token_exchange.observability.metrics import Metrics
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.settings import Settings
from appwrite_token_exchange.state.admission import AdmissionQuery, Reservation
from appwrite_token_exchange.state.sliding_window import Check, Decision
from appwrite_token_exchange.state.store import SESSION_USER_TTL_SECONDS, State

# Appwrite's ids are at most 36 characters; a longer one is charged but not cached, so that every
# memory cache entry stays small (see state.py).
_MAX_CACHED_USER_ID = 255


@dataclass
class Admission:
    """What the limits decided and found out before the upstream call."""

    decisions: list[Decision] = field(default_factory=list)
    session_fingerprint: str = ""
    # The session's user as learned from an earlier token: confirmed by Appwrite, not by the cookie.
    user_id: str | None = None
    # The unit of a user's window this request holds until a token is issued (`issued` keeps or
    # moves it) or it ends without one (`give_back`).
    reserved: Reservation | None = None

    @property
    def headers(self) -> CIMultiDict[str]:
        return ratelimit_headers(self.decisions) if self.decisions else CIMultiDict()


class AccessLimits:
    """The IP limit, the rejected-session memory and the session and user limits, asked of the state
    as one question once the cookie is decoded (`admit`: one Redis round trip). A request refused
    before that (its cookie, its channels) still costs its IP (`charging_ip`).

    The user limit is reserved at admission, before Appwrite is asked, so that exchanges in flight
    together (first exchanges of many sessions of one user, or several of one session) never mint
    past it: one unit of the window of the session's user, as learned from an earlier token, or on
    a session's first exchange of the user the cookie names. Anyone can write a cookie, so the unit
    is given back whenever no token comes of the request (Appwrite refused the session or failed, the
    body was too large, the client left): a forged cookie naming a user holds one unit of that user's
    window only while Appwrite is asked. When the token names another user than the one reserved
    (a cookie naming someone else), the unit moves to the token's user, who must have room: if not,
    the token is not handed out (429).
    """

    def __init__(self, settings: Settings, state: State, metrics: Metrics, fingerprinter: Fingerprinter) -> None:
        self._state = state
        self._keyed_hash = fingerprinter.of
        self._metrics = metrics
        self._policies: dict[str, RateLimit | None] = {
            "ip": settings.rate_limit_ip,
            "session": settings.rate_limit_session,
            "user": settings.rate_limit_user,
        }
        self._invalid_ttl = settings.invalid_session_cache_seconds
        self._ipv6_prefix_length = settings.ipv6_prefix_length
        self._reconnects_per_ip = settings.relay_reconnects_per_ip

    def _ip_check(self, client_ip: str) -> Check | None:
        policy = self._policies["ip"]
        if policy is None:
            return None
        return Check("ip", State.key("ip", self._keyed_hash(limit_key_for_ip(client_ip, self._ipv6_prefix_length))),
                     policy)

    async def reconnect_wait(self, client_ip: str) -> int:
        """Seconds until this client IP's relayed sockets may open one more upstream socket for new
        channels (0: now, and counted). Shared across replicas through the state, as Appwrite's own
        limit is per IP whichever replica connects."""
        policy = self._reconnects_per_ip
        if policy is None:
            return 0
        key = State.key("reconnect_ip", self._keyed_hash(limit_key_for_ip(client_ip, self._ipv6_prefix_length)))
        [decision] = await self._state.hit([Check("reconnect_ip", key, policy)])
        self._metrics.ratelimit_decision(decision.scope, decision.allowed)
        return 0 if decision.allowed else max(1, decision.retry_after)

    async def admit_ip(self, client_ip: str) -> Admission:
        """Count the request against its IP, or refuse it."""
        admission = Admission()
        if (check := self._ip_check(client_ip)) is not None:
            self._decide(admission, await self._state.hit([check]))
        return admission

    @asynccontextmanager
    async def charging_ip(self, client_ip: str) -> AsyncIterator[None]:
        """A request refused inside this block (before `admit`) still costs its IP; if the IP is
        over its limit, the answer is that instead."""
        try:
            yield
        except ProblemError:
            await self.admit_ip(client_ip)
            raise

    async def admit(self, client_ip: str, session_fingerprint: str, named_user_id: str) -> Admission:
        """Count the request against its IP, then refuse known-dead sessions, and sessions or users
        over their limit, before Appwrite is asked. `named_user_id` is the id the cookie names: its
        window is reserved until a token shows the session's user (see the class)."""
        user_policy = self._policies["user"]

        def user_check(user_id: str | None) -> Check | None:
            if user_policy is None:
                return None
            key = State.key("user", self._keyed_hash(user_id or named_user_id))
            return Check("user", key, user_policy)

        session_policy = self._policies["session"]
        answer = await self._state.admit(AdmissionQuery(
            ip=self._ip_check(client_ip),
            # The hash tag puts the session's window in its cache entries' Cluster slot.
            session=None if session_policy is None else Check(
                "session", State.key("session", f"{{{session_fingerprint}}}"), session_policy),
            rejected_key=_cache_key("invalid", session_fingerprint),
            user_key=_cache_key("user", session_fingerprint),
            named_user_id=named_user_id,
            user_check=user_check,
        ))
        admission = Admission(session_fingerprint=session_fingerprint, user_id=answer.user_id,
                              reserved=answer.reserved)
        ip_decisions = answer.decisions[:1] if self._policies["ip"] is not None else []
        self._decide(admission, ip_decisions)
        if answer.rejected:
            raise ProblemError("session_invalid", "The session is missing, expired or was signed out.")
        self._decide(admission, answer.decisions[len(ip_decisions):])
        return admission

    def _decide(self, admission: Admission, decisions: list[Decision]) -> None:
        for decision in decisions:
            self._metrics.ratelimit_decision(decision.scope, decision.allowed)
        admission.decisions += decisions
        refused = [decision for decision in decisions if not decision.allowed]
        if refused:
            worst = max(refused, key=lambda decision: decision.retry_after)
            headers = admission.headers
            headers["Retry-After"] = str(worst.retry_after)
            raise ProblemError(
                "rate_limited",
                f"Too many token requests for this {worst.scope}; retry in {worst.retry_after} s.",
                headers,
                extra={"scope": worst.scope},
            )

    async def issued(self, admission: Admission, user_id: str) -> None:
        """Appwrite confirmed the session: learn its user from the token; the unit reserved at
        admission is that user's, or moves to that user (raises 429 if that user has no room)."""
        if admission.user_id != user_id and len(user_id) <= _MAX_CACHED_USER_ID:
            key = _cache_key("user", admission.session_fingerprint)
            await self._state.set_cached(key, user_id, SESSION_USER_TTL_SECONDS)
        policy = self._policies["user"]
        if policy is None:
            return
        check = Check("user", State.key("user", self._keyed_hash(user_id)), policy)
        reserved, admission.reserved = admission.reserved, None
        if reserved is not None and reserved.check.key == check.key:
            return  # reserved at admission
        if reserved is not None:
            await self._state.give_back(reserved)
        admission.decisions = [decision for decision in admission.decisions if decision.scope != "user"]
        self._decide(admission, await self._state.hit([check]))

    async def give_back(self, admission: Admission) -> None:
        """No token came of this request: the unit of the user's window it held goes back."""
        reserved, admission.reserved = admission.reserved, None
        if reserved is not None:
            await self._state.give_back(reserved)

    async def remember_session(self, session_fingerprint: str, session_id: str) -> None:
        """Which fingerprint a session id is (learned from a token's claims), so a revocation that
        names the session by its id (Appwrite's webhook, the app's kick) finds its sockets and cache."""
        if len(session_id) <= _MAX_CACHED_USER_ID:
            key = _cache_key("sid", self._keyed_hash(session_id))
            await self._state.set_cached(key, session_fingerprint, SESSION_USER_TTL_SECONDS)

    async def session_fingerprint(self, session_id: str) -> str | None:
        """The fingerprint of a session id seen on the token route (None: never seen, or forgotten)."""
        [fingerprint] = await self._state.get_cached(_cache_key("sid", self._keyed_hash(session_id)))
        return fingerprint

    async def revoked(self, session_fingerprint: str) -> None:
        """A revoked session is answered 401 at once, on both routes and every replica, for as long as
        a session plausibly lives (it may still be valid in Appwrite: the app's kick)."""
        await self._state.set_cached(_cache_key("invalid", session_fingerprint), "1", SESSION_USER_TTL_SECONDS)

    async def rejected(self, admission: Admission) -> None:
        """Remember a session Appwrite refused, so a flood of dead cookies stays off Appwrite."""
        await self._state.set_cached(_cache_key("invalid", admission.session_fingerprint), "1", self._invalid_ttl)


def _cache_key(kind: str, session_fingerprint: str) -> str:
    """A session's cache entries share the hash tag {fingerprint}: one slot, so one MGET on a Cluster."""
    return f"{kind}:{{{session_fingerprint}}}"


def ratelimit_headers(decisions: list[Decision]) -> CIMultiDict[str]:
    """draft-ietf-httpapi-ratelimit-headers: the policies, and what is left of each."""
    policy = ", ".join(f'"{d.scope}";q={d.policy.limit};w={d.policy.window_seconds}' for d in decisions)
    state = ", ".join(f'"{d.scope}";r={d.remaining};t={d.reset_seconds}' for d in decisions)
    return CIMultiDict({"RateLimit-Policy": policy, "RateLimit": state})
