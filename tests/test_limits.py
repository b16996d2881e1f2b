"""Per-IP, per-session and per-user limits, their headers, and the rejected-session memory."""

from __future__ import annotations

import re

from tests.support.helpers import assert_problem, upstream_requests
from tests.support.service import exchange


async def test_session_limit_refuses_before_appwrite(service_factory, emulator, session_cookie) -> None:
    service = await service_factory(RATE_LIMIT_SESSION="3/minute")
    for _ in range(3):
        assert (await exchange(service, session_cookie)).status == 200
    response = await exchange(service, session_cookie)
    body = await assert_problem(response, 429, "rate_limited")
    assert body["scope"] == "session"
    assert 1 <= int(response.headers["Retry-After"]) <= 120
    assert '"session";q=3;w=60' in response.headers["RateLimit-Policy"]
    assert re.search(r'"session";r=0;t=\d+', response.headers["RateLimit"])
    assert len(await upstream_requests(emulator)) == 3


async def test_ip_limit_spans_sessions(service_factory, emulator) -> None:
    service = await service_factory(RATE_LIMIT_IP="2/minute")
    cookies = [emulator.signed_in_user(f"u{i}@example.com")[2] for i in range(3)]
    assert (await exchange(service, cookies[0])).status == 200
    assert (await exchange(service, cookies[1])).status == 200
    body = await assert_problem(await exchange(service, cookies[2]), 429, "rate_limited")
    assert body["scope"] == "ip"


async def test_user_limit_spans_the_users_sessions(service_factory, emulator) -> None:
    service = await service_factory(RATE_LIMIT_USER="2/minute")
    user = emulator.state.create_user("multi@example.com", "password-123")
    first = emulator.state.create_session(user.id)[1]
    second = emulator.state.create_session(user.id)[1]
    assert (await exchange(service, first)).status == 200
    assert (await exchange(service, second)).status == 200
    # The service learned both sessions' user from the tokens' claims; the user is now at 2/2.
    body = await assert_problem(await exchange(service, first), 429, "rate_limited")
    assert body["scope"] == "user"
    assert len(await upstream_requests(emulator)) == 2


async def test_successful_answers_carry_ratelimit_headers(service, session_cookie) -> None:
    response = await exchange(service, session_cookie)
    assert response.status == 200
    policy = response.headers["RateLimit-Policy"]
    assert '"ip";q=120;w=60' in policy and '"session";q=60;w=60' in policy
    assert re.search(r'"session";r=59;t=\d+', response.headers["RateLimit"])


async def test_limits_can_be_switched_off(service_factory, session_cookie) -> None:
    service = await service_factory(RATE_LIMIT_SESSION="off", RATE_LIMIT_IP="off", RATE_LIMIT_USER="off")
    for _ in range(15):
        response = await exchange(service, session_cookie)
        assert response.status == 200
    assert "RateLimit" not in response.headers


async def test_rejected_sessions_are_remembered(service, emulator) -> None:
    _, session_id, cookie = emulator.signed_in_user()
    emulator.state.delete_session(session_id)
    for _ in range(6):
        await assert_problem(await exchange(service, cookie), 401, "session_invalid")
    assert len(await upstream_requests(emulator)) == 1


async def test_rejected_session_memory_can_be_off(service_factory, emulator) -> None:
    service = await service_factory(INVALID_SESSION_CACHE_SECONDS="0", RATE_LIMIT_SESSION="off")
    _, session_id, cookie = emulator.signed_in_user()
    emulator.state.delete_session(session_id)
    for _ in range(3):
        await assert_problem(await exchange(service, cookie), 401, "session_invalid")
    assert len(await upstream_requests(emulator)) == 3
