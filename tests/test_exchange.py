"""The token exchange against the emulator: every outcome a browser can see."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import jwt
import pytest

from tests.support.helpers import assert_problem, inject_fault, upstream_requests
from tests.support.service import COOKIE, JWT_SECRET, PROJECT, exchange


async def test_session_cookie_becomes_a_short_lived_jwt(service, emulator, session_cookie) -> None:
    before = time.time()
    response = await exchange(service, session_cookie)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = await response.json()
    assert set(body) == {"jwt", "expiresIn", "expiresAt", "userId"}
    claims = jwt.decode(body["jwt"], JWT_SECRET, algorithms=["HS256"])
    assert set(claims) == {"userId", "sessionId", "exp"}
    assert body["userId"] == claims["userId"]
    assert 28 <= body["expiresIn"] <= 30
    assert abs(claims["exp"] - (before + 30)) <= 2
    expires_at = datetime.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(expires_at.timestamp()) == claims["exp"]


async def test_the_upstream_call_carries_only_project_session_and_duration(
    service, emulator, session_cookie
) -> None:
    response = await exchange(
        service,
        session_cookie,
        headers={"Authorization": "Bearer nope", "X-Appwrite-Key": "stolen", "Origin": "https://app.example.com"},
    )
    assert response.status == 200
    [sent] = await upstream_requests(emulator)
    headers = {name.lower(): value for name, value in sent["headers"].items()}
    assert headers["x-appwrite-project"] == PROJECT
    assert headers["x-appwrite-session"] == session_cookie
    assert sent["body"] == {"duration": 30}
    for forbidden in ("cookie", "authorization", "x-appwrite-key", "x-csrf", "origin", "x-appwrite-jwt"):
        assert forbidden not in headers


async def test_ttl_is_configurable(service_factory, session_cookie) -> None:
    service = await service_factory(TOKEN_TTL_SECONDS="5")
    body = await (await exchange(service, session_cookie)).json()
    assert 3 <= body["expiresIn"] <= 5


async def test_expiry_comes_from_the_token_when_an_old_server_ignores_the_duration(
    emulator_factory, service_factory
) -> None:
    old = await emulator_factory(mode="1.8")
    _, _, cookie = old.signed_in_user()
    service = await service_factory(old)
    body = await (await exchange(service, cookie)).json()
    assert 895 <= body["expiresIn"] <= 900


async def test_no_cookie_is_session_missing(service, emulator) -> None:
    await assert_problem(await exchange(service), 401, "session_missing")
    assert await upstream_requests(emulator) == []


async def test_a_signed_out_session_is_invalid(service, emulator) -> None:
    _, session_id, cookie = emulator.signed_in_user()
    emulator.state.delete_session(session_id)
    await assert_problem(await exchange(service, cookie), 401, "session_invalid")


async def test_a_made_up_cookie_is_invalid(service, emulator) -> None:
    forged = "eyJpZCI6Im5vYm9keSIsInNlY3JldCI6Im5vdGhpbmcifQ"  # {"id":"nobody","secret":"nothing"}
    await assert_problem(await exchange(service, forged), 401, "session_invalid")
    assert len(await upstream_requests(emulator)) == 1


async def test_a_cookie_that_is_no_session_value_is_refused_without_an_upstream_call(service, emulator) -> None:
    # base64 of "not-a-session": Appwrite could not decode a session from it, so it is not asked.
    await assert_problem(await exchange(service, "bm90LWEtc2Vzc2lvbg"), 401, "session_invalid")
    assert await upstream_requests(emulator) == []


async def test_a_malformed_cookie_is_refused_without_an_upstream_call(service, emulator) -> None:
    await assert_problem(await exchange(service, "x" * 5000), 401, "session_invalid")
    assert await upstream_requests(emulator) == []


async def test_a_blocked_user_is_refused(service, emulator) -> None:
    user_id, _, cookie = emulator.signed_in_user()
    emulator.state.block_user(user_id)
    await assert_problem(await exchange(service, cookie), 403, "user_blocked")


async def test_unfinished_mfa_is_refused(service, emulator) -> None:
    _, _, cookie = emulator.signed_in_user(mfa=True)
    await assert_problem(await exchange(service, cookie), 401, "mfa_required")


async def test_appwrite_rate_limit_passes_its_reset_as_retry_after(service, emulator, session_cookie) -> None:
    await inject_fault(emulator, "rate_limit")
    response = await exchange(service, session_cookie)
    await assert_problem(response, 429, "upstream_rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 3600


async def test_appwrite_real_per_user_limit(emulator_factory, service_factory) -> None:
    emulator = await emulator_factory(jwt_rate_limit=2)
    _, _, cookie = emulator.signed_in_user()
    service = await service_factory(emulator, RATE_LIMIT_SESSION="off")
    for _ in range(2):
        assert (await exchange(service, cookie)).status == 200
    response = await exchange(service, cookie)
    await assert_problem(response, 429, "upstream_rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_appwrite_failing_is_unavailable_with_retry_after(service, emulator, session_cookie, status) -> None:
    await inject_fault(emulator, "status", status=status)
    response = await exchange(service, session_cookie)
    await assert_problem(response, 503, "upstream_unavailable")
    assert int(response.headers["Retry-After"]) > 0


async def test_dropped_connection_is_unavailable(service, emulator, session_cookie) -> None:
    await inject_fault(emulator, "drop")
    response = await exchange(service, session_cookie)
    await assert_problem(response, 503, "upstream_unavailable")
    assert response.headers["Retry-After"]


async def test_appwrite_not_listening_is_unavailable(service_factory, session_cookie) -> None:
    service = await service_factory(APPWRITE_ENDPOINT="http://127.0.0.1:9/v1")
    await assert_problem(await exchange(service, session_cookie), 503, "upstream_unavailable")


@pytest.mark.parametrize("kind", ["hang", "latency"])
async def test_slow_appwrite_times_out_within_the_budget(service_factory, emulator, session_cookie, kind) -> None:
    service = await service_factory(UPSTREAM_TIMEOUT_SECONDS="0.3")
    await inject_fault(emulator, kind, ms=5000)
    started = time.monotonic()
    await assert_problem(await exchange(service, session_cookie), 504, "upstream_timeout")
    assert time.monotonic() - started < 2.0


async def test_small_latency_is_tolerated(service, emulator, session_cookie) -> None:
    await inject_fault(emulator, "latency", ms=100)
    assert (await exchange(service, session_cookie)).status == 200


# A bad signature is the service's misconfiguration, not Appwrite's: tests/test_upstream_errors.py.
@pytest.mark.parametrize("kind", ["garbage", "not_json", "no_jwt"])
async def test_unusable_answers_are_bad_responses(service, emulator, session_cookie, kind) -> None:
    await inject_fault(emulator, kind)
    await assert_problem(await exchange(service, session_cookie), 502, "upstream_bad_response")


async def test_without_the_instance_key_the_signature_is_not_checked(service_factory, emulator, session_cookie) -> None:
    service = await service_factory(APPWRITE_JWT_SECRET="")
    await inject_fault(emulator, "bad_signature")
    assert (await exchange(service, session_cookie)).status == 200


def test_an_already_expired_token_is_refused() -> None:
    # duration 0 is what Appwrite answers with an already-expired token; it must never reach a page.
    from appwrite_token_exchange.appwrite.claims import ClaimsError, read_claims

    token = jwt.encode({"userId": "u", "sessionId": "s", "exp": int(time.time()) - 1}, JWT_SECRET)
    with pytest.raises(ClaimsError, match="expired"):
        read_claims(token, JWT_SECRET)


async def test_the_service_recovers_after_faults(service, emulator, session_cookie) -> None:
    await inject_fault(emulator, "status", status=503, times=1)
    assert (await exchange(service, session_cookie)).status == 503
    assert (await exchange(service, session_cookie)).status == 200


async def test_cookie_name_is_configurable(service_factory, session_cookie) -> None:
    service = await service_factory(SESSION_COOKIE_NAME="app_session")
    await assert_problem(await exchange(service, session_cookie), 401, "session_missing")
    response = await service.post(
        "/v1/realtime/token", headers={"X-CSRF": "1", "Cookie": f"app_session={session_cookie}"}
    )
    assert response.status == 200
    assert COOKIE != "app_session"


def test_only_hs256_tokens_are_accepted_even_unverified() -> None:
    from appwrite_token_exchange.appwrite.claims import ClaimsError, SignatureMismatch, read_claims

    claims = {"userId": "u", "sessionId": "s", "exp": int(time.time()) + 60}
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(ClaimsError, match="HS256"):
        read_claims(unsigned, None)
    assert read_claims(jwt.encode(claims, JWT_SECRET), None).user_id == "u"
    with pytest.raises(SignatureMismatch):
        read_claims(jwt.encode(claims, "another-key-0123456789abcdef0123"), JWT_SECRET)
