"""Appwrite's webhook, read as Appwrite sends it (src/Appwrite/Platform/Workers/Webhooks.php):

    X-Appwrite-Webhook-Signature: base64(HMAC-SHA1(rawurldecode(<the webhook's URL>) . <body>, <signature key>))

The URL is the one set on the webhook in Appwrite (APPWRITE_WEBHOOK_URL), not the one the request
arrived at (a proxy may rewrite it). Nothing else is signed: not the events header, not a time.
Appwrite never retries a delivery, so a signature seen twice is a replay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import unquote_to_bytes

from appwrite_token_exchange.revocation.notice import is_appwrite_id

SIGNATURE_HEADER = "X-Appwrite-Webhook-Signature"
EVENTS_HEADER = "X-Appwrite-Webhook-Events"

# The events that may end a user's sessions, as segments ('*': any one id). A session event's body is
# the session (its `userId`); the others' is the user (its `$id`).
_SESSION_EVENTS = (("users", "*", "sessions", "*", "delete"),)
_USER_EVENTS = (("users", "*", "delete"), ("users", "*", "update", "status"), ("users", "*", "update", "password"))


def signature(url: str, body: bytes, key: str) -> str:
    """What Appwrite sends: PHP's rawurldecode works on bytes and leaves '+' alone, as unquote_to_bytes."""
    digest = hmac.new(key.encode(), unquote_to_bytes(url) + body, hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_by(url: str, body: bytes, given: str | None, keys: tuple[str, ...]) -> bool:
    """True when `given` is the signature under one of `keys` (several while one is rotated)."""
    if not given:
        return False
    return any(hmac.compare_digest(signature(url, body, key).encode(), given.encode()) for key in keys)


def _matches(event: str, pattern: tuple[str, ...]) -> bool:
    parts = event.split(".")
    return len(parts) == len(pattern) and all(p in ("*", part) for part, p in zip(parts, pattern, strict=True))


class Unreadable(ValueError):
    """A webhook about a session's end whose body names no user."""


def user_to_recheck(events_header: str | None, body: bytes) -> str | None:
    """The user whose sockets Appwrite's answer should decide now, or None when the webhook reports
    nothing that ends a session (raises Unreadable when it does, but names no user). The user comes
    from the signed body; the events header (unsigned) only says which kind of body it is, so a
    tampered header can at most cause a re-check."""
    events = [event.strip() for event in (events_header or "").split(",") if event.strip()]
    if any(_matches(event, pattern) for event in events for pattern in _SESSION_EVENTS):
        id_field = "userId"
    elif any(_matches(event, pattern) for event in events for pattern in _USER_EVENTS):
        id_field = "$id"
    else:
        return None
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise Unreadable("the body is not JSON") from None
    user_id = payload.get(id_field) if isinstance(payload, dict) else None
    if not is_appwrite_id(user_id):
        raise Unreadable(f"the body has no Appwrite id in {id_field!r}")
    return str(user_id)
