"""The relay's upstream socket: opened to Appwrite Realtime with the session the browser cannot send."""

from __future__ import annotations

import asyncio
from typing import Literal

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WSMessageTextBytes
from yarl import URL

from appwrite_token_exchange.keys import CLIENT_IP, RELAY_BUDGET, RELAY_HTTP, REQUEST_ID, SETTINGS, TRACING
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.relay.policy import Handshake, upstream_url

# An upstream socket: its text frames are read as bytes (`decode_text=False`) and passed on as such.
Upstream = aiohttp.ClientWebSocketResponse[Literal[False]]


def too_large(message: aiohttp.WSMessage | WSMessageTextBytes) -> bool:
    """aiohttp's answer to an upstream message over max_msg_size (it closes the socket with 1009)."""
    return (
        message.type is WSMsgType.ERROR
        and isinstance(message.data, aiohttp.WebSocketError)
        and message.data.code == WSCloseCode.MESSAGE_TOO_BIG
    )


async def connect_upstream(
    request: web.Request, session: str, handshake: Handshake
) -> Upstream:
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
        upstream = await _ws_connect(request, url, headers)
    request.app[RELAY_BUDGET].meter(upstream)
    return upstream


async def _ws_connect(
    request: web.Request, url: URL, headers: dict[str, str]
) -> Upstream:
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
                # Events pass as the bytes Appwrite sent: no decoded copy, no re-encoded one.
                decode_text=False,
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
