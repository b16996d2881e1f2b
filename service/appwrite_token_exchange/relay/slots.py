"""Relayed-socket slots: the process's cap, and each caller's share of it, counted exactly.

A handshake takes its slot before its first await and gives it back however it ends (refused,
failed, cancelled, or the socket closed), so handshakes in flight together can never overshoot a
cap. The counts are per process, like the sockets they count; a key is dropped once it holds none.
"""

from __future__ import annotations

from types import TracebackType

from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.settings import Settings

# Sockets last for hours, so no moment is right; this only keeps a retry loop from spinning.
RETRY_AFTER = "5"
_CALLER = {"ip": "client IP", "session": "session", "user": "user"}


class RelaySlots:
    def __init__(self, total: int, per_ip: int, per_session: int, per_user: int) -> None:
        self._total = total
        self._caps = {"ip": per_ip, "session": per_session, "user": per_user}
        self._held: dict[str, dict[str, int]] = {scope: {} for scope in self._caps}
        self.open = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RelaySlots:
        return cls(
            settings.relay_max_sockets,
            settings.relay_max_sockets_per_ip,
            settings.relay_max_sockets_per_session,
            settings.relay_max_sockets_per_user,
        )

    def held(self, scope: str, key: str) -> int:
        return self._held[scope].get(key, 0)

    def reserve(self, ip_key: str, session_key: str) -> RelaySlot:
        """A slot for one more socket of this client IP and session, or a problem: 429
        `too_many_sockets` when the caller holds its share, 503 `relay_full` when the process does."""
        self._check("ip", ip_key)
        self._check("session", session_key)
        if self.open >= self._total:
            raise ProblemError(
                "relay_full", "This replica relays as many sockets as it may.", {"Retry-After": RETRY_AFTER}
            )
        self.open += 1
        slot = RelaySlot(self)
        slot._take("ip", ip_key)
        slot._take("session", session_key)
        return slot

    def _check(self, scope: str, key: str) -> None:
        cap = self._caps[scope]
        if self.held(scope, key) >= cap:
            raise ProblemError(
                "too_many_sockets",
                f"This {_CALLER[scope]} already holds {cap} relayed sockets on this replica, the most it may; "
                "close one first.",
                {"Retry-After": RETRY_AFTER},
                extra={"scope": scope},
            )

    def _add(self, scope: str, key: str, delta: int) -> None:
        held = self._held[scope]
        count = held.get(key, 0) + delta
        if count > 0:
            held[key] = count
        else:
            del held[key]


class RelaySlot:
    """One socket's slot; a context manager that gives it back on leaving, whatever the reason."""

    def __init__(self, slots: RelaySlots) -> None:
        self._slots = slots
        self._keys: dict[str, str] = {}
        self._released = False

    def _take(self, scope: str, key: str) -> None:
        self._slots._add(scope, key, 1)
        self._keys[scope] = key

    def claim_user(self, user_id: str) -> None:
        """The user's share, once Appwrite has said who the session belongs to."""
        if self._released:
            raise RuntimeError("this relay slot was already given back")
        self._slots._check("user", user_id)
        self._take("user", user_id)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._slots.open -= 1
        for scope, key in self._keys.items():
            self._slots._add(scope, key, -1)

    def __enter__(self) -> RelaySlot:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()
