"""The user limit is reserved at admission and given back when no token comes of the request
(issue 26 #5): exchanges in flight together, first exchanges of a session included, never mint past
RATE_LIMIT_USER, with the limits in memory and in a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from appwrite_token_exchange.access.fingerprints import Fingerprinter
from appwrite_token_exchange.access.limits import AccessLimits
from appwrite_token_exchange.observability.metrics import Metrics
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.settings import Settings
from appwrite_token_exchange.state.sliding_window import Check, MemoryLimiter
from appwrite_token_exchange.state.store import State

from tests.support.helpers import assert_problem, inject_fault, upstream_requests
from tests.support.redis_server import redis_server
from tests.support.service import exchange

HASH_KEY = "shared-deployment-key-0123456789"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def state_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The service's environment for its limits' state: memory, or a real redis-server."""
    if request.param == "memory":
        yield {}
        return
    with redis_server() as server:
        yield {"REDIS_URL": server.url, "STATE_HASH_KEY": HASH_KEY}


async def test_concurrent_first_exchanges_never_mint_past_the_user_limit(
    service_factory: Any, emulator: Any, state_env: dict[str, str]
) -> None:
    """The reported attack: 30 sessions of one user, each sending two first exchanges at once."""
    # A generous upstream timeout: a loaded test machine must not turn slow mints into 504s.
    service = await service_factory(RATE_LIMIT_USER="30/minute", UPSTREAM_TIMEOUT_SECONDS="20", **state_env)
    user = emulator.state.create_user("crowd@example.com", "password-123")
    cookies = [emulator.state.create_session(user.id)[1] for _ in range(30)]
    # Every mint takes a while, so all 60 requests are admitted while the first mints are in flight.
    await inject_fault(emulator, "latency", ms=3000)
    responses = await asyncio.gather(*(exchange(service, cookie) for cookie in cookies for _ in range(2)))
    statuses = [response.status for response in responses]
    assert statuses.count(200) == 30, statuses
    assert len(await upstream_requests(emulator)) == 30, (statuses, state_env)
    for response in responses:
        if response.status != 200:
            body = await assert_problem(response, 429, "rate_limited")
            assert body["scope"] == "user"
            assert int(response.headers["Retry-After"]) >= 1


async def test_a_failed_mint_gives_the_reservation_back(
    service_factory: Any, emulator: Any, state_env: dict[str, str]
) -> None:
    service = await service_factory(RATE_LIMIT_USER="2/minute", **state_env)
    _, _, cookie = emulator.signed_in_user()
    assert (await exchange(service, cookie)).status == 200  # the service now knows the session's user
    await inject_fault(emulator, "status", status=503, times=1)
    await assert_problem(await exchange(service, cookie), 503, "upstream_unavailable")
    # The failed exchange held a unit of the user's window while Appwrite was asked, and gave it back.
    assert (await exchange(service, cookie)).status == 200
    body = await assert_problem(await exchange(service, cookie), 429, "rate_limited")
    assert body["scope"] == "user"
    assert len(await upstream_requests(emulator)) == 3


async def test_a_failed_first_exchange_gives_the_reservation_back(
    service_factory: Any, emulator: Any, state_env: dict[str, str]
) -> None:
    service = await service_factory(RATE_LIMIT_USER="1/minute", **state_env)
    _, _, cookie = emulator.signed_in_user()
    await inject_fault(emulator, "status", status=503, times=1)
    await assert_problem(await exchange(service, cookie), 503, "upstream_unavailable")
    assert (await exchange(service, cookie)).status == 200
    body = await assert_problem(await exchange(service, cookie), 429, "rate_limited")
    assert body["scope"] == "user"


async def test_a_body_too_large_gives_the_reservation_back(
    service_factory: Any, emulator: Any, state_env: dict[str, str]
) -> None:
    """Refused after admission and before Appwrite: the named user's unit must not stay taken
    (else a forged cookie with a large body would drain any user's window)."""
    service = await service_factory(RATE_LIMIT_USER="1/minute", **state_env)
    _, _, cookie = emulator.signed_in_user()
    for _ in range(3):
        await assert_problem(await exchange(service, cookie, data=b"x" * 10_000), 413, "body_too_large")
    assert (await exchange(service, cookie)).status == 200
    assert len(await upstream_requests(emulator)) == 1


async def test_a_cookie_naming_another_user_moves_the_unit_to_the_tokens_user() -> None:
    """A cookie may name anyone: the named user's unit goes back, and the token's user must have
    room, or the token is not handed out."""
    settings = Settings.from_env({
        "APPWRITE_ENDPOINT": "http://127.0.0.1:9/v1", "APPWRITE_PROJECT_ID": "p",
        "RATE_LIMIT_IP": "off", "RATE_LIMIT_SESSION": "off", "RATE_LIMIT_USER": "1/minute",
    })
    fingerprinter = Fingerprinter(b"k" * 32)
    limits = AccessLimits(settings, State(None, lambda down: None), Metrics(), fingerprinter)
    named = await limits.admit("192.0.2.1", fingerprinter.of_session("s1"), "victim")
    await limits.issued(named, "real")  # victim's unit goes back; real's window takes one
    await limits.issued(await limits.admit("192.0.2.1", fingerprinter.of_session("s2"), "victim"), "victim")
    # A second session naming victim but belonging to real: real has no room, so no token.
    other = await limits.admit("192.0.2.1", fingerprinter.of_session("s3"), "someone")
    with pytest.raises(ProblemError) as refused:
        await limits.issued(other, "real")
    assert refused.value.code == "rate_limited"
    assert refused.value.extra == {"scope": "user"}
    # ...and the session's unit for "someone" went back: "someone" still has its one.
    await limits.admit("192.0.2.1", fingerprinter.of_session("s4"), "someone")


def test_a_unit_given_back_after_its_window_ended_comes_off_the_previous_count() -> None:
    """A reservation may outlive its window (a slow Appwrite call at a window's edge): the count
    it made now weighs as the previous window's, and that is where it is taken from."""
    limiter = MemoryLimiter()
    one = Check("user", "u", RateLimit(1, 60))
    assert limiter.hit([one], now=59.0)[0].allowed
    assert not limiter.hit([one], now=61.0)[0].allowed  # the previous window still weighs ~1
    limiter.give_back(one, window_index=0)
    assert limiter.hit([one], now=61.0)[0].allowed
    limiter.give_back(one, window_index=5)  # a window that is long gone: nothing to take back
    assert not limiter.hit([one], now=62.0)[0].allowed
