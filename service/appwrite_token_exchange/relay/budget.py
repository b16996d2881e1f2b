"""Event bytes in flight, for the whole process: RELAY_MAX_BYTES_IN_FLIGHT.

Each upstream socket may hold one event up to RELAY_MAX_EVENT_BYTES while it is read and passed
on, so N sockets and one large event would hold N times it. The budget counts, for every
upstream socket, the bytes read from Appwrite and not yet passed to the page, as they arrive
(before aiohttp has the whole message), beyond a small allowance each socket's ordinary frames
never reach. A socket whose next bytes would go past the budget is cut at once, which frees what
it held; the page's socket is then closed with 1013 (`relay_busy`): its SDK reconnects and
resubscribes, and that event is lost for it, as with one over RELAY_MAX_EVENT_BYTES.

The bytes are counted by a protocol put between the upstream socket's transport and aiohttp's own
(asyncio's public `set_protocol`), so nothing of aiohttp's reader is patched.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, cast

from appwrite_token_exchange.relay.upstream import Upstream

# A socket's bytes in flight below this are its own (counted in its per-socket cost), not the budget's.
ALLOWANCE = 64 * 1024


def wire_size(data: str | bytes) -> int:
    """The bytes a server-to-client frame carrying `data` takes on the wire (no mask)."""
    if isinstance(data, str):
        size = len(data) if data.isascii() else len(data.encode())
    else:
        size = len(data)
    return size + 2 + (0 if size < 126 else 2 if size < 65_536 else 8)


class ByteBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.refused = 0  # sockets cut for want of budget, for the metrics
        self._meters: weakref.WeakKeyDictionary[Upstream, _Meter] = weakref.WeakKeyDictionary()

    def meter(self, upstream: Upstream) -> None:
        """Count what this upstream socket reads from now on."""
        transport = _transport_of(upstream)
        if transport is None or transport.is_closing():
            return
        meter = _Meter(self, transport.get_protocol(), transport)
        transport.set_protocol(meter)
        self._meters[upstream] = meter

    def passed_on(self, upstream: Upstream, data: str | bytes) -> None:
        """A message read from `upstream` has been dealt with: its bytes are no longer in flight."""
        meter = self._meters.get(upstream)
        if meter is not None:
            meter.release(wire_size(data))

    def cut(self, upstream: Upstream) -> bool:
        """Whether `upstream` was cut for want of budget."""
        meter = self._meters.get(upstream)
        return meter is not None and meter.cut


class _Meter(asyncio.Protocol):
    """aiohttp's protocol for one upstream socket, with the bytes it is given counted first."""

    def __init__(self, budget: ByteBudget, inner: Any, transport: asyncio.Transport) -> None:
        self._budget = budget
        self._inner = inner
        self._transport = transport
        self.held = 0
        self.cut = False

    def _excess(self, held: int) -> int:
        return max(0, held - ALLOWANCE)

    def data_received(self, data: bytes) -> None:
        if self.cut:
            return
        held = self.held + len(data)
        grows = self._excess(held) - self._excess(self.held)
        if grows and self._budget.used + grows > self._budget.limit:
            self.cut = True
            self._budget.refused += 1
            self.release(self.held)
            self._transport.abort()  # frees the partial message aiohttp holds; the relay reads the end
            return
        self._budget.used += grows
        self.held = held
        self._inner.data_received(data)

    def release(self, size: int) -> None:
        held = max(0, self.held - size)
        self._budget.used -= self._excess(self.held) - self._excess(held)
        self.held = held

    def connection_lost(self, exc: Exception | None) -> None:
        self.release(self.held)
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def _transport_of(upstream: Upstream) -> asyncio.Transport | None:
    # aiohttp keeps the connection of a ClientWebSocketResponse private; the transport is public.
    # uvloop's transports are not asyncio.Transport subclasses, so what is asked is what is used.
    connection = getattr(upstream, "_conn", None)
    transport: Any = getattr(connection, "transport", None)
    if all(hasattr(transport, name) for name in ("get_protocol", "set_protocol", "abort", "is_closing")):
        return cast("asyncio.Transport", transport)
    return None
