"""GET /v1/realtime: relays the browser's Realtime socket to Appwrite, authenticated server-side.

The browser's handshake carries the httpOnly cookie; the relay checks it, opens the upstream socket
with X-Appwrite-Session (which a browser cannot set), and passes frames both ways. No credential
ever reaches JavaScript, and the relay closes the socket once the session ends, which Appwrite
itself never does. What the page may ask for is decided in relay_policy (channels, frames); how
many sockets a caller may hold, in relay_slots; how a page that subscribes by frame is served by a
server that reads channels only from the URL (1.5-1.8, 1.9.0), in relay_translate.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from yarl import URL

from service import audit
from service.appwrite_client import UpstreamError
from service.keys import (
    APPWRITE,
    CLIENT_IP,
    EXCHANGE_LIMITS,
    FINGERPRINTER,
    HANDSHAKE_SPAN,
    LIFECYCLE,
    METRICS,
    RELAY_HTTP,
    RELAY_SLOTS,
    RELAY_URL_CHANNELS,
    RELAYS,
    REQUEST_ID,
    SETTINGS,
    TRACING,
    UPSTREAM_GUARD,
)
from service.problems import ProblemError
from service.relay_policy import Handshake, denied_channels, read_handshake, screen_frame, shown, upstream_url
from service.security import check_origin, limit_key_for_ip
from service.session_cookie import session_from_cookie
from service.tracing import set_response

RELAY_PATH = "/v1/realtime"
# What a page may send: Appwrite's own cap on client frames (Swoole's package_max_length). What
# Appwrite pushes is capped by RELAY_MAX_EVENT_BYTES instead: an event can be a whole document.
MAX_FRAME_BYTES = 64_000
# A client that cannot take a frame within this long is not reading: close it rather than buffer.
SEND_TIMEOUT_SECONDS = 10.0
# On SIGTERM, sockets close at random within this spread so clients do not reconnect all at once.
SHUTDOWN_SPREAD_SECONDS = 5.0
_DIRECTIONS = ("to_appwrite", "to_client")


@dataclass
class RelayStats:
    opened_at: float = field(default_factory=time.monotonic)
    frames: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_DIRECTIONS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_DIRECTIONS, 0))
    close_reason: str | None = None
    close_code: int = WSCloseCode.OK


def too_large(message: aiohttp.WSMessage) -> bool:
    """aiohttp's answer to an upstream message over max_msg_size (it closes the socket with 1009)."""
    return (
        message.type is WSMsgType.ERROR
        and isinstance(message.data, aiohttp.WebSocketError)
        and message.data.code == WSCloseCode.MESSAGE_TOO_BIG
    )


class _SlowClient(Exception):
    """The browser stopped reading; its socket is closed instead of buffering without bound."""


async def relay(request: web.Request) -> web.StreamResponse:
    # The route's span covers the handshake only: it ends once the page's socket is open (a socket
    # lives for hours; what it does then is in the relay metrics and the audit log).
    with contextlib.ExitStack() as spanned:
        span = spanned.enter_context(request.app[TRACING].server_span(request, RELAY_PATH))
        return await _relay(request, spanned, span)


