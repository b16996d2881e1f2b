"""Frames a client sends on an open Realtime socket, and the answers Appwrite gives.

1.9 and newer route frames through a dispatcher with `ping`, `authentication`, `subscribe` and
`unsubscribe`; 1.8 knows only `ping` and `authentication`. Every failure is an `error` frame;
only a policy violation (1008) also closes the socket.
"""

from __future__ import annotations

import json
import re
from typing import Any

from appwrite_token_exchange.emulator.config import EmulatorConfig
from appwrite_token_exchange.emulator.credentials import unique_id
from appwrite_token_exchange.emulator.models import account_model, iso
from appwrite_token_exchange.emulator.realtime.channels import (
    UnsupportedQuery,
    check_queries,
    convert_channels,
    rebind_account_channels,
)
from appwrite_token_exchange.emulator.realtime.hub import RealtimeConnection, Subscription
from appwrite_token_exchange.emulator.state import EmulatorState

FORMAT_INVALID = 1003
POLICY_VIOLATION = 1008
TOO_MANY_MESSAGES = 1013
_CUSTOM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,35}")
_SESSION_MAX = 2048


class RealtimeError(Exception):
    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)

    def frame(self) -> dict[str, Any]:
        return {"type": "error", "data": {"code": self.code, "message": self.message}}


