"""The caps on the crowd at the edge (edge/connection_limits.py), through the HTTP server as `serve`
runs it: connections and requests in flight, per process and per client IP, with what a client sees
past each (status, `Retry-After`, problem body), the audit line and the metric; the counts going
back to nothing whatever way a connection ends. Client IPs are loopback addresses (127.0.0.0/8)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from appwrite_token_exchange.edge.connection_limits import (
    REQUEST_BASE_BYTES,
    STALLED_SECONDS,
    ConnectionLimits,
    EdgeCaps,
)
from appwrite_token_exchange.env import EnvReader
from appwrite_token_exchange.keys import CONNECTION_LIMITS, SETTINGS

from tests.support.helpers import inject_fault
from tests.support.service import COOKIE, PROJECT, Emulator, LogLines, ServedFactory

ALLOWED = "https://app.example.com"
ATTACKER = "127.0.1.1"
BYSTANDER = "127.0.0.2"
STALLED_HEAD = b"POST /v1/realtime/token HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "  # never finished


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str]
    body: bytes


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else None
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return Answer(status, headers, body)


class Connections:
    """Raw client connections from chosen loopback addresses, all closed at the end."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._open: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open(self, source: str, first_bytes: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))
        self._open.append((reader, writer))
        if first_bytes:
            writer.write(first_bytes)
            await writer.drain()
        return reader, writer

    async def answer(self, source: str, request: bytes = b"") -> Answer:
        """What the server says on a new connection (to `request`, or to nothing), read to its close."""
        reader, _ = await self.open(source, request)
        return parse(await asyncio.wait_for(reader.read(), 5))

    async def close_all(self) -> None:
        for _, writer in self._open:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        self._open.clear()


@contextlib.asynccontextmanager
async def connections(port: int) -> AsyncIterator[Connections]:
    opened = Connections(port)
    try:
        yield opened
    finally:
        await opened.close_all()


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One answer on a connection kept alive."""
    answer = parse(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
    answer.body = await reader.readexactly(int(answer.headers["content-length"]))
    return answer


def livez(host: str = "127.0.0.1") -> bytes:
    return f"GET /livez HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def assert_refused(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/problem+json", answer
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["server"] == "token-exchange"
    assert "x-request-id" in answer.headers
    assert json.loads(answer.body)["code"] == code


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for the server's side of what the client did to be counted."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server never counted it")


async def metric(port: int, code: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(f'token_exchange_http_edge_refusals_total{{code="{code}"}}'):
            return float(line.split()[-1])
    return 0.0


class Captured:
    """The app's connection limits (and the clock they read, set by the test)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.limits: ConnectionLimits | None = None

    def __call__(self, app: web.Application) -> None:
        settings = app[SETTINGS]
        limits = ConnectionLimits(EdgeCaps.from_settings(settings), settings.trusted_proxies,
                                  settings.ipv6_prefix_length, clock=lambda: self.now)
        limits.on_refused = app[CONNECTION_LIMITS].on_refused
        app[CONNECTION_LIMITS] = limits
        self.limits = limits


# -- per client IP ----------------------------------------------------------------------------------


async def test_one_ip_past_its_connections_is_answered_429_at_accept(bounded: ServedFactory, logs: LogLines) -> None:
    port = await bounded(MAX_CONNECTIONS_PER_IP="3")
    async with connections(port) as opened:
        for _ in range(3):
            await opened.open(ATTACKER)
        refused = await opened.answer(ATTACKER)  # sends nothing: the answer comes at accept
        assert_refused(refused, 429, "too_many_connections")
        assert (await opened.answer(BYSTANDER, livez())).status == 200  # another client is not affected
        assert await metric(port, "too_many_connections") == 1
    lines = [line for line in logs.events("http.refused") if line["code"] == "too_many_connections"]
    assert [line["client_ip"] for line in lines] == [ATTACKER]


async def test_one_ip_past_its_requests_in_flight_is_answered_429(bounded: ServedFactory) -> None:
    port = await bounded(MAX_REQUESTS_IN_FLIGHT_PER_IP="2")
    async with connections(port) as opened:
        for _ in range(2):
            await opened.open(ATTACKER, STALLED_HEAD)
        assert_refused(await opened.answer(ATTACKER, livez()), 429, "too_many_requests_in_flight")
        assert (await opened.answer(BYSTANDER, livez())).status == 200
        await opened.close_all()
        # The stalled requests ended with their connections: the client may send again.
        await asyncio.sleep(0.1)
        assert (await opened.answer(ATTACKER, livez())).status == 200


