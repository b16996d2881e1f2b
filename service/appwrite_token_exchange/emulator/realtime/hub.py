"""Open Realtime sockets, who is behind each, and delivering published events to the right ones.

An event reaches a socket when one of the socket's channels is among the event's channels and
one of the socket's roles is among the event's roles (or the event is for role `any`), which is
Appwrite's `getSubscribers`, and (1.9.0+) a subscription's queries hold for the event's payload.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from appwrite_token_exchange.emulator.config import EmulatorConfig
from appwrite_token_exchange.emulator.models import iso
from appwrite_token_exchange.emulator.realtime.channels import queries_match
from appwrite_token_exchange.emulator.realtime.wire import encode
from appwrite_token_exchange.emulator.state import EmulatorState, EmulatorUser

MAX_HISTORY = 1000


def roles_for(user: EmulatorUser | None) -> set[str]:
    """Appwrite's User::getRoles for a project user (without teams), or a guest's roles."""
    if user is None:
        return {"any", "guests"}
    verified = "verified" if user.email_verification else "unverified"
    roles = {"any", "users", f"users/{verified}", f"user:{user.id}", f"user:{user.id}/{verified}"}
    roles.update(f"label:{label}" for label in user.labels)
    return roles


@dataclass
class Subscription:
    id: str
    channels: list[str]
    queries: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"subscriptionId": self.id, "channels": list(self.channels), "queries": list(self.queries)}


@dataclass
class RealtimeConnection:
    id: str
    project: str
    ip: str
    forwarded_for: str | None
    origin: str | None
    opened_at: float
    user_id: str | None = None
    roles: set[str] = field(default_factory=lambda: roles_for(None))
    # 1.8 servers keep one channel list per socket; newer ones keep subscriptions.
    channels: list[str] = field(default_factory=list)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    # 1.9.5+: presence documents this socket upserted, by ID (dropped with the socket).
    presences: dict[str, dict[str, Any]] = field(default_factory=dict)
    closed_at: float | None = None
    error: dict[str, Any] | None = None
    socket: web.WebSocketResponse | None = None

    def set_user(self, user: EmulatorUser | None) -> None:
        self.user_id = user.id if user is not None else None
        self.roles = roles_for(user)

    def all_channels(self) -> list[str]:
        names = dict.fromkeys(self.channels)
        for subscription in self.subscriptions.values():
            names.update(dict.fromkeys(subscription.channels))
        return list(names)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "userId": self.user_id,
            "channels": self.all_channels(),
            "subscriptions": [subscription.to_json() for subscription in self.subscriptions.values()],
            "forwardedFor": self.forwarded_for,
            "origin": self.origin,
            "ip": self.ip,
            "openedAt": iso(self.opened_at),
            "closedAt": None if self.closed_at is None else iso(self.closed_at),
            "open": self.socket is not None and self.closed_at is None,
            "error": self.error,
        }


class RealtimeHub:
    def __init__(self, config: EmulatorConfig, state: EmulatorState) -> None:
        self._config = config
        self._state = state
        self._open: dict[str, RealtimeConnection] = {}
        self._history: deque[RealtimeConnection] = deque(maxlen=MAX_HISTORY)
        self.connects = 0
        # The project's Web platforms (hostnames) the Origin check accepts; starts from the config.
        self.platforms: dict[str, None] = dict.fromkeys(config.platforms)

    def attempted(self, connection: RealtimeConnection) -> None:
        """Every handshake is remembered, refused ones too, so tests can see what was sent."""
        self.connects += 1
        self._history.append(connection)

    def opened(self, connection: RealtimeConnection, socket: web.WebSocketResponse) -> None:
        connection.socket = socket
        self._open[connection.id] = connection

    def closed(self, connection: RealtimeConnection) -> None:
        connection.closed_at = self._state.now()
        self._open.pop(connection.id, None)

    def history(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        return [c.to_json() for c in self._history if not open_only or c.id in self._open]

    @property
    def open_count(self) -> int:
        return len(self._open)

    def forget_history(self) -> None:
        self._history = deque((c for c in self._history if c.id in self._open), maxlen=MAX_HISTORY)
        self.connects = 0

    async def publish(
        self,
        channels: list[str],
        events: list[str],
        payload: dict[str, Any],
        roles: Iterable[str],
    ) -> int:
        """Send one `event` frame to every socket allowed to see it; how many got it."""
        roles = set(roles)
        wanted = set(channels)
        data: dict[str, Any] = {
            "events": events,
            "channels": channels,
            "timestamp": iso(self._state.now()),
            "payload": payload,
        }
        delivered = 0
        for connection in list(self._open.values()):
            socket = connection.socket
            if socket is None or socket.closed:
                continue
            if "any" not in roles and not roles & connection.roles:
                continue
            frame = dict(data)
            if self._config.realtime_subscription_ids:
                matched = [
                    s.id
                    for s in connection.subscriptions.values()
                    if wanted & set(s.channels) and queries_match(s.queries, payload)
                ]
                if not matched:
                    continue
                frame["subscriptions"] = matched
            elif not wanted & set(connection.channels):
                continue
            try:
                await socket.send_str(encode({"type": "event", "data": frame}))
            except ConnectionError:
                continue  # closed while we were sending: it just misses the event, as on Appwrite
            delivered += 1
        return delivered

    async def disconnect(self, user_id: str | None, code: int) -> int:
        """Close one user's sockets (all sockets when no user is named) with a close frame."""
        matching = [c for c in self._open.values() if user_id is None or c.user_id == user_id]
        for connection in matching:
            if connection.socket is not None:
                await connection.socket.close(code=code, message=b"Connection closed by the emulator")
        return len(matching)

    async def close_all(self) -> None:
        for connection in list(self._open.values()):
            if connection.socket is not None:
                await connection.socket.close(code=1001, message=b"Server shutting down")
