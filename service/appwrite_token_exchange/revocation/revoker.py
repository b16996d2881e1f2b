"""A revocation applied here (this process's relayed sockets) and passed on to the other replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog

from appwrite_token_exchange.observability import audit
from appwrite_token_exchange.observability.metrics import Metrics
from appwrite_token_exchange.revocation.bus import RevocationBus
from appwrite_token_exchange.revocation.notice import Revocation

_log = structlog.get_logger(logger_name="revocation")


class Revocable(Protocol):
    """What a revocation needs of a relayed socket (relay/pump.py's Relay)."""

    @property
    def user_id(self) -> object: ...
    @property
    def fingerprint(self) -> str: ...
    def sign_out(self) -> None: ...
    def recheck_now(self) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What a revocation did here, and how far it was passed on."""

    closed: int
    rechecked: int
    # redis: published to every replica's subscriber; local: no REDIS_URL (one replica); failed: Redis
    # could not take it (the other replicas close their sockets at their next re-check).
    broadcast: Literal["redis", "local", "failed"]

    def to_json(self) -> dict[str, object]:
        return {"closedHere": self.closed, "recheckedHere": self.rechecked, "broadcast": self.broadcast}


class Revoker:
    """Ends the sockets a revocation names: closed now (`force`) or re-checked with Appwrite now.
    A forced close also marks the session revoked in the shared state (`mark_revoked`), so the
    token route and new relay handshakes answer it 401 at once, on every replica."""

    def __init__(self, relays: Collection[Revocable], metrics: Metrics,
                 mark_revoked: Callable[[str], Awaitable[None]]) -> None:
        self._relays = relays
        self._metrics = metrics
        self._mark_revoked = mark_revoked
        self.bus: RevocationBus | None = None
        self._marking: set[asyncio.Task[None]] = set()

    async def revoke(self, revocation: Revocation, source: str) -> Outcome:
        closed, rechecked = self.apply_here(revocation, source)
        if self.bus is None:
            broadcast: Literal["redis", "local", "failed"] = "local"
        else:
            try:
                await self.bus.publish(revocation)
                broadcast = "redis"
            except Exception as error:
                _log.warning("revocation.not_broadcast", error=type(error).__name__, user_id=revocation.user_id)
                broadcast = "failed"
        return Outcome(closed, rechecked, broadcast)

    def deliver(self, revocation: Revocation) -> None:
        """Another replica's revocation, from the bus."""
        self.apply_here(revocation, "broadcast")

    def apply_here(self, revocation: Revocation, source: str) -> tuple[int, int]:
        """Closes or re-checks this process's matching sockets; no await, so none opens meanwhile."""
        matching = [relay for relay in list(self._relays) if relay.user_id == revocation.user_id
                    and (revocation.fingerprint is None or relay.fingerprint == revocation.fingerprint)]
        closed = rechecked = 0
        revoked: set[str] = set()
        for relay in matching:
            if revocation.force:
                relay.sign_out()
                revoked.add(relay.fingerprint)
                closed += 1
            else:
                relay.recheck_now()
                rechecked += 1
        for fingerprint in revoked - {""}:
            task = asyncio.ensure_future(self._mark_revoked(fingerprint))
            self._marking.add(task)
            task.add_done_callback(self._marking.discard)
        action = "closed" if revocation.force else "rechecked"
        self._metrics.revocations.labels(source, action).inc()
        audit.revocation(source=source, action=action, user_id=revocation.user_id, sockets=len(matching),
                         session_scoped=revocation.fingerprint is not None)
        return closed, rechecked