async def test_a_trusted_proxy_has_no_per_client_share(bounded: ServedFactory) -> None:
    """Many clients come through one proxy: its connections are only counted against the process."""
    port = await bounded(MAX_CONNECTIONS_PER_IP="2", MAX_REQUESTS_IN_FLIGHT_PER_IP="1", TRUSTED_PROXIES="127.0.1.0/24")
    async with connections(port) as opened:
        for _ in range(4):
            await opened.open(ATTACKER, STALLED_HEAD)
        assert (await opened.answer(ATTACKER, livez())).status == 200


def test_ipv6_clients_share_their_network_and_proxies_have_no_key() -> None:
    caps = EdgeCaps(max_connections=100, max_request_bytes=1 << 20, max_connections_per_client=2,
                    max_requests_per_client=2)
    limits = ConnectionLimits(caps, EnvReader({"P": "10.0.0.0/8"}).networks("P"), ipv6_prefix_length=64)
    assert limits.client_key("2001:db8::1") == limits.client_key("2001:db8::ffff") == "2001:db8::/64"
    assert limits.client_key("2001:db8:0:1::1") != limits.client_key("2001:db8::1")
    assert limits.client_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert limits.client_key("10.1.2.3") is None and limits.client_key(None) is None
    key = limits.client_key("2001:db8::1")
    assert limits.connect(key) is None and limits.connect(limits.client_key("2001:db8::2")) is None
    assert limits.connect(limits.client_key("2001:db8::3")) == "too_many_connections"


# -- per process ----------------------------------------------------------------------------------


async def test_past_the_byte_budget_a_stalled_request_is_refused_but_whole_small_ones_pass(
    bounded: ServedFactory,
) -> None:
    """Stalled requests from many IPs fill MAX_REQUEST_BYTES_IN_FLIGHT to within a few bytes of
    what they may take: the next is refused 503 server_busy, while a probe that arrives whole still
    gets the reserve kept for such requests."""
    port = await bounded(MAX_REQUEST_BYTES_IN_FLIGHT="262144", MAX_REQUEST_HEADER_BYTES="1048576")
    sizes = [30_000] * 8 + [2**n for n in range(14, 2, -1)] + [5]
    async with connections(port) as opened:
        refused = []
        for n, size in enumerate(sizes):  # a partial request line of `size` bytes each, biggest first
            reader, _ = await opened.open(f"127.0.1.{n + 1}", b"GET /" + b"a" * (size - 5))
            with contextlib.suppress(TimeoutError):
                refused.append(parse(await asyncio.wait_for(reader.read(), 0.3)))
        assert refused, "no stalled request was refused"
        for answer in refused:
            assert_refused(answer, 503, "server_busy")
        assert (await opened.answer(BYSTANDER, livez())).status == 200  # whole in one read: the reserve
        assert await metric(port, "server_busy") == len(refused)


async def test_at_the_connection_cap_the_longest_idle_connection_makes_room(bounded: ServedFactory) -> None:
    captured = Captured()
    port = await bounded(prepare=captured, MAX_CONNECTIONS="16")
    async with connections(port) as opened:
        silent = [await opened.open(f"127.0.1.{n + 1}") for n in range(16)]
        await until(lambda: captured.limits is not None and captured.limits.connections == 16)
        assert (await opened.answer(BYSTANDER, livez())).status == 200
        first_reader = silent[0][0]
        assert await asyncio.wait_for(first_reader.read(), 5) == b""  # the oldest was closed, unanswered
        assert all(not reader.at_eof() for reader, _ in silent[1:])


async def test_at_the_connection_cap_a_stalled_request_makes_room_only_once_it_is_stalled(
    bounded: ServedFactory, logs: LogLines
) -> None:
    captured = Captured()
    port = await bounded(prepare=captured, MAX_CONNECTIONS="16")
    async with connections(port) as opened:
        stalled = [await opened.open(f"127.0.1.{n + 1}", STALLED_HEAD) for n in range(16)]
        await until(lambda: captured.limits is not None and captured.limits.request_bytes > 16 * REQUEST_BASE_BYTES)
        # Arriving for less than STALLED_SECONDS: none may be closed, the newcomer is refused.
        assert_refused(await opened.answer(BYSTANDER, livez()), 503, "server_busy")
        captured.now += STALLED_SECONDS
        assert (await opened.answer(BYSTANDER, livez())).status == 200
        assert await asyncio.wait_for(stalled[0][0].read(), 5) == b""
    assert [line["code"] for line in logs.events("http.refused")].count("server_busy") == 1