async def _relay(request: web.Request, spanned: contextlib.ExitStack[Any], span: Any) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    probe = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, autoping=True)
    if not probe.can_prepare(request).ok:
        raise ProblemError("bad_request", "This route takes a WebSocket upgrade.")
    if app[LIFECYCLE].draining:
        raise ProblemError("service_draining", "This replica is shutting down; reconnect.", {"Retry-After": "1"})
    check_origin(request, settings)
    limits = app[EXCHANGE_LIMITS]
    async with limits.charging_ip(request[CLIENT_IP]):
        cookie = session_from_cookie(request, settings.session_cookie_name)
        # Every spelling of `channels` Appwrite would read is checked; only the checked ones go upstream.
        handshake = read_handshake(request.rel_url.raw_query_string)
        denied = denied_channels(handshake.channels, settings.relay_channels_allow)
        if denied:
            raise ProblemError("channel_not_allowed", f"Channels not allowed here: {shown(denied)}.")
    session = cookie.value
    fingerprinter = app[FINGERPRINTER]
    session_fingerprint = fingerprinter.of_session(cookie.secret)
    fields: dict[str, object] = {
        "client_ip": request[CLIENT_IP],
        "origin": request.headers.get("Origin"),
        "session_hash": fingerprinter.short(session_fingerprint),
    }
    ip_key = limit_key_for_ip(request[CLIENT_IP], settings.ipv6_prefix_length)
    # Checked and counted with no await in between, and given back however the handshake or the
    # socket ends (refused, failed, cancelled, closed): handshakes in flight cannot overshoot a cap.
    with app[RELAY_SLOTS].reserve(ip_key, session_fingerprint) as slot:
        admission = await limits.admit(request[CLIENT_IP], session_fingerprint, cookie.user_id)
        try:
            async with app[UPSTREAM_GUARD].call():
                user_id = await app[APPWRITE].get_account_id(session)
        except UpstreamError as error:
            if error.code == "session_invalid":
                await limits.rejected(admission)
            raise
        await limits.issued(admission, user_id)
        slot.claim_user(user_id)
        fields["user_id"] = user_id

        # A page that names no channels in its URL (web SDK >= 25) subscribes by frame; servers
        # that take channels only in the URL (1.8.x, 1.9.0) need the relay to translate.
        translate = not handshake.channels and await app[RELAY_URL_CHANNELS].needed(app[RELAY_HTTP])
        if translate:
            # That module builds on this one's Relay, so it is imported here, not at the top.
            from service.relay_translate import BOOTSTRAP_CHANNELS, TranslatingRelay

            handshake = Handshake(BOOTSTRAP_CHANNELS, ())
        upstream = await connect_upstream(request, session, handshake)
        # No permessage-deflate: Realtime frames are small JSON, and aiohttp shields large compressed
        # sends from cancellation, which would let a client that stops reading pin the relay forever.
        client = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, autoping=True, compress=False)
        client.headers["X-Request-ID"] = request[REQUEST_ID]
        try:
            await client.prepare(request)
        except BaseException:
            await upstream.close()
            raise
        set_response(span, 101)
        request[HANDSHAKE_SPAN] = span  # the socket's later session re-checks link to it
        spanned.close()
        if translate:
            await TranslatingRelay(request, client, upstream, session, fields).run()
        else:
            await Relay(request, client, upstream, session, fields).run()
    return client


async def connect_upstream(
    request: web.Request, session: str, handshake: Handshake
) -> aiohttp.ClientWebSocketResponse:
    settings = request.app[SETTINGS]
    headers = {
        "X-Appwrite-Session": session,
        "X-Appwrite-Project": settings.project_id,
        # Appwrite takes the client IP from here for its own limits; no Origin is sent,
        # so Appwrite skips its platform check and the relay's allowlist stands instead.
        "X-Forwarded-For": request[CLIENT_IP],
        "X-Request-ID": request[REQUEST_ID],
    }
    url = URL(upstream_url(settings.appwrite_endpoint, settings.project_id, handshake), encoded=True)
    tracing = request.app[TRACING]
    # The URL's query (project, channels) stays out of the span; its path and host say enough.
    attributes: dict[str, str | int] = {
        "http.request.method": "GET", "url.template": "/realtime", "server.address": url.host or "",
        "server.port": url.port or 0, "peer.service": "appwrite",
    }
    with tracing.client_span("GET /realtime (WebSocket)", attributes):
        tracing.inject(headers)
        return await _ws_connect(request, url, headers)


async def _ws_connect(
    request: web.Request, url: URL, headers: dict[str, str]
) -> aiohttp.ClientWebSocketResponse:
    settings = request.app[SETTINGS]
    try:
        async with asyncio.timeout(settings.upstream_timeout_seconds):
            return await request.app[RELAY_HTTP].ws_connect(
                # Already percent-encoded, one spelling per key: yarl must not requote it.
                url,
                headers=headers,
                max_msg_size=settings.relay_max_event_bytes,
                autoping=True,
                compress=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            )
    except TimeoutError:
        raise ProblemError("upstream_timeout", "Appwrite Realtime did not answer in time.") from None
    except aiohttp.WSServerHandshakeError as error:
        raise ProblemError("upstream_bad_response", f"Appwrite Realtime refused the socket ({error.status}).") from None
    except (aiohttp.ClientError, OSError):
        raise ProblemError(
            "upstream_unavailable", "Appwrite Realtime could not be reached.", {"Retry-After": "5"}
        ) from None


