"""X-Forwarded-For and X-Forwarded-Proto from every header line, in order (issue 26, item 2).

A request may carry several lines of one header; they mean what one comma-joined line means
(RFC 9110, section 5.3). HAProxy's `option forwardfor` adds a line of its own after any the client
sent, so a service that reads the first line believes the client: with `TRUSTED_PROXIES` set, a
forged first line picked the IP the rate limit charged, the audit log showed and Appwrite got.
Each test sends several lines (aiohttp's client writes every entry of a CIMultiDict as a line of
its own; one test speaks raw HTTP to the runner `serve` uses) and checks what a user sees: the
status, the audit line, what Appwrite received.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from appwrite_token_exchange.access.client_ip import Forwarded, forwarded, header_list
from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.edge.http_server import service_runner
from multidict import CIMultiDict, CIMultiDictProxy

from tests.support.helpers import upstream_requests
from tests.support.service import COOKIE, PROJECT, Emulator, service_settings

ORIGIN = "https://app.example.com"
REAL = "203.0.113.9"  # the caller, as the trusted proxy saw it


def lines(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    """Header lines in this order, several of one name included."""
    return CIMultiDict([("X-CSRF", "1"), *pairs])


def forwarded_for(*values: str) -> CIMultiDict[str]:
    return lines(*(("X-Forwarded-For", value) for value in values))


async def post(service: Any, cookie: str, headers: CIMultiDict[str]) -> Any:
    headers.add("Cookie", f"{COOKIE}={cookie}")
    return await service.post("/v1/realtime/token", headers=headers)


def audited_ips(logs: Any) -> list[str]:
    return [event["client_ip"] for event in logs.events() if event.get("event") in ("token.issued", "token.denied")]


async def test_a_forged_first_line_does_not_pick_the_ip(service_factory, session_cookie, logs) -> None:
    """The attack as reported: 5 of 5 passed `RATE_LIMIT_IP=3/minute`, each under a fresh forged IP."""
    service = await service_factory(TRUSTED_PROXIES="127.0.0.0/8", RATE_LIMIT_IP="3/minute")
    statuses = []
    for attempt in range(5):
        # The client's own line first, the proxy's appended line after it.
        response = await post(service, session_cookie, forwarded_for(f"198.51.100.{attempt + 1}", REAL))
        statuses.append(response.status)
        if response.status == 429:
            assert (await response.json())["scope"] == "ip"
    assert statuses == [200, 200, 200, 429, 429]
    assert audited_ips(logs) == [REAL] * 5


@pytest.mark.parametrize("sent", [
    ("198.51.100.1, 203.0.113.9, 10.0.0.7",),
    ("198.51.100.1", "203.0.113.9, 10.0.0.7"),
    ("198.51.100.1", "203.0.113.9", "10.0.0.7"),
], ids=["one line", "two lines", "three lines"])
async def test_one_two_or_three_lines_are_one_list(service_factory, session_cookie, logs, sent) -> None:
    """Two trusted hops (the peer, then 10.0.0.7) and a forged entry left of the caller."""
    service = await service_factory(TRUSTED_PROXIES="127.0.0.0/8, 10.0.0.0/8")
    assert (await post(service, session_cookie, forwarded_for(*sent))).status == 200
    assert audited_ips(logs) == [REAL]


async def test_an_untrusted_peer_is_not_believed_on_any_line(service_factory, session_cookie, logs) -> None:
    """Without TRUSTED_PROXIES (and with proxies that are not the peer) every line is the caller's own text."""
    for trusted in ("", "10.0.0.0/8"):
        service = await service_factory(TRUSTED_PROXIES=trusted, RATE_LIMIT_IP="3/minute")
        statuses = [
            (await post(service, session_cookie, forwarded_for(f"198.51.100.{attempt}", f"192.0.2.{attempt}"))).status
            for attempt in range(5)
        ]
        assert statuses == [200, 200, 200, 429, 429], trusted
    assert audited_ips(logs) == ["127.0.0.1"] * 10


async def test_appwrite_gets_the_real_ip_from_the_relay(service_factory, emulator, session_cookie) -> None:
    """The relay names the caller to Appwrite in X-Forwarded-For (Appwrite limits connects per IP)."""
    service = await service_factory(TRUSTED_PROXIES="127.0.0.0/8")
    headers = CIMultiDict([("Origin", ORIGIN), ("Cookie", f"{COOKIE}={session_cookie}"),
                           ("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", REAL)])
    socket = await service.ws_connect(f"/v1/realtime?project={PROJECT}&channels[]=account", headers=headers)
    await socket.close()
    [handshake] = await upstream_requests(emulator, "/v1/realtime")
    assert handshake["headers"]["X-Forwarded-For"] == REAL


# -- X-Forwarded-Proto: the scheme the page's own origin is compared under -----------------------


