"""The audit trail: one event per exchange, with what an operator needs and no secret at all."""

from __future__ import annotations

from tests.support.helpers import inject_fault
from tests.support.service import exchange


async def test_issued_event_has_the_operators_fields(service, emulator, logs) -> None:
    user_id, _, cookie = emulator.signed_in_user()
    response = await exchange(service, cookie, headers={"Origin": "https://app.example.com", "X-Request-ID": "rid-1"})
    assert response.status == 200
    [event] = logs.events("token.issued")
    assert event["request_id"] == response.headers["X-Request-ID"]
    assert event["client_request_id"] == "rid-1"
    assert event["outcome"] == "issued"
    assert event["user_id"] == user_id
    assert event["client_ip"] == "127.0.0.1"
    assert event["origin"] == "https://app.example.com"
    assert 25 <= event["ttl_seconds"] <= 30
    assert event["upstream_ms"] >= 0
    assert len(event["session_hash"]) == 16
    assert event["level"] == "info"


async def test_denied_event_names_the_code(service, emulator, logs) -> None:
    _, session_id, cookie = emulator.signed_in_user()
    emulator.state.delete_session(session_id)
    await exchange(service, cookie)
    await exchange(service)
    codes = [event["outcome"] for event in logs.events("token.denied")]
    assert codes == ["session_invalid", "session_missing"]


async def test_same_session_same_hash_other_session_other_hash(service, emulator, logs) -> None:
    _, _, first = emulator.signed_in_user("a@example.com")
    _, _, second = emulator.signed_in_user("b@example.com")
    for cookie in (first, first, second):
        await exchange(service, cookie)
    hashes = [event["session_hash"] for event in logs.events("token.issued")]
    assert hashes[0] == hashes[1] != hashes[2]


async def test_no_secret_reaches_any_log_line_on_any_path(service, emulator, logs) -> None:
    secrets_seen: list[str] = []
    _, session_id, cookie = emulator.signed_in_user("victim@example.com")
    secrets_seen.append(cookie)

    async def run(cookie_value: str | None, **headers: str) -> None:
        response = await exchange(service, cookie_value, headers=headers)
        if response.status == 200:
            secrets_seen.append((await response.json())["jwt"])

    await run(cookie)
    await run(cookie, Origin="https://evil.example")
    await run(cookie, **{"X-CSRF": ""})
    await run(None)
    for kind in ("garbage", "not_json", "no_jwt", "bad_signature", "drop", "rate_limit"):
        await inject_fault(emulator, kind, times=1)
        await run(cookie)
    await inject_fault(emulator, "status", status=500, times=1)
    await run(cookie)
    blocked_id, _, blocked_cookie = emulator.signed_in_user("blocked@example.com")
    secrets_seen.append(blocked_cookie)
    emulator.state.block_user(blocked_id)
    await run(blocked_cookie)
    emulator.state.delete_session(session_id)
    await run(cookie)
    await service.get("/readyz")

    assert len(secrets_seen) >= 3
    assert logs.events("token.issued") and logs.events("token.denied")
    text = logs.text
    for secret in secrets_seen:
        assert secret not in text
        # Not even a recognisable piece of one.
        assert secret[-24:] not in text


async def test_startup_says_what_it_serves_without_secrets(service_factory, logs) -> None:
    await service_factory(APPWRITE_JWT_SECRET="very-secret-instance-key", REVOCATION_SECRET="very-secret-kick-key")
    [started] = logs.events("service.started")
    assert started["project_id"] == "testproject"
    assert started["state_backend"] == "memory"
    assert started["jwt_signature_checked"] is True
    assert started["revocation"] == {"webhook": False, "kick": True}
    assert "very-secret-instance-key" not in logs.text and "very-secret-kick-key" not in logs.text


async def test_access_lines_skip_the_audited_exchange(service, session_cookie, logs) -> None:
    import logging

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request
    from appwrite_token_exchange.observability.logs import AccessLogger

    access = AccessLogger(logging.getLogger("aiohttp.access"), "")
    access.log(make_mocked_request("POST", "/v1/realtime/token"), web.Response(status=200), 0.01)
    access.log(make_mocked_request("GET", "/livez?probe=1"), web.Response(status=200), 0.002)
    [line] = logs.events("http.request")
    assert (line["path"], line["status"], line["duration_ms"]) == ("/livez", 200, 2.0)
    await exchange(service, session_cookie)
    [issued] = logs.events("token.issued")
    assert issued["duration_ms"] >= issued["upstream_ms"] > 0