class Relay:
    """One relayed socket: two pumps, a session re-check, and the shutdown signal."""

    def __init__(
        self,
        request: web.Request,
        client: web.WebSocketResponse,
        upstream: aiohttp.ClientWebSocketResponse,
        session: str,
        fields: dict[str, object],
    ) -> None:
        self._app = request.app
        self._client = client
        self._upstream = upstream
        self._session = session
        self._fields = fields
        self._stats = RelayStats()
        self._patterns = request.app[SETTINGS].relay_channels_allow
        self._metrics = request.app[METRICS]
        self._handshake_span = request.get(HANDSHAKE_SPAN)

    async def run(self) -> None:
        self._app[RELAYS].add(self)
        self._metrics.relay_open.inc()
        audit.relay_opened(**self._fields)
        tasks = [
            asyncio.create_task(self._to_appwrite()),
            asyncio.create_task(self._to_client()),
            asyncio.create_task(self._revalidate()),
            asyncio.create_task(self._close_on_shutdown()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._end("error", WSCloseCode.INTERNAL_ERROR)
            reason = self._stats.close_reason or "error"
            # Account first: closing a client that stopped reading can get this task cancelled.
            self._account(reason)
            await self._close(self._stats.close_code, reason)

    def _account(self, reason: str) -> None:
        self._app[RELAYS].discard(self)
        metrics = self._metrics
        metrics.relay_open.dec()
        metrics.relay_closes.labels(reason).inc()
        for direction in _DIRECTIONS:
            metrics.relay_frames.labels(direction).inc(self._stats.frames[direction])
            metrics.relay_bytes.labels(direction).inc(self._stats.bytes[direction])
        audit.relay_closed(
            duration_s=round(time.monotonic() - self._stats.opened_at, 3),
            frames=self._stats.frames,
            bytes=self._stats.bytes,
            close_code=int(self._stats.close_code),
            close_reason=reason,
            **self._fields,
        )

    def _end(self, reason: str, code: int) -> None:
        """Record why the socket ends; the first reason wins."""
        if self._stats.close_reason is None:
            self._stats.close_reason, self._stats.close_code = reason, code

    async def _close(self, code: int, reason: str) -> None:
        """Upstream first: it must not stay open however the client side ends."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._upstream.close(), 2.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.close(code=code, message=reason.encode()), 2.0)

    async def _to_appwrite(self) -> None:
        async for message in self._client:
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            # Binary frames are screened exactly like text ones (Appwrite decodes both as JSON), and
            # what goes upstream is always the text the relay re-encoded from what it read.
            verdict = screen_frame(message.data, self._patterns)
            if verdict.reply is not None:
                await self._send_client_str(verdict.reply)
            elif verdict.forward is not None:
                await self._upstream.send_str(verdict.forward)
                self._count("to_appwrite", len(verdict.forward))
        self._end("client_closed", WSCloseCode.OK)

    async def _to_client(self) -> None:
        async for message in self._upstream:
            if message.type is WSMsgType.TEXT:
                await self._send_client_str(message.data)
            elif message.type is WSMsgType.BINARY:
                await self._send_client_bytes(message.data)
            elif too_large(message):
                break
        self._upstream_ended(self._upstream)

    def _upstream_ended(self, upstream: aiohttp.ClientWebSocketResponse) -> None:
        """Why the socket ends when the upstream one did."""
        code = upstream.close_code
        if code == WSCloseCode.MESSAGE_TOO_BIG:
            # An event over RELAY_MAX_EVENT_BYTES: it is lost, and the page is told so with 1009
            # (not 1008), so the SDK reconnects and resubscribes.
            self._end("event_too_large", WSCloseCode.MESSAGE_TOO_BIG)
            return
        # Pass Appwrite's own close on (1008 stops the SDK); anything abnormal asks for a reconnect.
        sendable = code is not None and (code in (1000, 1001, 1008, 1011, 1012, 1013) or 3000 <= code < 5000)
        self._end("upstream_closed", code if sendable and code is not None else WSCloseCode.INTERNAL_ERROR)

    async def _send_client_str(self, data: str) -> None:
        await self._bounded_send(self._client.send_str(data), len(data))

    async def _send_client_bytes(self, data: bytes) -> None:
        await self._bounded_send(self._client.send_bytes(data), len(data))

    async def _bounded_send(self, sending: Awaitable[None], size: int) -> None:
        try:
            await asyncio.wait_for(sending, SEND_TIMEOUT_SECONDS)
        except TimeoutError:
            self._end("slow_client", WSCloseCode.TRY_AGAIN_LATER)
            raise _SlowClient from None
        self._count("to_client", size)

    def _count(self, direction: str, size: int) -> None:
        self._stats.frames[direction] += 1
        self._stats.bytes[direction] += size

    async def _revalidate(self) -> None:
        interval = self._app[SETTINGS].relay_revalidate_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                with self._app[TRACING].follow_up_span("relay revalidate", self._handshake_span):
                    await self._app[APPWRITE].get_account_id(self._session)
            except UpstreamError as error:
                if error.code in ("session_invalid", "user_blocked", "mfa_required"):
                    self._end("session_ended", WSCloseCode.POLICY_VIOLATION)
                    return
                # Appwrite failing is no reason to cut a working socket; check again next time.

    async def _close_on_shutdown(self) -> None:
        await self._app[LIFECYCLE].drain_started.wait()
        spread = min(SHUTDOWN_SPREAD_SECONDS, self._app[SETTINGS].drain_timeout_seconds / 2)
        await asyncio.sleep(random.uniform(0, spread))  # noqa: S311 - jitter, not crypto
        self._end("shutdown", WSCloseCode.GOING_AWAY)