# -- the counts go back to nothing --------------------------------------------------------------------


async def test_every_way_a_connection_ends_gives_back_what_it_held(bounded: ServedFactory, session_cookie: str) -> None:
    captured = Captured()
    port = await bounded(prepare=captured, REQUEST_READ_TIMEOUT_SECONDS="0.5", MAX_REQUEST_HEADER_BYTES="8192")
    requests = [
        livez(),  # answered and closed
        b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\nGET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST /v1/realtime/token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",  # 431
        b"GET /livez HTTP/1.1\r\nHost: x\r\n",  # 408 after the read deadline
        b"\x00\x01 not http\r\n\r\n",  # 400
        b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\nGET /liv",  # a fragment after an answer, then closed
    ]
    async with connections(port) as opened:
        for request in requests:
            await opened.answer("127.0.1.9", request)
        reader, _ = await opened.open("127.0.1.10", b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(reader)).status == 200  # kept alive, idle
    limits = captured.limits
    assert limits is not None
    relay = f"http://127.0.0.1:{port}/v1/realtime?project={PROJECT}&channels[]=account"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError):  # an upgrade the relay refuses
            await http.ws_connect(relay, headers={"Origin": ALLOWED})
        async with http.ws_connect(relay, headers={"Origin": ALLOWED, "Cookie": f"{COOKIE}={session_cookie}"}):
            await until(lambda: limits.connections == 1)
            assert limits.request_bytes == 0  # a relayed socket is the relay's to count
    await until(lambda: limits.connections == 0)
    assert (limits.connections, limits.request_bytes, limits.lingering) == (0, 0, 0)
    assert limits.held("127.0.1.9") == limits.held("127.0.1.10") == (0, 0)


@pytest.mark.parametrize("pipelined", [1, 5])
async def test_requests_sent_together_hold_one_slot(bounded: ServedFactory, pipelined: int) -> None:
    captured = Captured()
    port = await bounded(prepare=captured, MAX_REQUESTS_IN_FLIGHT_PER_IP="1")
    request = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
    async with connections(port) as opened:
        reader, _ = await opened.open(ATTACKER, request * pipelined)
        for _ in range(pipelined):
            assert (await read_answer(reader)).status == 200
        limits = captured.limits
        assert limits is not None
        await until(lambda: limits.held(ATTACKER) == (1, 0))


async def test_a_request_sent_while_the_one_before_is_answered_rides_on_its_slot(
    bounded: ServedFactory, emulator: Emulator, session_cookie: str
) -> None:
    """The next request on a keep-alive connection may arrive before the answer to the one before
    (Appwrite is slow here): one connection still holds one of its client's requests in flight."""
    captured = Captured()
    port = await bounded(prepare=captured, MAX_REQUESTS_IN_FLIGHT_PER_IP="1", UPSTREAM_TIMEOUT_SECONDS="0.5")
    await inject_fault(emulator, "hang", times=1)
    token = (f"POST /v1/realtime/token HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nOrigin: {ALLOWED}\r\n"
             f"Cookie: {COOKIE}={session_cookie}\r\nContent-Length: 0\r\n\r\n").encode()
    async with connections(port) as opened:
        reader, writer = await opened.open(ATTACKER, token)
        limits = captured.limits
        assert limits is not None
        await until(lambda: limits.held(ATTACKER) == (1, 1))
        writer.write(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_problem_code(await read_answer(reader), 504, "upstream_timeout")
        assert (await read_answer(reader)).status == 200


def assert_problem_code(answer: Answer, status: int, code: str) -> None:
    assert (answer.status, json.loads(answer.body)["code"]) == (status, code), answer


async def test_a_connection_that_sends_nothing_is_closed_at_the_read_deadline(bounded: ServedFactory) -> None:
    """An opened, silent connection holds one of the process's connections: it gets the read
    deadline a request gets, not aiohttp's keep-alive minute and a quarter."""
    captured = Captured()
    port = await bounded(prepare=captured, REQUEST_READ_TIMEOUT_SECONDS="0.3")
    async with connections(port) as opened:
        reader, _ = await opened.open(ATTACKER)
        assert await asyncio.wait_for(reader.read(), 5) == b""
    limits = captured.limits
    assert limits is not None
    assert limits.connections == 0
