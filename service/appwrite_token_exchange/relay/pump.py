"""One relayed socket: frames pumped both ways between the page and Appwrite, the session re-checked
while it lives, and the socket closed on shutdown. What may pass is decided in relay_policy."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WSMessageTextBytes

from appwrite_token_exchange.appwrite.client import UpstreamError
from appwrite_token_exchange.keys import (
    APPWRITE,
    EVENT_RULES,
    HANDSHAKE_SPAN,
    LIFECYCLE,
    METRICS,
    RELAY_BUDGET,
    RELAYS,
    SETTINGS,
    TRACING,
)
from appwrite_token_exchange.observability import audit
from appwrite_token_exchange.relay.policy import screen_frame
from appwrite_token_exchange.relay.subscriptions import Subscriptions, subscription_id_of
from appwrite_token_exchange.relay.upstream import Upstream, too_large

# A client that cannot take a frame within this long is not reading: close it rather than buffer.
SEND_TIMEOUT_SECONDS = 10.0
# On SIGTERM, sockets close at random within this spread so clients do not reconnect all at once.
SHUTDOWN_SPREAD_SECONDS = 5.0
_DIRECTIONS = ("to_appwrite", "to_client")
_TO_APPWRITE, _TO_CLIENT = 0, 1


class _SlowClient(Exception):
    """The browser stopped reading; its socket is closed instead of buffering without bound."""


class SocketEnded(Exception):
    """The socket ends for the reason already recorded (`_end`), from inside a pump."""


class Relay:
    """One relayed socket: two pumps, a session re-check, and the shutdown signal."""

    # Slots: thousands of these live for hours, and a __dict__ each adds up.
    __slots__ = (
        "__weakref__",
        "_app",
        "_budget",
        "_bytes",
        "_client",
        "_close_code",
        "_close_reason",
        "_fields",
        "_fingerprint",
        "_frames",
        "_handshake_span",
        "_metrics",
        "_opened_at",
        "_patterns",
        "_pump",
        "_reader",
        "_recheck",
        "_recheck_timer",
        "_session",
        "_stopped",
        "_subscriptions",
        "_upstream",
    )

    def __init__(
        self,
        request: web.Request,
        client: web.WebSocketResponse,
        upstream: Upstream,
        session: str,
        fields: dict[str, object],
        fingerprint: str = "",
    ) -> None:
        self._app = request.app
        self._fingerprint = fingerprint  # the session's keyed hash: what a revocation names it by
        self._client = client
        self._upstream = upstream
        self._session = session
        self._fields = fields
        self._opened_at = time.monotonic()
        # Per direction, in _DIRECTIONS' order (short lists: a socket holds them for hours, thousands
        # of times over).
        self._frames = [0, 0]
        self._bytes = [0, 0]
        self._close_reason: str | None = None
        self._close_code: int = WSCloseCode.OK
        self._patterns = request.app[SETTINGS].relay_channels_allow
        self._metrics = request.app[METRICS]
        self._budget = request.app[RELAY_BUDGET]
        self._handshake_span = request.get(HANDSHAKE_SPAN)
        self._subscriptions: Subscriptions | None = None  # made at the page's first subscribe frame
        self._reader: asyncio.Task[None] | None = None
        self._recheck: asyncio.Future[None] | None = None
        self._recheck_timer: asyncio.TimerHandle | None = None
        self._pump: asyncio.Task[object] | None = None  # the handler's task, while it reads the page
        self._stopped = False

    async def run(self) -> None:
        """The page's frames are pumped in the handler's own task and Appwrite's in one more; the
        session re-check is a timer and the shutdown is the app's: two tasks per socket, as a
        bare pass-through needs (each task and its frames cost memory thousands of times over)."""
        self._app[RELAYS].add(self)
        self._metrics.relay_open.inc()
        audit.relay_opened(**self._fields)
        loop = asyncio.get_running_loop()
        self._reader = asyncio.create_task(self._to_client())
        self._reader.add_done_callback(self._upstream_done)
        self._recheck_timer = loop.call_later(self._app[SETTINGS].relay_revalidate_seconds, self._recheck_due)
        if self._app[LIFECYCLE].draining:
            self.stop_within(SHUTDOWN_SPREAD_SECONDS)
        self._pump = asyncio.current_task()
        try:
            try:
                with contextlib.suppress(_SlowClient, SocketEnded):
                    # The page's frames, in this frame (no coroutine of its own: each costs memory
                    # thousands of times over).
                    async for message in self._client:
                        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                            await self._take(message)
                        # A loop variable holds its value until the next frame comes, which can be
                        # hours away: thousands of sockets each holding their last frame is memory
                        # no cap counts.
                        del message
                    self._end("client_closed", WSCloseCode.OK)
            except asyncio.CancelledError:
                if not self._stopped or self._pump is None or self._pump.uncancel():
                    raise  # cancelled by someone else (a shutdown, the server): finish, and pass it on
            finally:
                self._pump = None
        finally:
            self._recheck_timer.cancel()
            tasks = [task for task in (self._reader, self._recheck) if task is not None]
            for task in tasks:
                task.cancel()
            self._end("error", WSCloseCode.INTERNAL_ERROR)
            reason = self._close_reason or "error"
            # Accounted before any await: the server cancels this task when the page's connection
            # is lost, which the page's own close can cause.
            self._account(reason)
            try:
                await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                await self._close(self._close_code, reason)

    def stop(self, reason: str, code: int) -> None:
        """End the socket from outside its pumps: the handler's read of the page is interrupted
        (a cancellation it takes back), and it closes both sockets with `code` and `reason`."""
        self._end(reason, code)
        if self._pump is not None and not self._stopped:
            self._stopped = True
            self._pump.cancel()

    @property
    def user_id(self) -> object:
        return self._fields.get("user_id")

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def sign_out(self) -> None:
        """Revoked (the app's kick, or Appwrite deleted the session): closed now with 1008, which
        stops the SDK, and a reason the helper reads as signed-out."""
        self.stop("signed_out", WSCloseCode.POLICY_VIOLATION)

    def recheck_now(self) -> None:
        """Appwrite may have ended the session (its webhook said so): ask it now, not at the next
        RELAY_REVALIDATE_SECONDS; a refused session closes the socket with `session_ended`."""
        if self._recheck is not None and not self._recheck.done():
            return  # a re-check is already asking
        if self._recheck_timer is not None:
            self._recheck_timer.cancel()
        self._recheck_due()

    def stop_within(self, seconds: float) -> None:
        """On SIGTERM: closed at random within `seconds`, so pages do not all reconnect at once."""
        spread = min(seconds, self._app[SETTINGS].drain_timeout_seconds / 2)
        delay = random.uniform(0, spread)  # noqa: S311 - jitter, not crypto
        asyncio.get_running_loop().call_later(delay, self.stop, "shutdown", WSCloseCode.GOING_AWAY)

    def _upstream_done(self, reader: asyncio.Task[None]) -> None:
        """Appwrite's side ended (closed, too large, a page too slow): so does the page's."""
        if not reader.cancelled():
            self.stop("error", WSCloseCode.INTERNAL_ERROR)  # the reason the reader recorded wins

    def _account(self, reason: str) -> None:
        self._app[RELAYS].discard(self)
        metrics = self._metrics
        metrics.relay_open.dec()
        metrics.relay_closes.labels(reason).inc()
        frames = dict(zip(_DIRECTIONS, self._frames, strict=True))
        sizes = dict(zip(_DIRECTIONS, self._bytes, strict=True))
        for direction in _DIRECTIONS:
            metrics.relay_frames.labels(direction).inc(frames[direction])
            metrics.relay_bytes.labels(direction).inc(sizes[direction])
        audit.relay_closed(
            duration_s=round(time.monotonic() - self._opened_at, 3),
            frames=frames,
            bytes=sizes,
            close_code=int(self._close_code),
            close_reason=reason,
            **self._fields,
        )

    def _end(self, reason: str, code: int) -> str:
        """Record why the socket ends; the first reason wins. Returns the reason given."""
        if self._close_reason is None:
            self._close_reason, self._close_code = reason, code
        return reason

    async def _close(self, code: int, reason: str) -> None:
        """Both sides at once, each bounded: the page learns why without waiting out Appwrite's
        close handshake (a revocation's whole point), and the upstream socket is closed however the
        page's side ends."""
        await asyncio.gather(_bounded(self._upstream.close()),
                             _bounded(self._client.close(code=code, message=reason.encode())))

    async def _take(self, message: aiohttp.WSMessage) -> None:
        # Binary frames are screened exactly like text ones (Appwrite decodes both as JSON), and
        # what goes upstream is always the text the relay re-encoded from what it read.
        verdict = screen_frame(message.data, self._patterns)
        if verdict.reply is not None:
            await self._reply(verdict.reply)
        elif verdict.forward is not None:
            await self._forward(verdict.forward, verdict.frame or {})

    async def _reply(self, text: str) -> None:
        """The relay's own answer to a page's frame (a refusal, from the policy)."""
        await self._send_client_text(text)

    async def _forward(self, text: str, frame: dict[str, Any]) -> None:
        """A frame the policy let through, as the relay re-encoded it; its subscriptions counted."""
        if frame.get("type") in ("subscribe", "unsubscribe") and isinstance(frame.get("data"), list):
            self._count_subscriptions(frame["type"], frame["data"])
        await self._upstream.send_str(text)
        self._count(_TO_APPWRITE, len(text))

    def _count_subscriptions(self, kind: str, items: list[Any]) -> None:
        """Appwrite keeps what the page subscribes to; the relay holds the page to its caps."""
        items = [item for item in items if isinstance(item, dict)]
        subscriptions = self.subscriptions
        if kind == "unsubscribe":
            for item in items:
                if isinstance(item.get("subscriptionId"), str):
                    subscriptions.remove(item["subscriptionId"])
            return
        wanted = [(str(subscription_id_of(item)), [c for c in item.get("channels") or [] if isinstance(c, str)])
                  for item in items if isinstance(item.get("channels"), list)]
        self._hold_to_caps(subscriptions.add_all(wanted))

    @property
    def subscriptions(self) -> Subscriptions:
        if self._subscriptions is None:
            settings = self._app[SETTINGS]
            self._subscriptions = Subscriptions(settings.relay_max_subscriptions, settings.relay_max_channels)
        return self._subscriptions

    def _hold_to_caps(self, over: str | None) -> None:
        if over is not None:
            raise SocketEnded(self._end(over, WSCloseCode.POLICY_VIOLATION))

    async def _to_client(self) -> None:
        async for message in self._upstream:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await self._pass_on(message)
            elif too_large(message):
                break
            del message  # else the last event stays alive until the next one (see run)
        self._upstream_ended(self._upstream)

    async def _pass_on(self, message: aiohttp.WSMessage | WSMessageTextBytes) -> None:
        data: str | bytes | None = message.data
        rules = self._app[EVENT_RULES].current
        if rules is not None:
            # Only with event rules is Appwrite's text decoded (and an event re-encoded when a rule
            # changes it); without, it passes as Appwrite sent it.
            data = rules.apply_frame(message.data)
        if data is None:
            pass  # an event the rules withhold from the page
        elif message.type is WSMsgType.TEXT:
            await self._send_client_text(data)
        else:
            await self._send_client_bytes(data if isinstance(data, bytes) else data.encode())
        self._budget.passed_on(self._upstream, message.data)

    def _upstream_ended(self, upstream: Upstream) -> None:
        """Why the socket ends when the upstream one did."""
        code = upstream.close_code
        if self._budget.cut(upstream):
            # Its event would have passed RELAY_MAX_BYTES_IN_FLIGHT: lost, and the page asked to retry.
            self._end("relay_busy", WSCloseCode.TRY_AGAIN_LATER)
            return
        if code == WSCloseCode.MESSAGE_TOO_BIG:
            # An event over RELAY_MAX_EVENT_BYTES: it is lost, and the page is told so with 1009
            # (not 1008), so the SDK reconnects and resubscribes.
            self._end("event_too_large", WSCloseCode.MESSAGE_TOO_BIG)
            return
        # Pass Appwrite's own close on (1008 stops the SDK); anything abnormal asks for a reconnect.
        sendable = code is not None and (code in (1000, 1001, 1008, 1011, 1012, 1013) or 3000 <= code < 5000)
        self._end("upstream_closed", code if sendable and code is not None else WSCloseCode.INTERNAL_ERROR)

    async def _send_client_text(self, data: str | bytes) -> None:
        frame = data.encode() if isinstance(data, str) else data
        await self._bounded_send(self._client.send_frame(frame, WSMsgType.TEXT), len(frame))

    async def _send_client_bytes(self, data: bytes) -> None:
        await self._bounded_send(self._client.send_bytes(data), len(data))

    async def _bounded_send(self, sending: Awaitable[None], size: int) -> None:
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for makes a task per frame, which at
            # thousands of sockets is most of a fan-out's cost and its garbage.
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                await sending
        except TimeoutError:
            self._end("slow_client", WSCloseCode.TRY_AGAIN_LATER)
            raise _SlowClient from None
        self._count(_TO_CLIENT, size)

    def _count(self, direction: int, size: int) -> None:
        self._frames[direction] += 1
        self._bytes[direction] += size

    def _recheck_due(self) -> None:
        self._recheck = asyncio.ensure_future(self._recheck_session())

    async def _recheck_session(self) -> None:
        try:
            with self._app[TRACING].follow_up_span("relay revalidate", self._handshake_span):
                await self._app[APPWRITE].get_account_id(self._session)
        except UpstreamError as error:
            if error.code in ("session_invalid", "user_blocked", "mfa_required"):
                self.stop("session_ended", WSCloseCode.POLICY_VIOLATION)
                return
            # Appwrite failing is no reason to cut a working socket; check again next time.
        interval = self._app[SETTINGS].relay_revalidate_seconds
        self._recheck_timer = asyncio.get_running_loop().call_later(interval, self._recheck_due)


async def _bounded(closing: Awaitable[object]) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closing, 2.0)
