"""The relay's floor: the least an aiohttp process can do to relay a page's Realtime socket. It
accepts the page's WebSocket, opens the upstream one with the session from the page's cookie and
the same socket options as the service (relay/upstream.py), and pumps frames both ways, nothing
else (no checks, caps, logs, metrics, re-checks of the session).

    APPWRITE_ENDPOINT=... APPWRITE_PROJECT_ID=... PORT=... python -m bench.relay_floor_app
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import WSMsgType, web
from yarl import URL

ENDPOINT = os.environ["APPWRITE_ENDPOINT"]
PROJECT = os.environ["APPWRITE_PROJECT_ID"]
COOKIE = f"a_session_{PROJECT}"
# The service's defaults: what a page may send (Appwrite's own cap) and what Appwrite may push
# (RELAY_MAX_EVENT_BYTES).
MAX_FRAME_BYTES = 64_000
MAX_EVENT_BYTES = 16 * 1024 * 1024
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")


def upstream_url(request: web.Request) -> URL:
    base = ENDPOINT.replace("http", "ws", 1)
    return URL(f"{base}/realtime?{request.rel_url.raw_query_string}", encoded=True)


async def relay(request: web.Request) -> web.StreamResponse:
    # Upstream first, as the service does: a refused upstream is an HTTP error, not an open socket.
    upstream = await request.app[HTTP].ws_connect(
        upstream_url(request),
        headers={"X-Appwrite-Session": request.cookies.get(COOKIE, ""), "X-Appwrite-Project": PROJECT},
        max_msg_size=MAX_EVENT_BYTES,
        autoping=True,
        compress=0,
        timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
    )
    page = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, autoping=True, compress=False)
    try:
        await page.prepare(request)
    except BaseException:
        await upstream.close()
        raise
    # One task more than the handler's own: the handler pumps Appwrite -> page, this one the other way.
    to_upstream = asyncio.create_task(pump(page, upstream))
    try:
        await pump(upstream, page)
    finally:
        to_upstream.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await to_upstream
        await upstream.close()
        await page.close()
    return page


async def pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
               sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
    async for message in source:
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
    await sink.close()  # one side ended: end the other, which ends the other pump


async def livez(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def http_session(app: web.Application) -> AsyncIterator[None]:
    # As the service's relay pool: no cap but the sockets themselves, no cookie jar, no total timeout.
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
    ) as http:
        app[HTTP] = http
        yield


def main() -> None:
    app = web.Application()
    app.router.add_get("/v1/realtime", relay)
    app.router.add_get("/livez", livez)
    app.cleanup_ctx.append(http_session)
    web.run_app(
        app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]), access_log=None, print=None,
        loop=uvloop.new_event_loop(),  # the service runs on uvloop (cli._run): so does its floor
    )


if __name__ == "__main__":
    main()
