"""GET /v1/realtime: relays the browser's Realtime socket to Appwrite, authenticated server-side.

The browser's handshake carries the httpOnly cookie; the relay checks it, opens the upstream socket
with X-Appwrite-Session (which a browser cannot set), and passes frames both ways. No credential
ever reaches JavaScript, and the relay closes the socket once the session ends, which Appwrite
itself never does. What the page may ask for is decided in relay_policy (channels, frames); how
many sockets a caller may hold, in relay_slots; how a page that subscribes by frame is served by a
server that reads channels only from the URL (1.5-1.8, 1.9.0), in relay_translate.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from appwrite_token_exchange.access.client_ip import limit_key_for_ip
from appwrite_token_exchange.access.origin import check_origin
from appwrite_token_exchange.access.sequence import admit, ask_appwrite, identify
from appwrite_token_exchange.keys import (
    APPWRITE,
    CLIENT_IP,
    HANDSHAKE_SPAN,
    LIFECYCLE,
    RELAY_HTTP,
    RELAY_SLOTS,
    RELAY_URL_CHANNELS,
    REQUEST_ID,
    SETTINGS,
    TRACING,
)
from appwrite_token_exchange.observability.tracing import set_response
from appwrite_token_exchange.paths import RELAY_PATH
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.relay.policy import Handshake, denied_channels, read_handshake, shown
from appwrite_token_exchange.relay.pump import Relay
from appwrite_token_exchange.relay.translate import BOOTSTRAP_CHANNELS, TranslatingRelay
from appwrite_token_exchange.relay.upstream import connect_upstream
from appwrite_token_exchange.settings import Settings

# What a page may send: Appwrite's own cap on client frames (Swoole's package_max_length). What
# Appwrite pushes is capped by RELAY_MAX_EVENT_BYTES instead: an event can be a whole document.
MAX_FRAME_BYTES = 64_000

class _HandshakeSpan:
    """The route's span, ended once: when the page's socket is open, else as the handshake ends.
    Not an ExitStack: this lives as long as the socket, and an ExitStack keeps a deque (760 bytes)."""

    __slots__ = ("_manager", "span")

    def __init__(self, manager: contextlib.AbstractContextManager[Any]) -> None:
        self._manager: contextlib.AbstractContextManager[Any] | None = manager
        self.span = manager.__enter__()

    def end(self, error: BaseException | None = None) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.__exit__(type(error) if error else None, error, error.__traceback__ if error else None)


async def relay(request: web.Request) -> web.StreamResponse:
    # The route's span covers the handshake only: it ends once the page's socket is open (a socket
    # lives for hours; what it does then is in the relay metrics and the audit log). One function,
    # not a handshake function calling a relay one: its frame lives as long as the socket.
    spanned = _HandshakeSpan(request.app[TRACING].server_span(request, RELAY_PATH))
    try:
        app = request.app
        settings = app[SETTINGS]
        # No permessage-deflate: Realtime frames are small JSON, and aiohttp shields large compressed
        # sends from cancellation, which would let a client that stops reading pin the relay forever.
        client = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, autoping=True, compress=False)
        if not client.can_prepare(request).ok:
            raise ProblemError("bad_request", "This route takes a WebSocket upgrade.")
        if app[LIFECYCLE].draining:
            raise ProblemError("service_draining", "This replica is shutting down; reconnect.", {"Retry-After": "1"})
        caller = await identify(request, check_origin, lambda: _allowed_handshake(request, settings))
        handshake = caller.screened
        session = caller.session.value
        fields: dict[str, object] = {
            "client_ip": request[CLIENT_IP],
            "origin": request.headers.get("Origin"),
            "session_hash": caller.session_hash,
        }
        ip_key = limit_key_for_ip(request[CLIENT_IP], settings.ipv6_prefix_length)
        # Checked and counted with no await in between, and given back however the handshake or the
        # socket ends (refused, failed, cancelled, closed): handshakes in flight cannot overshoot a cap.
        with app[RELAY_SLOTS].reserve(ip_key, caller.fingerprint) as slot:
            admission = await admit(request, caller)
            user_id = await ask_appwrite(
                request, admission, lambda: app[APPWRITE].get_account_id(session), user_of=lambda user_id: user_id
            )
            slot.claim_user(user_id)
            fields["user_id"] = user_id

            # A page that names no channels in its URL (web SDK >= 25) subscribes by frame; servers
            # that take channels only in the URL (1.8.x, 1.9.0) need the relay to translate.
            translate = not handshake.channels and await app[RELAY_URL_CHANNELS].needed(app[RELAY_HTTP])
            if translate:
                handshake = Handshake(BOOTSTRAP_CHANNELS, ())
            upstream = await connect_upstream(request, session, handshake)
            client.headers["X-Request-ID"] = request[REQUEST_ID]
            try:
                await client.prepare(request)
            except BaseException:
                await upstream.close()
                raise
            set_response(spanned.span, 101)
            request[HANDSHAKE_SPAN] = spanned.span  # the socket's later session re-checks link to it
            spanned.end()
            # This frame lives as long as the socket, thousands of times over: what only the
            # handshake needed goes now.
            fingerprint = caller.fingerprint
            del caller, admission, handshake
            pump = TranslatingRelay if translate else Relay
            await pump(request, client, upstream, session, fields, fingerprint).run()
        return client
    except BaseException as error:
        spanned.end(error)
        raise
    finally:
        spanned.end()


def _allowed_handshake(request: web.Request, settings: Settings) -> Handshake:
    """Every spelling of `channels` Appwrite would read is checked; only the checked ones go upstream."""
    handshake = read_handshake(request.rel_url.raw_query_string)
    if len(handshake.channels) > settings.relay_max_channels:
        raise ProblemError("channel_not_allowed",
                           f"At most {settings.relay_max_channels} channels per socket (RELAY_MAX_CHANNELS).")
    denied = denied_channels(handshake.channels, settings.relay_channels_allow)
    if denied:
        raise ProblemError("channel_not_allowed", f"Channels not allowed here: {shown(denied)}.")
    return handshake
