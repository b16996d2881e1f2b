"""The exchange's rate limits (per IP, session and user) and its memory of rejected sessions."""

from __future__ import annotations

from dataclasses import dataclass, field

from multidict import CIMultiDict

from service.fingerprints import Fingerprinter
from service.metrics import Metrics
from service.problems import ProblemError
from service.rate_limits import RateLimit
from service.settings import Settings
from service.sliding_window import Check, Decision
from service.state import SESSION_USER_TTL_SECONDS, State


@dataclass
class Admission:
    """What the limits found out before the upstream call, and the headers to send back."""

    session_fingerprint: str
    user_id: str | None
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)


class ExchangeLimits:
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

    async def admit(self, client_ip: str, session_fingerprint: str) -> Admission:
        """Refuse known-dead sessions and callers over a limit, before Appwrite is touched."""
        rejected, user_id = await self._state.get_cached(
            f"invalid:{session_fingerprint}", f"user:{session_fingerprint}"
        )
        if rejected:
            raise ProblemError("session_invalid", "The session is missing, expired or was signed out.")
        keys = {
            "ip": self._keyed_hash(client_ip),
            "session": session_fingerprint,
            "user": self._keyed_hash(user_id) if user_id else None,
        }
        checks = [
            Check(scope, State.key(scope, key), policy)
            for scope, policy in self._policies.items()
            if policy is not None and (key := keys[scope]) is not None
        ]
        admission = Admission(session_fingerprint, user_id)
        if not checks:
            return admission
        decisions = await self._state.hit(checks)
        for decision in decisions:
            self._metrics.ratelimit.labels(decision.scope, "allow" if decision.allowed else "deny").inc()
        admission.headers = ratelimit_headers(decisions)
        refused = [decision for decision in decisions if not decision.allowed]
        if refused:
            worst = max(refused, key=lambda decision: decision.retry_after)
            headers = CIMultiDict(admission.headers)
            headers["Retry-After"] = str(worst.retry_after)
            raise ProblemError(
                "rate_limited",
                f"Too many token requests for this {worst.scope}; retry in {worst.retry_after} s.",
                headers,
                extra={"scope": worst.scope},
            )
        return admission

    async def issued(self, admission: Admission, user_id: str) -> None:
        """Learn session -> user from the token's claims, and count this request for the user."""
        if admission.user_id == user_id:
            return
        await self._state.set_cached(f"user:{admission.session_fingerprint}", user_id, SESSION_USER_TTL_SECONDS)
        policy = self._policies["user"]
        if policy is not None:
            await self._state.add(Check("user", State.key("user", self._keyed_hash(user_id)), policy))

    async def rejected(self, admission: Admission) -> None:
        """Remember a session Appwrite refused, so a flood of dead cookies stays off Appwrite."""
        await self._state.set_cached(f"invalid:{admission.session_fingerprint}", "1", self._invalid_ttl)


def ratelimit_headers(decisions: list[Decision]) -> CIMultiDict[str]:
    """draft-ietf-httpapi-ratelimit-headers: the policies, and what is left of each."""
    policy = ", ".join(f'"{d.scope}";q={d.policy.limit};w={d.policy.window_seconds}' for d in decisions)
    state = ", ".join(f'"{d.scope}";r={d.remaining};t={d.reset_seconds}' for d in decisions)
    return CIMultiDict({"RateLimit-Policy": policy, "RateLimit": state})
