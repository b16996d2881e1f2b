"""What a relayed page may ask Appwrite for: the channels in its handshake URL and in its frames.

Both are read the way Appwrite reads them and checked against RELAY_CHANNELS_ALLOW, and only what
was checked goes upstream: the upstream URL is rebuilt from the channels (never copied from the
page), and every frame is re-encoded from what the relay read (never passed through as sent).
Whatever Appwrite could read differently from the relay is therefore never sent to it.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from appwrite_token_exchange.relay.php_query import PhpKey, encode_query, parse_key, parse_query, php_urldecode

CHANNELS = "channels"
# Parameters Appwrite reads for itself, never taken from the page: the project is the relay's
# own, and a JWT would replace the session the relay authenticates with.
_RESERVED = frozenset({"project", CHANNELS, "jwt"})
# Appwrite's error codes for a frame it cannot read, and for a refused one.
FORMAT_INVALID = 1003
POLICY_VIOLATION = 1008
# A refusal names at most this many channels, each cut to this length.
_SHOWN_CHANNELS = 5
_SHOWN_CHARS = 100


@dataclass(frozen=True)
class Handshake:
    """What the relay forwards of a page's handshake query."""

    # Every value of every spelling of `channels` (`channels`, `channels[]`, `channels[0]`,
    # `channels[0][1]`, ...), in order, each once. Appwrite would keep only some of them (a later
    # `channels=` replaces earlier ones); all are checked, and all are forwarded.
    channels: tuple[str, ...]
    # Web SDK 20-24 send each subscription's queries as `<channel>[<slot>][]=<query>`, and
    # Appwrite looks them up by channel name (dots read as `_`). They only narrow what a channel
    # delivers, so those of the page's own channels are forwarded; every other parameter is not.
    queries: tuple[tuple[PhpKey, str], ...]


def read_handshake(raw_query: str) -> Handshake:
    pairs = parse_query(raw_query)
    channels = tuple(dict.fromkeys(value for key, value in pairs if key.name == CHANNELS))
    named = {channel.replace(".", "_") for channel in channels} - _RESERVED
    return Handshake(channels, tuple((key, value) for key, value in pairs if key.name in named))


def upstream_url(endpoint: str, project_id: str, handshake: Handshake) -> str:
    """wss://<appwrite>/v1/realtime?project=<id>&channels[]=... and the channels' own queries:
    only what the relay checked, each in one spelling; never a JWT, never the page's project."""
    parts = urlsplit(endpoint)
    scheme = "wss" if parts.scheme == "https" else "ws"
    pairs = [(PhpKey("project"), project_id)]
    pairs += [(PhpKey(CHANNELS, (None,)), channel) for channel in handshake.channels]
    pairs += handshake.queries
    return urlunsplit((scheme, parts.netloc, f"{parts.path}/realtime", encode_query(pairs), ""))


def slot_key(channel: str, slot: int) -> PhpKey | None:
    """The key Appwrite 1.9.0 reads the queries of `channel` at `slot` from (`<channel>[<slot>][]`,
    the name with dots read as `_`: `Realtime::constructSubscriptions`); None when PHP would store
    that key under another name (spaces, brackets, NUL), so Appwrite would not find the queries, or
    when the name is one Appwrite reads for itself."""
    name = channel.replace(".", "_")
    key = PhpKey(name, (str(slot), None))
    if name in _RESERVED or parse_key(php_urldecode(key.spelled())) != key:
        return None
    return key


def denied_channels(channels: list[str] | tuple[str, ...], patterns: tuple[str, ...]) -> list[str]:
    """The channels that no pattern allows (all are allowed when no policy is set)."""
    if not patterns:
        return []
    return [c for c in channels if not any(fnmatch.fnmatchcase(c, p) for p in patterns)]


def shown(channels: list[str]) -> str:
    """Channels for a refusal message: the page's own input, so kept short."""
    names = [c if len(c) <= _SHOWN_CHARS else c[:_SHOWN_CHARS] + "…" for c in channels[:_SHOWN_CHANNELS]]
    more = len(channels) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class Verdict:
    """What to do with one frame from the page: forward `forward` (the relay's re-encoding of
    `frame`), answer `reply`, or (neither) drop it."""

    forward: str | None = None
    reply: str | None = None
    frame: dict[str, Any] | None = field(default=None, compare=False)


def screen_frame(data: str | bytes, patterns: tuple[str, ...]) -> Verdict:
    """Read a page's frame as Appwrite would, and decide. Text and binary frames alike: Appwrite's
    server decodes both as JSON, so a binary frame is just another spelling of a text one."""
    try:
        frame = json.loads(data if isinstance(data, str) else data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _unreadable("it is not JSON text")
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        # PHP compares `type` loosely (`true` matches the first case), so only strings pass.
        return _unreadable("it is not an object with a string type")
    kind = frame["type"]
    if kind == "authentication":
        # The relay owns authentication: a page must not switch the socket to another session.
        return Verdict()
    if kind == "subscribe" and patterns:
        channels = _subscribed(frame.get("data"))
        if channels is None:
            return _unreadable("a subscribe frame's data must be a list of objects with a list of channel names")
        denied = denied_channels(channels, patterns)
        if denied:
            return _error(POLICY_VIOLATION, f"Channel not allowed: {shown(denied)}")
    try:
        # ensure_ascii=False keeps the size near the page's (Appwrite reads at most 64,000 bytes);
        # NaN and lone surrogates, which PHP's json_decode refuses, are refused here too.
        forward = json.dumps(frame, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        forward.encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return _unreadable("it holds values Appwrite cannot read")
    return Verdict(forward=forward, frame=frame)


def _subscribed(data: Any) -> list[str] | None:
    """The channels of a subscribe frame, or None unless it has exactly the shape Appwrite documents.

    PHP decodes JSON objects and lists alike into arrays and iterates both, so `{"0": {...}}` or
    `"channels": {"a": "x"}` could subscribe on the server while looking like nothing here: any
    shape but lists of strings is refused rather than guessed at.
    """
    if not isinstance(data, list):
        return None
    channels: list[str] = []
    for item in data:
        if not isinstance(item, dict):
            return None
        listed = item.get(CHANNELS)
        if not isinstance(listed, list) or not all(isinstance(channel, str) for channel in listed):
            return None
        channels += listed
    return channels


def _unreadable(why: str) -> Verdict:
    return _error(FORMAT_INVALID, f"The relay could not read this frame: {why}.")


def _error(code: int, message: str) -> Verdict:
    return Verdict(reply=json.dumps({"type": "error", "data": {"code": code, "message": message}}))