def parse(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        message = None
    if not isinstance(message, dict) or ("type" not in message and "data" not in message):
        raise RealtimeError(FORMAT_INVALID, "Message format is not valid.")
    return message


def handle(
    message: dict[str, Any],
    connection: RealtimeConnection,
    state: EmulatorState,
    config: EmulatorConfig,
) -> dict[str, Any]:
    """The answer frame to one client frame; RealtimeError for an `error` frame."""
    kind = message.get("type", "invalid")
    handlers = _HANDLERS if config.message_subscriptions else _LEGACY_HANDLERS
    if config.presence_frames:
        handlers = {**handlers, "presence": _presence}
    if not isinstance(kind, str) or kind not in handlers:
        raise RealtimeError(FORMAT_INVALID, "Message type is not valid.")
    return handlers[kind](message, connection, state, config)


def _ping(message: dict[str, Any], *_: Any) -> dict[str, Any]:
    return {"type": "pong"}


def _authenticate(
    message: dict[str, Any],
    connection: RealtimeConnection,
    state: EmulatorState,
    config: EmulatorConfig,
) -> dict[str, Any]:
    """Swap the socket's user for the one behind a session value (never a JWT)."""
    data = message.get("data")
    if not isinstance(data, dict) or "session" not in data:
        detail = (
            "Payload is not valid. Session is required" if config.message_subscriptions else "Payload is not valid."
        )
        raise RealtimeError(FORMAT_INVALID, detail)
    value = data["session"]
    if config.message_subscriptions and (not isinstance(value, str) or len(value) > _SESSION_MAX):
        raise RealtimeError(FORMAT_INVALID, f"session: Value must be a valid string and at most {_SESSION_MAX} chars")
    found = state.verify_session_value(value) if isinstance(value, str) else None
    if found is None:
        raise RealtimeError(FORMAT_INVALID, "Session is not valid.")
    user = found[0]
    previous = connection.user_id or ""
    connection.set_user(user)
    if config.realtime_subscription_ids:
        for subscription in connection.subscriptions.values():
            subscription.channels = rebind_account_channels(subscription.channels, previous, user.id)
    else:
        connection.channels = convert_channels(connection.channels, user.id, config.account_action_channels)
    return {
        "type": "response",
        "data": {"to": "authentication", "success": True, "user": account_model(user)},
    }


def _subscribe(
    message: dict[str, Any],
    connection: RealtimeConnection,
    state: EmulatorState,
    config: EmulatorConfig,
) -> dict[str, Any]:
    items = _items(message)
    _check_subscribe_items(items)
    # Every item is checked before any is applied, so a refused batch changes nothing.
    parsed = []
    for item in items:
        subscription_id = item["subscriptionId"] if "subscriptionId" in item else unique_id(state.now())
        try:
            queries = check_queries(item.get("queries") or [])
        except UnsupportedQuery as error:
            raise RealtimeError(FORMAT_INVALID, f"Invalid query: {error}") from None
        except ValueError as error:
            raise RealtimeError(FORMAT_INVALID, str(error)) from None
        converted = convert_channels(item["channels"], connection.user_id or "", config.account_action_channels)
        parsed.append((subscription_id, converted, queries))
    added = []
    for subscription_id, converted, queries in parsed:
        stored = converted
        existing = connection.subscriptions.get(subscription_id)
        if existing is not None:
            # Appwrite adds a reused ID's new channels to it rather than replacing them.
            stored = list(dict.fromkeys([*existing.channels, *converted]))
        connection.subscriptions[subscription_id] = Subscription(subscription_id, stored, queries)
        added.append({"subscriptionId": subscription_id, "channels": converted, "queries": queries})
    return {"type": "response", "data": {"to": "subscribe", "success": True, "subscriptions": added}}


def _items(message: dict[str, Any]) -> Any:
    """The `data` of a subscribe or unsubscribe frame; Appwrite requires it."""
    if message.get("data") is None:
        raise RealtimeError(FORMAT_INVALID, "Payload is not valid. Items is required")
    return message["data"]


def _check_subscribe_items(items: Any) -> None:
    def invalid(description: str) -> RealtimeError:
        return RealtimeError(FORMAT_INVALID, f"items: {description}")

    if not isinstance(items, list):
        raise invalid("Payload is not valid.")
    for item in items:
        if not isinstance(item, dict):
            raise invalid("Each subscribe payload must be an object.")
        if "subscriptionId" in item and not (
            isinstance(item["subscriptionId"], str) and _CUSTOM_ID.fullmatch(item["subscriptionId"])
        ):
            raise invalid("subscriptionId is not a valid id.")
        if "channels" not in item:
            raise invalid("channels is not present in payload.")
        if not isinstance(item["channels"], list):
            raise invalid("channels is not a valid array.")
        if not all(isinstance(channel, str) for channel in item["channels"]):
            raise invalid("channels must contain only strings.")
        if "queries" in item and not isinstance(item["queries"], list):
            raise invalid("queries is not a valid array.")


def _unsubscribe(
    message: dict[str, Any],
    connection: RealtimeConnection,
    state: EmulatorState,
    config: EmulatorConfig,
) -> dict[str, Any]:
    items = _items(message)
    if not isinstance(items, list):
        raise RealtimeError(FORMAT_INVALID, "items: Payload is not valid.")
    if not all(isinstance(item, dict) and isinstance(item.get("subscriptionId"), str) for item in items) or any(
        item["subscriptionId"] == "" for item in items
    ):
        raise RealtimeError(FORMAT_INVALID, "items: Each unsubscribe payload must include a non-empty subscriptionId.")
    results = [
        {
            "subscriptionId": item["subscriptionId"],
            "removed": connection.subscriptions.pop(item["subscriptionId"], None) is not None,
        }
        for item in items
    ]
    return {"type": "response", "data": {"to": "unsubscribe", "success": True, "subscriptions": results}}


_PRESENCE_STATUS_MAX = 2048
_PRESENCE_ID_MAX = 36
PRESENCE_TTL_SECONDS = 30 * 86400


def _presence(
    message: dict[str, Any],
    connection: RealtimeConnection,
    state: EmulatorState,
    config: EmulatorConfig,
) -> dict[str, Any]:
    """Upsert this user's presence document (1.9.5+); only the frame's answer is modelled."""
    data = message.get("data")
    params = data if isinstance(data, dict) else {}
    if "status" not in params:
        raise RealtimeError(FORMAT_INVALID, "Payload is not valid. Status is required")
    status = params["status"]
    if not isinstance(status, str) or len(status) > _PRESENCE_STATUS_MAX:
        raise RealtimeError(
            FORMAT_INVALID, f"status: Value must be a valid string and at most {_PRESENCE_STATUS_MAX} chars"
        )
    presence_id = params.get("presenceId", "unique()")
    if not isinstance(presence_id, str) or len(presence_id) > _PRESENCE_ID_MAX:
        raise RealtimeError(
            FORMAT_INVALID, f"presenceId: Value must be a valid string and at most {_PRESENCE_ID_MAX} chars"
        )
    permissions = params.get("permissions")
    if permissions is not None and not (
        isinstance(permissions, list) and all(isinstance(item, str) for item in permissions)
    ):
        raise RealtimeError(FORMAT_INVALID, "permissions: Permissions must be an array of strings.")
    user_id = connection.user_id
    if not user_id:
        raise RealtimeError(401, "User must be authorized")
    if presence_id == "unique()":
        presence_id = unique_id(state.now())
    now = iso(state.now())
    previous = connection.presences.get(presence_id)
    if permissions is None:
        permissions = [f'{action}("user:{user_id}")' for action in ("read", "update", "delete")]
    presence: dict[str, Any] = {
        "$id": presence_id,
        "$createdAt": previous["$createdAt"] if previous else now,
        "$updatedAt": now,
        "$permissions": permissions,
        "userId": user_id,
        "source": "realtime",
        "status": status,
        "expiresAt": iso(state.now() + PRESENCE_TTL_SECONDS),
    }
    if params.get("metadata") is not None:
        presence["metadata"] = params["metadata"]
    connection.presences[presence_id] = presence
    return {"type": "response", "data": {"to": "presence", "presence": presence}}


_HANDLERS = {
    "ping": _ping,
    "authentication": _authenticate,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
}
_LEGACY_HANDLERS = {"ping": _ping, "authentication": _authenticate}
