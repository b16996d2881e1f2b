"""What the service reads of Appwrite's answers: at most MAX_UPSTREAM_BODY_BYTES, whatever is sent.

The upstream here is a tiny server that streams an answer of any size lazily (so a 100 MB answer
costs it nothing) and records how much it managed to send before the service hung up.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from appwrite_token_exchange.appwrite.client import (
    MAX_UPSTREAM_BODY_BYTES,
    AppwriteClient,
    UpstreamError,
    create_http_session,
    probe_version,
)

from tests.support.helpers import assert_problem
from tests.support.processes import free_port, running
from tests.support.service import COOKIE, PROJECT, exchange, service_settings

MB = 1024 * 1024
HUGE = 100 * MB
# Valid JSON with everything the service looks for; the rest of the answer is whitespace, which
# JSON allows: only the size is wrong with these answers.
HEAD = b'{"$id": "u1", "jwt": "x", "type": "general_unknown", "version": "1.9.0"}'
PAD = b" " * (64 * 1024)
# What loopback socket buffers and the client's read buffer may hold besides what was read.
FAR_LESS_THAN_HUGE = 32 * MB


@dataclass
class Answer:
    """One answer the upstream started: how much of it went out, and whether the reader hung up."""

    sent: int = 0
    cut: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Upstream:
    """What the upstream answers (size and status may change between calls), and its answers so far."""

    status: int
    size: int
    declare_length: bool
    answers: list[Answer] = field(default_factory=list)
    server: TestServer | None = None

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v1"))

    async def last_answer(self) -> Answer:
        answer = self.answers[-1]
        await asyncio.wait_for(answer.finished.wait(), 20)
        return answer


UPSTREAM: web.AppKey[Upstream] = web.AppKey("upstream")


async def _answer(request: web.Request) -> web.StreamResponse:
    upstream = request.app[UPSTREAM]
    answer = Answer()
    upstream.answers.append(answer)
    response = web.StreamResponse(status=upstream.status, headers={"Content-Type": "application/json"})
    if upstream.declare_length:
        response.content_length = upstream.size
    else:
        response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        await response.write(HEAD)
        answer.sent = len(HEAD)
        while answer.sent < upstream.size:
            piece = PAD if upstream.size - answer.sent >= len(PAD) else PAD[: upstream.size - answer.sent]
            await response.write(piece)
            answer.sent += len(piece)
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        # A write to a closed connection fails, or aiohttp cancels the handler once the peer is gone.
        answer.cut = True
        raise
    finally:
        answer.finished.set()
    return response


UpstreamFactory = Callable[..., Awaitable[Upstream]]


@pytest.fixture
async def upstream_factory(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> UpstreamFactory:
    async def start(size: int = HUGE, status: int = 201, declare_length: bool = False) -> Upstream:
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", _answer)
        upstream = Upstream(status, size, declare_length)
        app[UPSTREAM] = upstream
        upstream.server = await aiohttp_server(app)
        return upstream

    return start


def _relay_handshake() -> dict[str, str]:
    return {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }


async def _assert_cut_short(upstream: Upstream) -> None:
    answer = await upstream.last_answer()
    assert answer.cut, f"the service read the whole {answer.sent:,}-byte answer"
    assert answer.sent < FAR_LESS_THAN_HUGE, f"{answer.sent:,} bytes went out before the service hung up"


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
@pytest.mark.parametrize("status", [201, 401, 500], ids=["token", "error-401", "error-500"])
async def test_a_huge_token_answer_is_refused_unread(
    upstream_factory, service_factory, session_cookie, status, declare_length
) -> None:
    upstream = await upstream_factory(status=status, declare_length=declare_length)
    service = await service_factory(upstream, UPSTREAM_TIMEOUT_SECONDS="30")
    body = await assert_problem(await exchange(service, session_cookie), 502, "upstream_bad_response")
    await _assert_cut_short(upstream)
    assert "larger than 256 KiB" in body["detail"]


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
async def test_a_huge_account_answer_is_refused_unread_by_the_relay(
    upstream_factory, service_factory, session_cookie, declare_length
) -> None:
    upstream = await upstream_factory(status=200, declare_length=declare_length)
    service = await service_factory(upstream, UPSTREAM_TIMEOUT_SECONDS="30")
    response = await service.get(
        f"/v1/realtime?project={PROJECT}&channels[]=account",
        headers={**_relay_handshake(), "Cookie": f"{COOKIE}={session_cookie}"},
    )
    body = await assert_problem(response, 502, "upstream_bad_response")
    await _assert_cut_short(upstream)
    assert "larger than 256 KiB" in body["detail"]


async def test_oversized_answers_count_against_the_circuit_breaker(
    upstream_factory, service_factory, session_cookie
) -> None:
    upstream = await upstream_factory(size=MB)
    service = await service_factory(upstream, CIRCUIT_FAILURE_THRESHOLD="2")
    for _ in range(2):
        await assert_problem(await exchange(service, session_cookie), 502, "upstream_bad_response")
    await assert_problem(await exchange(service, session_cookie), 503, "upstream_unavailable")
    assert len(upstream.answers) == 2, "the open circuit kept the third call off Appwrite"


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
async def test_answers_up_to_the_cap_are_read_and_one_byte_more_is_refused(upstream_factory, declare_length) -> None:
    for size, fits in ((MAX_UPSTREAM_BODY_BYTES, True), (MAX_UPSTREAM_BODY_BYTES + 1, False)):
        upstream = await upstream_factory(size=size, status=200, declare_length=declare_length)
        settings = service_settings(upstream)  # type: ignore[arg-type]
        async with create_http_session(settings) as http:
            client = AppwriteClient(http, settings)
            if fits:
                assert await client.get_account_id("session") == "u1"
            else:
                with pytest.raises(UpstreamError) as refused:
                    await client.get_account_id("session")
                assert refused.value.code == "upstream_bad_response" and refused.value.is_upstream_failure
                assert refused.value.upstream_status == 200


async def test_the_readiness_probe_reads_no_huge_answer(upstream_factory) -> None:
    upstream = await upstream_factory(status=200)
    async with aiohttp.ClientSession() as http:
        assert await probe_version(http, upstream.endpoint, 20) is None
    await _assert_cut_short(upstream)
    small = await upstream_factory(size=1024, status=200)
    async with aiohttp.ClientSession() as http:
        assert await probe_version(http, small.endpoint, 20) == "1.9.0"


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
async def test_memory_of_huge_answers_in_a_real_process(upstream_factory, session_cookie) -> None:
    """`token-exchange serve` facing an endpoint that answers 100 MB: one request, then ten at once.

    Before the cap, one such answer took the process's peak RSS up by ~200 MB and ten by ~1 GB
    (issue 11, item 6). Now each answer costs at most the cap plus buffers.
    """
    upstream = await upstream_factory(size=HUGE)
    port = free_port()
    env = {
        "APPWRITE_ENDPOINT": upstream.endpoint,
        "APPWRITE_PROJECT_ID": PROJECT,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "UPSTREAM_TIMEOUT_SECONDS": "60",
        "RATE_LIMIT_IP": "off",
        "RATE_LIMIT_SESSION": "off",
        "RATE_LIMIT_USER": "off",
        "CIRCUIT_FAILURE_THRESHOLD": "1000",
        "LOG_LEVEL": "error",
    }
    url = f"http://127.0.0.1:{port}"
    headers = {"X-CSRF": "1", "Cookie": f"{COOKIE}={session_cookie}"}
    async with running("serve", env=env, ready_url=f"{url}/livez") as process, aiohttp.ClientSession() as http:

        async def one() -> Any:
            async with http.post(f"{url}/v1/realtime/token", headers=headers) as response:
                return response.status

        # Warm up on a small answer, so imports and first-call allocations are not counted.
        upstream.size = 1024
        assert await one() == 502
        upstream.size = HUGE
        base = await asyncio.to_thread(_peak_rss_kib, process.pid)
        assert await one() == 502
        after_one = await asyncio.to_thread(_peak_rss_kib, process.pid)
        assert await asyncio.gather(*(one() for _ in range(10))) == [502] * 10
        after_ten = await asyncio.to_thread(_peak_rss_kib, process.pid)
    one_mib, ten_mib = (after_one - base) / 1024, (after_ten - base) / 1024
    print(f"peak RSS {base / 1024:.1f} MiB; +{one_mib:.1f} MiB for one 100 MB answer, +{ten_mib:.1f} MiB for ten at once")
    assert one_mib < 32, f"one 100 MB answer raised peak RSS by {one_mib:.1f} MiB"
    assert ten_mib < 64, f"ten 100 MB answers raised peak RSS by {ten_mib:.1f} MiB"
