"""What one client can put in the log: every field of a line bounded and escaped, and the lines a
client causes without being charged to any limit sampled per client IP.

A field's value may be the caller's text (an Origin, a path, a forwarded scheme): it is cut to
MAX_FIELD_CHARS characters (the cut says how many it dropped) and its control characters are
escaped, so a value can neither forge a second line nor send a terminal escape to whoever reads
the log in a console. JSON would escape the C0 controls anyway; DEL, the C1 controls (0x9b starts an
escape sequence in many terminals), the line and paragraph separators and the bidirectional
overrides it keeps as they are, and the console renderer keeps everything.

Refusals made before the IP limit is charged (a CSRF header missing, an Origin not allowed), the
refusals of that limit itself, the HTTP server's own refusals and the access lines of requests no
limit counts (a probe, a path that does not exist) cost the caller nothing, so the caller could
write as many lines as it can send requests: 300 requests with a 32 KiB Origin made 9.7 MB of log
in 1.2 s, enough for the kubelet (10 MiB per container) to rotate the real audit lines away. Those
lines are limited to LINES_PER_WINDOW per client IP per WINDOW_SECONDS, and to ALL_LINES_PER_WINDOW
for all clients together (a crowd of addresses); past either they are counted, and one
`log.suppressed` line per client (`*` for the crowd's) and window says how many were dropped.
With lines of at most MAX_REFUSAL_LINE_BYTES, one client writes at most REFUSAL_BYTES_PER_WINDOW of
these lines a minute, and all clients together at most ALL_REFUSAL_BYTES_PER_WINDOW (the README's
security section gives the figures).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog

MAX_FIELD_CHARS = 256
# Cc (C0, DEL, C1), the line and paragraph separators, and the bidirectional controls.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

WINDOW_SECONDS = 60.0
LINES_PER_WINDOW = 30
# Clients tracked at once; past it the longest-tracked is forgotten (its count logged first).
MAX_CLIENTS = 10_000
# A refusal line's fields are our own short values but for one header value, the Origin; the
# line stays under this many bytes (tests/test_audit_bounds.py measures the longest one).
MAX_REFUSAL_LINE_BYTES = 1_536
REFUSAL_BYTES_PER_WINDOW = (LINES_PER_WINDOW + 1) * MAX_REFUSAL_LINE_BYTES  # 47,616 bytes: < 47 KiB
ALL_LINES_PER_WINDOW = 600
# Only clients with a line let through can have a `log.suppressed` line of their own, plus the crowd's.
ALL_REFUSAL_BYTES_PER_WINDOW = (2 * ALL_LINES_PER_WINDOW + 1) * MAX_REFUSAL_LINE_BYTES  # 1,844,736 bytes: < 1.8 MiB

# token.denied outcomes the IP limit does not charge: refused before it is asked, or by it.
_UNCHARGED_OUTCOMES = frozenset({"csrf_header_missing", "origin_not_allowed", "rate_limited"})
_UNCHARGED_EVENTS = frozenset({"http.refused", "request.body_unreadable", "http.request"})
SUPPRESSED_EVENT = "log.suppressed"
_UNKNOWN_CLIENT = "unknown"  # a line without a client IP
_CROWD = "*"  # what the lines dropped past ALL_LINES_PER_WINDOW are reported under

_log = structlog.get_logger(logger_name="audit")


def bounded(value: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`value` with its control characters escaped, cut to `limit` characters plus a marker."""
    escaped = _UNSAFE.sub(_escape, value) if _UNSAFE.search(value) else value
    if len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}…[+{len(escaped) - limit}]"


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) <= 0xFF else f"\\u{ord(char):04x}")


def bound_fields(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Every string field (and every string in a list or tuple field) bounded. Runs before the
    traceback is formatted, so `exception` (our own code's) keeps its lines."""
    for name, value in event.items():
        if isinstance(value, str):
            event[name] = bounded(value)
        elif isinstance(value, (list, tuple)):
            event[name] = [bounded(item) if isinstance(item, str) else item for item in value]
    return event


def uncharged(event: MutableMapping[str, Any]) -> bool:
    """A line a caller causes without being charged to any limit."""
    name = event.get("event")
    if name == "token.denied":
        return event.get("outcome") in _UNCHARGED_OUTCOMES
    return name in _UNCHARGED_EVENTS


@dataclass
class _Window:
    started: float
    lines: int = 0
    suppressed: int = 0


class RefusalSampler:
    """A structlog processor: past LINES_PER_WINDOW uncharged lines from one client IP in a window,
    the rest are dropped and counted. The windows held are bounded by `max_clients`."""

    def __init__(
        self,
        lines_per_window: int = LINES_PER_WINDOW,
        window_seconds: float = WINDOW_SECONDS,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
        all_lines_per_window: int = ALL_LINES_PER_WINDOW,
    ) -> None:
        self._all_lines_per_window = all_lines_per_window
        self._all: _Window | None = None  # every client's lines together
        self._lines_per_window = lines_per_window
        self._window_seconds = window_seconds
        self._max_clients = max_clients
        self._clock = clock
        # Oldest window first: a window moves to the end when it starts again.
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()  # lines also come from threads (stdlib records)

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event.get("event") == SUPPRESSED_EVENT:
            return event
        with self._lock:
            now = self._clock()
            ended = self._close_ended(now)
            keep = not uncharged(event) or self._admit(str(event.get("client_ip") or _UNKNOWN_CLIENT), now, ended)
        for client, count in ended:
            self._report(client, count)
        if not keep:
            raise structlog.DropEvent
        return event

    def tracked(self) -> int:
        return len(self._windows)

    def _close_ended(self, now: float) -> list[tuple[str, int]]:
        """Windows over (oldest first) forgotten, with the counts still to report."""
        ended = []
        if self._all is not None and now - self._all.started >= self._window_seconds:
            if self._all.suppressed:
                ended.append((_CROWD, self._all.suppressed))
            self._all = None
        while self._windows:
            client, window = next(iter(self._windows.items()))
            if now - window.started < self._window_seconds:
                break
            del self._windows[client]
            if window.suppressed:
                ended.append((client, window.suppressed))
        return ended

    def _admit(self, client: str, now: float, ended: list[tuple[str, int]]) -> bool:
        window = self._windows.get(client)
        if window is not None and window.lines >= self._lines_per_window:
            window.suppressed += 1
            return False
        crowd = self._all = self._all or _Window(now)
        if crowd.lines >= self._all_lines_per_window:
            crowd.suppressed += 1
            return False
        crowd.lines += 1
        if window is None:
            if len(self._windows) >= self._max_clients:
                # The oldest is forgotten early (bounded memory first); its count is reported now.
                evicted, oldest = self._windows.popitem(last=False)
                if oldest.suppressed:
                    ended.append((evicted, oldest.suppressed))
            window = self._windows[client] = _Window(now)
        window.lines += 1
        return True

    def _report(self, client: str, count: int) -> None:
        _log.warning(
            SUPPRESSED_EVENT, client_ip=client, suppressed=count, window_seconds=self._window_seconds,
            lines_per_window=self._lines_per_window,
        )
