"""Appwrite's answers by whom they concern (issue 12, item 3).

An answer about one user (a password reset, any `user_*` type) must never trip the circuit breaker.
An answer about the whole project (JWT auth disabled, no such project), or a token signed with a
key APPWRITE_JWT_SECRET does not list, is a misconfiguration: a stable code with a `cause` that
says what to fix, logged once, shown on /readyz until a call succeeds again, and no breaker trip
either. Appwrite failing (5xx, timeouts) still opens it (tests/test_upstream_guard.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from appwrite_token_exchange.appwrite.client import AppwriteClient, UpstreamError, create_http_session

from tests.support.helpers import assert_problem, inject_fault, upstream_requests
from tests.support.service import COOKIE, JWT_SECRET, PROJECT, exchange, service_settings

THRESHOLD = "2"
TRIES = 5  # well past the threshold


async def _readiness(service: Any) -> dict[str, Any]:
    response = await service.get("/readyz")
    assert response.status == 200
    return dict(await response.json())


async def _circuit(service: Any) -> str:
    return str((await _readiness(service))["checks"]["circuit"]["circuit"])


def _exchanges_counted(metrics: str, code: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'token_exchange_token_requests_total{{code="{code}"}}'):
            return float(line.split()[-1])
    return 0.0


# --- project-level answers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "cause", "says"),
    [
        ({"status": 501, "type": "user_auth_method_unsupported"}, "jwt_auth_disabled", "enable the JWT auth method"),
        ({"status": 404, "type": "project_not_found"}, "project_not_found", "APPWRITE_PROJECT_ID"),
    ],
    ids=["jwt-disabled", "project-not-found"],
)
async def test_a_project_level_answer_is_a_misconfiguration_that_never_trips_the_breaker(
    service_factory, emulator, logs, fault, cause, says
) -> None:
    service = await service_factory(CIRCUIT_FAILURE_THRESHOLD=THRESHOLD, RATE_LIMIT_SESSION="off")
    cookie = emulator.signed_in_user()[2]
    await inject_fault(emulator, "status", times=TRIES, **fault)
    for _ in range(TRIES):
        response = await exchange(service, cookie)
        body = await assert_problem(response, 503, "appwrite_misconfigured")
        assert body["cause"] == cause
        assert says in body["detail"] and PROJECT in body["detail"]
        assert int(response.headers["Retry-After"]) >= 1
    # Every answer reached Appwrite: the circuit never opened.
    assert len(await upstream_requests(emulator)) == TRIES
    ready = await _readiness(service)
    assert ready["status"] == "degraded"
    assert ready["checks"]["circuit"]["circuit"] == "closed"
    assert ready["checks"]["appwrite"]["status"] == "misconfigured"
    [shown] = ready["checks"]["appwrite"]["misconfigured"]
    assert shown["cause"] == cause and says in shown["detail"]
    # Logged once, not once per request.
    [logged] = logs.events("config.appwrite_misconfigured")
    assert logged["cause"] == cause and says in logged["hint"]
    assert logged["level"] == "error"
    assert _exchanges_counted(await (await service.get("/metrics")).text(), "appwrite_misconfigured") == TRIES
    # Fixed (the fault is spent): the next call succeeds and clears it.
    assert (await exchange(service, cookie)).status == 200
    ready = await _readiness(service)
    assert ready["status"] == "ready"
    assert ready["checks"]["appwrite"] == {"status": "ok", "version": ready["checks"]["appwrite"]["version"]}
    assert len(logs.events("config.appwrite_misconfiguration_cleared")) == 1


async def test_a_wrong_project_id_is_named(service_factory, emulator) -> None:
    # Not injected: the emulator answers 404 project_not_found to a project it does not serve.
    service = await service_factory(APPWRITE_PROJECT_ID="no-such-project", SESSION_COOKIE_NAME=COOKIE)
    body = await assert_problem(await exchange(service, emulator.signed_in_user()[2]), 503, "appwrite_misconfigured")
    assert body["cause"] == "project_not_found"
    assert "'no-such-project'" in body["detail"] and emulator.endpoint in body["detail"]


async def test_the_relay_meets_a_wrong_project_id_too(service_factory, emulator) -> None:
    service = await service_factory(APPWRITE_PROJECT_ID="no-such-project", SESSION_COOKIE_NAME=COOKIE)
    headers = {
        "Origin": "https://app.example.com",
        "Cookie": f"{COOKIE}={emulator.signed_in_user()[2]}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    response = await service.get("/v1/realtime?project=x&channels[]=account", headers=headers)
    body = await assert_problem(response, 503, "appwrite_misconfigured")
    assert body["cause"] == "project_not_found"
    ready = await _readiness(service)
    assert [item["cause"] for item in ready["checks"]["appwrite"]["misconfigured"]] == ["project_not_found"]


async def test_only_a_call_that_proves_the_fix_clears_a_cause(emulator) -> None:
    settings = service_settings(emulator)
    async with create_http_session(settings) as http:
        client = AppwriteClient(http, settings)
        cookie = emulator.signed_in_user()[2]
        await inject_fault(emulator, "status", status=501, type="user_auth_method_unsupported", times=1)
        with pytest.raises(UpstreamError) as refused:
            await client.create_jwt(cookie)
        assert (refused.value.code, refused.value.cause) == ("appwrite_misconfigured", "jwt_auth_disabled")
        assert not refused.value.is_upstream_failure
        # The relay's account call proves the project exists, not that JWT auth is back on.
        await client.get_account_id(cookie)
        assert [item["cause"] for item in client.misconfigurations.readiness()] == ["jwt_auth_disabled"]
        await client.create_jwt(cookie)
        assert client.misconfigurations.readiness() == []


# --- the instance key ---------------------------------------------------------------------------------


async def test_a_token_that_fails_the_instance_key_is_our_misconfiguration(service_factory, emulator, logs) -> None:
    service = await service_factory(CIRCUIT_FAILURE_THRESHOLD=THRESHOLD, RATE_LIMIT_SESSION="off")
    cookie = emulator.signed_in_user()[2]
    await inject_fault(emulator, "bad_signature", times=TRIES)
    for _ in range(TRIES):
        body = await assert_problem(await exchange(service, cookie), 503, "appwrite_misconfigured")
        assert body["cause"] == "jwt_secret_mismatch"
        assert "APPWRITE_JWT_SECRET" in body["detail"]
        assert JWT_SECRET not in body["detail"]
    assert len(await upstream_requests(emulator)) == TRIES
    ready = await _readiness(service)
    assert ready["checks"]["circuit"]["circuit"] == "closed"
    assert [item["cause"] for item in ready["checks"]["appwrite"]["misconfigured"]] == ["jwt_secret_mismatch"]
    assert len(logs.events("config.appwrite_misconfigured")) == 1
    assert JWT_SECRET not in logs.text
    assert (await exchange(service, cookie)).status == 200
    assert (await _readiness(service))["checks"]["appwrite"]["status"] == "ok"


async def test_any_of_several_instance_keys_verifies_a_token(service_factory, emulator) -> None:
    # During a rotation both keys are listed; the emulator's bad_signature fault signs with "not-<key>".
    service = await service_factory(APPWRITE_JWT_SECRET=f"old-instance-key-0123456789abcdefgh, not-{JWT_SECRET} ,{JWT_SECRET}")
    cookie = emulator.signed_in_user()[2]
    assert (await exchange(service, cookie)).status == 200
    await inject_fault(emulator, "bad_signature", times=1)
    assert (await exchange(service, cookie)).status == 200


async def test_a_token_no_listed_key_verifies_is_refused(service_factory, emulator) -> None:
    service = await service_factory(APPWRITE_JWT_SECRET="old-instance-key-0123456789abcdefgh,another-instance-key-0123456789abcdef")
    body = await assert_problem(await exchange(service, emulator.signed_in_user()[2]), 503, "appwrite_misconfigured")
    assert body["cause"] == "jwt_secret_mismatch"


# --- answers about one user ---------------------------------------------------------------------------


@dataclass
class OneAnswer:
    """A stand-in Appwrite that gives every call the same error answer."""

    status: int
    type: str
    server: TestServer | None = None
    calls: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v1"))


ONE_ANSWER: web.AppKey[OneAnswer] = web.AppKey("one_answer")


async def _answer(request: web.Request) -> web.Response:
    upstream = request.app[ONE_ANSWER]
    upstream.calls.append(request.path)
    body = {"message": "Appwrite says no.", "code": upstream.status, "type": upstream.type, "version": "1.9.6"}
    return web.json_response(body, status=upstream.status)


@pytest.fixture
async def one_answer(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Callable[..., Awaitable[OneAnswer]]:
    async def start(status: int, type_: str) -> OneAnswer:
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", _answer)
        upstream = OneAnswer(status, type_)
        app[ONE_ANSWER] = upstream
        upstream.server = await aiohttp_server(app)
        return upstream

    return start


async def test_a_password_reset_is_the_users_own_final_answer(service_factory, one_answer, emulator) -> None:
    upstream = await one_answer(412, "user_password_reset_required")
    service = await service_factory(
        upstream=upstream, CIRCUIT_FAILURE_THRESHOLD=THRESHOLD, RATE_LIMIT_SESSION="off", RATE_LIMIT_USER="off"
    )
    cookie = emulator.signed_in_user()[2]
    for _ in range(TRIES):
        body = await assert_problem(await exchange(service, cookie), 403, "password_reset_required")
        assert "Reset the password" in body["detail"]
    assert len(upstream.calls) == TRIES
    assert await _circuit(service) == "closed"


async def test_an_unexpected_answer_about_one_user_does_not_trip_the_breaker(
    service_factory, one_answer, emulator
) -> None:
    upstream = await one_answer(400, "user_password_mismatch")
    service = await service_factory(
        upstream=upstream, CIRCUIT_FAILURE_THRESHOLD=THRESHOLD, RATE_LIMIT_SESSION="off", RATE_LIMIT_USER="off"
    )
    cookie = emulator.signed_in_user()[2]
    for _ in range(TRIES):
        await assert_problem(await exchange(service, cookie), 502, "upstream_bad_response")
    assert len(upstream.calls) == TRIES
    assert await _circuit(service) == "closed"


async def test_an_unexpected_answer_about_no_user_still_counts_as_appwrite_failing(
    service_factory, one_answer, emulator
) -> None:
    # Kept as before: an unusable answer that names no user is Appwrite misbehaving.
    upstream = await one_answer(404, "general_route_not_found")
    service = await service_factory(
        upstream=upstream, CIRCUIT_FAILURE_THRESHOLD=THRESHOLD, RATE_LIMIT_SESSION="off", RATE_LIMIT_USER="off"
    )
    cookie = emulator.signed_in_user()[2]
    for _ in range(int(THRESHOLD)):
        await assert_problem(await exchange(service, cookie), 502, "upstream_bad_response")
    await assert_problem(await exchange(service, cookie), 503, "upstream_unavailable")
    assert len(upstream.calls) == int(THRESHOLD)
