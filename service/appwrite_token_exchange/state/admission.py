"""What one exchange asks of the shared state before Appwrite is called, and the answer.

In order: the IP window (decided and counted alone; when it refuses, nothing else is looked at),
then the session's two cache entries (a session Appwrite refused; the user a token showed), then
the session and user windows together (counted only if both allow). One question, so that a single
Redis answers it in one round trip (see redis_state.py) and memory answers it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from appwrite_token_exchange.state.sliding_window import Check, Decision


@dataclass(frozen=True)
class AdmissionQuery:
    ip: Check | None
    session: Check | None
    rejected_key: str  # cache entry: Appwrite refused this session
    user_key: str  # cache entry: the user a token showed for this session (same hash tag)
    named_user_id: str  # the user the cookie names (anyone can write a cookie)
    # The user window (reserved: counted, and given back if no token comes of it): of the learned
    # user, or, before any token, of the named user. None when the user limit is off.
    user_check: Callable[[str | None], Check | None]


@dataclass(frozen=True)
class Reservation:
    """One unit counted in a user window at admission, and where, so that it can be given back."""

    check: Check
    window_index: int  # the window it was counted in, on the clock of the state that counted it
    in_memory: bool = False  # counted by the memory state (no Redis, or Redis was down)


@dataclass(frozen=True)
class AdmissionAnswer:
    """Decisions in query order (the IP's, then the session's and the user's, as far as it got)."""

    decisions: list[Decision] = field(default_factory=list)
    rejected: bool = False
    user_id: str | None = None
    reserved: Reservation | None = None  # the user window's unit, when it was counted
