"""Appwrite's version is asked once and shared: /readyz and the relay each accept answers of their
own age, a failed probe is retried as each caller asked, and concurrent callers share one probe."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from appwrite_token_exchange.appwrite.version import AppwriteVersion, at_least
from appwrite_token_exchange.relay.translate import (
    VERSION_CACHE_SECONDS,
    VERSION_FAILURE_SECONDS,
    UrlChannels,
    needs_channels_in_url,
)
from appwrite_token_exchange.settings import Settings


class FakeAppwrite:
    def __init__(self) -> None:
        self.asked = 0
        self.version: str | None = "1.9.6"
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.asked += 1
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.version is None:
            return web.json_response({"message": "down"}, status=503)
        return web.json_response({"version": self.version})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def start(fake: FakeAppwrite) -> TestServer:
    app = web.Application()
    app.router.add_get("/v1/health/version", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_an_answer_is_kept_as_long_as_each_caller_accepts() -> None:
    fake, clock = FakeAppwrite(), Clock()
    server = await start(fake)
    version = AppwriteVersion(str(server.make_url("/v1")), clock)
    async with aiohttp.ClientSession() as http:
        assert await version.get(http, max_age=300, wait_seconds=2) == "1.9.6"
        clock.now += 10
        assert await version.get(http, max_age=300, wait_seconds=2) == "1.9.6"  # the relay's 300 s
        assert fake.asked == 1
        assert await version.get(http, max_age=5, wait_seconds=1) == "1.9.6"  # /readyz's 5 s: asks again
        assert fake.asked == 2
        fake.version = "2.1.0"
        clock.now += 301
        assert await version.get(http, max_age=300, wait_seconds=2) == "2.1.0"  # an upgrade is noticed
    await server.close()


async def test_a_failure_is_remembered_only_by_callers_that_ask_for_it() -> None:
    fake, clock = FakeAppwrite(), Clock()
    fake.version = None
    server = await start(fake)
    version = AppwriteVersion(str(server.make_url("/v1")), clock)
    async with aiohttp.ClientSession() as http:
        assert await version.get(http, max_age=5, wait_seconds=1, failure_ttl=5) is None
        assert await version.get(http, max_age=5, wait_seconds=1, failure_ttl=5) is None
        assert fake.asked == 1  # /readyz: not asked again within 5 s
        assert await version.get(http, max_age=300, wait_seconds=2) is None
        assert fake.asked == 2  # a caller that remembers no failure asks again
        fake.version = "1.9.0"
        assert await version.get(http, max_age=300, wait_seconds=2) == "1.9.0"
    await server.close()


def url_channels(version: AppwriteVersion) -> UrlChannels:
    settings = Settings(appwrite_endpoint="http://127.0.0.1:1/v1", project_id="p", upstream_timeout_seconds=2.0)
    return UrlChannels(settings, version)


async def test_the_relay_remembers_a_failed_probe_and_translates_meanwhile() -> None:
    fake, clock = FakeAppwrite(), Clock()
    fake.version = None
    server = await start(fake)
    channels = url_channels(AppwriteVersion(str(server.make_url("/v1")), clock))
    async with aiohttp.ClientSession() as http:
        assert [await channels.needed(http) for _ in range(20)] == [True] * 20
        assert fake.asked == 1  # 20 handshakes, one probe
        fake.version = "1.9.6"
        clock.now += VERSION_FAILURE_SECONDS
        assert await channels.needed(http) is False
        assert fake.asked == 2
    await server.close()


async def test_a_hanging_probe_holds_up_no_handshake_once_a_version_is_known() -> None:
    fake, clock = FakeAppwrite(), Clock()
    server = await start(fake)
    channels = url_channels(AppwriteVersion(str(server.make_url("/v1")), clock))
    async with aiohttp.ClientSession() as http:
        assert await channels.needed(http) is False
        fake.gate, fake.arrived = asyncio.Event(), asyncio.Event()  # the health route now hangs
        clock.now += VERSION_CACHE_SECONDS
        # Six handshakes at once: each is answered from the older version while one probe hangs.
        answers = await asyncio.gather(*(channels.needed(http) for _ in range(6)))
        assert answers == [False] * 6
        await fake.arrived.wait()
        assert fake.asked == 2
        fake.version = "1.9.0"  # a downgrade, noticed once the probe comes back
        fake.gate.set()
        for _ in range(100_000):  # until the probe's answer is in (a few loop turns)
            if await channels.needed(http):
                break
            await asyncio.sleep(0)
        assert await channels.needed(http) is True
        assert fake.asked == 2
    await server.close()


async def test_concurrent_callers_share_one_probe_and_a_short_wait_does_not_cancel_it() -> None:
    fake, clock = FakeAppwrite(), Clock()
    fake.gate = asyncio.Event()
    server = await start(fake)
    version = AppwriteVersion(str(server.make_url("/v1")), clock)
    async with aiohttp.ClientSession() as http:
        relays = [asyncio.create_task(version.get(http, max_age=300, wait_seconds=30)) for _ in range(5)]
        await fake.arrived.wait()  # the relays' probe is at Appwrite
        # /readyz gives up at once (a zero wait), while the relays' probe goes on.
        assert await version.get(http, max_age=5, wait_seconds=0) is None
        fake.gate.set()
        assert await asyncio.gather(*relays) == ["1.9.6"] * 5
        assert fake.asked == 1
    await server.close()


@pytest.mark.parametrize(
    ("version", "translated"),
    [
        ("1.8.1", True),
        ("1.9.0", True),
        ("1.9.5-rc.1", True),  # a release candidate is older than its release
        ("1.9.5-RC2", True),
        ("1.9.5", False),  # the first release that reads subscribe frames
        ("1.9.6", False),
        ("1.9.6-rc.1", False),
        ("1.10.0", False),  # numbers, not text: 1.10 is newer than 1.9
        ("2.0.0", False),
        ("2.2.0", False),
        ("2.2.0+build.7", False),
        ("cl-1.9.6-cl.2026.08", False),  # a Cloud build of 1.9.6
        ("cl-1.9.0-x", True),
        (" 1.9.6\n", False),
        ("", True),  # unknown or unreadable: translated, which works against every server
        (None, True),
        ("latest", True),
        ("v1.9.6", True),
        ("1.9", True),
        ("1.9.6.1", True),
        ("11.9.6x", True),
    ],
)
def test_which_versions_are_translated(version: str | None, translated: bool) -> None:
    assert needs_channels_in_url(version) is translated


def test_at_least_reads_every_spelling() -> None:
    assert at_least("2.2.0", (2, 2, 0)) is True
    assert at_least("2.2.0-rc.1", (2, 2, 0)) is False
    assert at_least("cl-2.2.0-7", (2, 2, 0)) is True
    assert at_least("2.1.9", (2, 2, 0)) is False
    assert at_least("nonsense", (1, 0, 0)) is None