@pytest.mark.parametrize(("sent", "status"), [
    # One proxy that terminates TLS and says so.
    ([(REAL, "https")], 200),
    # The client forged `https` on a line of its own; the proxy, reached over plain http, appended `http`.
    ([("", "https"), (REAL, "http")], 403),
    # Two proxies that each append: the outer one ended TLS, the inner one was reached over http.
    ([(REAL, "https"), ("10.0.0.7", "http")], 200),
    # The same, with a forged `https` left of them: the outer proxy's `http` is what counts.
    ([("", "https"), (REAL, "http"), ("10.0.0.7", "http")], 403),
    # Only the outermost proxy sets X-Forwarded-Proto; the inner one passes it on.
    ([(REAL, "https"), ("10.0.0.7", "")], 200),
], ids=["one proxy", "forged first line", "two appending proxies", "forged before two", "set once, passed on"])
async def test_the_scheme_is_read_where_the_caller_is(service_factory, session_cookie, sent, status) -> None:
    """The page's origin is the service's own host over https; ALLOWED_ORIGINS lists nothing."""
    service = await service_factory(ALLOWED_ORIGINS="", TRUSTED_PROXIES="127.0.0.0/8, 10.0.0.0/8")
    headers = lines(("Origin", f"https://{service.server.host}:{service.server.port}"))
    for address, scheme in sent:
        if address:
            headers.add("X-Forwarded-For", address)
        if scheme:
            headers.add("X-Forwarded-Proto", scheme)
    response = await post(service, session_cookie, headers)
    assert response.status == status, await response.text()


def test_the_walk_itself() -> None:
    """`forwarded` on requests as aiohttp hands them over (a CIMultiDictProxy, lines kept apart)."""
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)

    class Request:
        def __init__(self, remote: str, *pairs: tuple[str, str]) -> None:
            self.remote = remote
            self.scheme = "http"
            self.headers = CIMultiDictProxy(CIMultiDict(pairs))

    def seen(remote: str, *pairs: tuple[str, str]) -> Forwarded:
        return forwarded(Request(remote, *pairs), proxies)  # type: ignore[arg-type]  # a request as far as read

    xff, proto = "X-Forwarded-For", "X-Forwarded-Proto"
    assert seen("10.0.0.2", (xff, "1.1.1.1"), (xff, "198.51.100.7, 10.0.0.9")) == ("198.51.100.7", "http")
    assert seen("10.0.0.2", (xff, "198.51.100.7"), (proto, "https")) == ("198.51.100.7", "https")
    assert seen("10.0.0.2", (proto, "https"), (proto, "http")) == ("10.0.0.2", "http")
    # Junk left of the caller is never reached; junk right of it means the chain is not believed (the peer
    # is the caller, and the scheme is the peer's own entry, the last).
    assert seen("10.0.0.2", (xff, "nope"), (xff, "198.51.100.7"), (proto, "https")) == ("198.51.100.7", "https")
    assert seen("10.0.0.2", (xff, "198.51.100.7"), (xff, "nope"), (proto, "https")) == ("10.0.0.2", "https")
    # A scheme that is neither http nor https is not believed.
    assert seen("10.0.0.2", (proto, "gopher")) == ("10.0.0.2", "http")
    # An untrusted peer: nothing is read.
    assert seen("198.51.100.1", (xff, "1.1.1.1"), (proto, "https")) == ("198.51.100.1", "http")
    # Empty entries (and empty lines) are no entries.
    assert header_list(CIMultiDict([(xff, " , 1.1.1.1,"), (xff, ""), (xff, "2.2.2.2")]), xff) == ["1.1.1.1", "2.2.2.2"]


# -- on the wire, through the runner `token-exchange serve` uses ---------------------------------


@pytest.fixture
async def served(emulator: Emulator) -> AsyncIterator[int]:
    settings = service_settings(emulator, TRUSTED_PROXIES="127.0.0.0/8", RATE_LIMIT_IP="3/minute")
    runner = service_runner(create_app(settings), settings)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield site.port
    finally:
        await runner.cleanup()


async def raw_exchange(port: int, cookie: str, *header_lines: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = ["POST /v1/realtime/token HTTP/1.1", "Host: 127.0.0.1", "X-CSRF: 1", f"Cookie: {COOKIE}={cookie}",
                *header_lines, "Content-Length: 0", "Connection: close"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_two_raw_header_lines_on_the_wire(served, session_cookie, logs) -> None:
    answers = [
        await raw_exchange(served, session_cookie, f"X-Forwarded-For: 198.51.100.{attempt}", f"X-Forwarded-For: {REAL}")
        for attempt in range(5)
    ]
    assert [answer.split(b" ", 2)[1] for answer in answers] == [b"200"] * 3 + [b"429"] * 2
    assert audited_ips(logs) == [REAL] * 5
