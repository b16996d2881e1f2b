"""No versions in `Server` (issue 26, item 8): aiohttp's default, `Python/3.11 aiohttp/3.14.5`, named
the interpreter and the framework, down to the patch release, on every answer. Every kind of
answer now says `Server: token-exchange`: the app's (routes, problems, the router's 404 and 405,
a preflight, the relay's 101) through the test client, and what the HTTP server answers itself
(malformed requests, a failure before any handler) over raw sockets to the runner `serve` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.support.service import COOKIE, PROJECT, ServedFactory, exchange

ORIGIN = "https://app.example.com"
SERVER = "token-exchange"


def assert_no_versions(headers: Any, where: str) -> None:
    assert headers.getall("Server") == [SERVER], where
    for name, value in headers.items():
        assert "aiohttp" not in value.lower() and "python" not in value.lower(), (where, name, value)


async def test_every_kind_of_answer_the_app_gives(service, emulator, session_cookie) -> None:
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    answers = {
        "token 200": await exchange(service, session_cookie, headers={"Origin": ORIGIN}),
        "token 401": await exchange(service),
        "token 403": await exchange(service, session_cookie, headers={"Origin": "https://evil.example"}),
        "token 413": await exchange(service, session_cookie, data=b"x" * 5000),
        "preflight 204": await service.options("/v1/realtime/token", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST"}),
        "livez": await service.get("/livez"),
        "livez HEAD": await service.head("/livez"),
        "readyz": await service.get("/readyz"),
        "metrics": await service.get("/metrics"),
        "router 404": await service.get("/nope"),
        "router 405": await service.get("/v1/realtime/token"),
        "relay 403": await service.get(f"/v1/realtime?project={PROJECT}", headers={
            **upgrade, "Origin": "https://evil.example", "Cookie": f"{COOKIE}={session_cookie}"}),
    }
    for where, response in answers.items():
        assert_no_versions(response.headers, where)
    assert [answers[where].status for where in ("token 200", "router 404", "router 405")] == [200, 404, 405]
    socket = await service.ws_connect(
        f"/v1/realtime?project={PROJECT}&channels[]=account", headers={"Origin": ORIGIN, "Cookie": f"{COOKIE}={session_cookie}"}
    )
    try:
        assert socket._response.status == 101
        assert_no_versions(socket._response.headers, "relay 101")
    finally:
        await socket.close()


# -- answers the HTTP server gives itself, on the runner `token-exchange serve` uses ---------------


Start = ServedFactory


async def head_of_answer(port: int, request: bytes) -> tuple[int, dict[str, list[str]]]:
    """The status and header lines of the first answer to `request` (the server closes after it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status_line, *lines = raw.decode("latin-1").strip().split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(status_line.split()[1]), headers


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
    (b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    (b"GET /livez HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400),
    (b"GET /livez HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400),
    (b"GET /livez?" + b"q" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
], ids=["ok", "not found", "bad request line", "header without a colon", "line too long", "not HTTP"])
async def test_answers_of_the_http_server_itself(bounded: Start, request_bytes: bytes, status: int) -> None:
    port = await bounded()
    answered, headers = await head_of_answer(port, request_bytes)
    assert answered == status
    assert headers.get("server") == [SERVER], headers
    assert not any("aiohttp" in value.lower() for values in headers.values() for value in values), headers


async def test_a_failure_before_any_handler(bounded: Start) -> None:
    """A middleware outside all of the service's fails: aiohttp's own 500 path (handle_error) answers."""

    @web.middleware
    async def broken(request: web.Request, handler: Handler) -> web.StreamResponse:
        raise RuntimeError("a bug outside the request context")

    port = await bounded(broken)
    answered, headers = await head_of_answer(port, b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answered == 500
    assert headers.get("server") == [SERVER], headers
    assert headers.get("content-type") == ["application/problem+json"], headers
