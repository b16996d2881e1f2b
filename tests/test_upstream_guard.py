"""Saturation and the circuit breaker, seen from the outside. The breaker's cool-down runs on a clock
the test moves; what a test waits for, it waits for as an event the service shows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web
from appwrite_token_exchange.appwrite.guard import UpstreamGuard
from appwrite_token_exchange.keys import METRICS, READINESS_CHECKS, SETTINGS, UPSTREAM_GUARD

from tests.support.emulator_client import FakeClock
from tests.support.helpers import assert_problem, inject_fault, upstream_requests
from tests.support.service import exchange


def guard_on(clock: FakeClock) -> Callable[[web.Application], None]:
    """Put a breaker that reads `clock` in the app's place (the app's settings, its metrics)."""

    def prepare(app: web.Application) -> None:
        settings = app[SETTINGS]
        guard = UpstreamGuard(settings.upstream_max_concurrency, settings.circuit_failure_threshold,
                              settings.circuit_cooldown_seconds, on_state_change=app[METRICS].set_circuit, clock=clock)
        app[UPSTREAM_GUARD] = guard
        app[READINESS_CHECKS]["circuit"] = guard.readiness

    return prepare


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


@pytest.mark.slow
async def test_saturation_answers_at_once_instead_of_queueing(service_factory, emulator) -> None:
    service = await service_factory(UPSTREAM_MAX_CONCURRENCY="1", RATE_LIMIT_IP="off")
    cookies = [emulator.signed_in_user(f"s{i}@example.com")[2] for i in range(2)]
    await inject_fault(emulator, "latency", ms=600)
    slow = asyncio.create_task(exchange(service, cookies[0]))
    await until(lambda: service.app[UPSTREAM_GUARD].in_flight == 1)  # the one allowed call is out
    response = await exchange(service, cookies[1])
    await assert_problem(response, 503, "upstream_saturated")
    assert response.headers["Retry-After"] == "1"
    # Answered while the one allowed call was still in flight: refused at once, not queued behind it.
    assert not slow.done()
    assert (await slow).status == 200
    assert len(await upstream_requests(emulator)) == 1


@pytest.mark.slow
async def test_circuit_opens_after_repeated_failures_then_probes(service_factory, emulator) -> None:
    clock = FakeClock()
    service = await service_factory(
        prepare=guard_on(clock), CIRCUIT_FAILURE_THRESHOLD="2", CIRCUIT_COOLDOWN_SECONDS="30", RATE_LIMIT_SESSION="off"
    )
    _, _, cookie = emulator.signed_in_user()
    await inject_fault(emulator, "status", status=500, times=2)
    for _ in range(2):
        await assert_problem(await exchange(service, cookie), 503, "upstream_unavailable")
    # Open: answered at once, Appwrite is not called.
    response = await exchange(service, cookie)
    body = await assert_problem(response, 503, "upstream_unavailable")
    assert "circuit" in body["detail"]
    assert int(response.headers["Retry-After"]) >= 1
    assert len(await upstream_requests(emulator)) == 2
    ready = await (await service.get("/readyz")).json()
    assert ready["status"] == "degraded"
    assert ready["checks"]["circuit"]["circuit"] == "open"
    assert "token_exchange_circuit_state 2.0" in await (await service.get("/metrics")).text()
    clock.advance(29.9)
    await assert_problem(await exchange(service, cookie), 503, "upstream_unavailable")  # not yet
    assert len(await upstream_requests(emulator)) == 2
    clock.advance(0.1)
    # Cool-down over: one probe goes through, succeeds, and closes the circuit.
    assert (await exchange(service, cookie)).status == 200
    assert (await (await service.get("/readyz")).json())["checks"]["circuit"]["circuit"] == "closed"
    assert "token_exchange_circuit_state 0.0" in await (await service.get("/metrics")).text()


async def test_a_failed_probe_reopens_the_circuit(service_factory, emulator) -> None:
    clock = FakeClock()
    service = await service_factory(
        prepare=guard_on(clock), CIRCUIT_FAILURE_THRESHOLD="1", CIRCUIT_COOLDOWN_SECONDS="30", RATE_LIMIT_SESSION="off"
    )
    _, _, cookie = emulator.signed_in_user()
    await inject_fault(emulator, "drop")
    await assert_problem(await exchange(service, cookie), 503, "upstream_unavailable")
    clock.advance(30)
    await assert_problem(await exchange(service, cookie), 503, "upstream_unavailable")
    calls = len(await upstream_requests(emulator))
    await assert_problem(await exchange(service, cookie), 503, "upstream_unavailable")
    assert len(await upstream_requests(emulator)) == calls


@pytest.mark.slow
async def test_refusals_by_appwrite_do_not_trip_the_circuit(service_factory, emulator) -> None:
    service = await service_factory(CIRCUIT_FAILURE_THRESHOLD="2", RATE_LIMIT_IP="off")
    for i in range(4):
        _, session_id, cookie = emulator.signed_in_user(f"gone{i}@example.com")
        emulator.state.delete_session(session_id)
        await assert_problem(await exchange(service, cookie), 401, "session_invalid")
    assert (await exchange(service, emulator.signed_in_user("alive@example.com")[2])).status == 200
