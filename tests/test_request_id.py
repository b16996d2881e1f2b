"""X-Request-ID reaches Appwrite on every call the service makes, the same id it logs and answers
with, so one id finds a request in both logs. (Tracing is off here: no traceparent goes out.)"""

from __future__ import annotations

from typing import Any

from tests.support.helpers import upstream_requests
from tests.support.service import COOKIE, PROJECT, exchange

ORIGIN = "https://app.example.com"


def sent_id(recorded: dict[str, Any]) -> str | None:
    headers = {name.lower(): value for name, value in recorded["headers"].items()}
    assert "traceparent" not in headers
    return headers.get("x-request-id")


async def test_the_token_call_carries_the_logged_and_answered_id(service, emulator, session_cookie, logs) -> None:
    response = await exchange(service, session_cookie)
    assert response.status == 200
    request_id = response.headers["X-Request-ID"]
    assert len(request_id) == 32
    [sent] = await upstream_requests(emulator)
    assert sent_id(sent) == request_id
    [issued] = logs.events("token.issued")
    assert issued["request_id"] == request_id


async def test_a_callers_own_id_is_the_one_appwrite_gets(service, emulator, session_cookie, logs) -> None:
    response = await exchange(service, session_cookie, headers={"X-Request-ID": "edge-proxy.7f3a:1"})
    assert response.headers["X-Request-ID"] == "edge-proxy.7f3a:1"
    [sent] = await upstream_requests(emulator)
    assert sent_id(sent) == "edge-proxy.7f3a:1"


async def test_a_refused_session_is_found_by_its_id_in_both_logs(service, emulator, logs) -> None:
    _, session_id, cookie = emulator.signed_in_user()
    emulator.state.delete_session(session_id)  # signed out: Appwrite answers 401
    response = await exchange(service, cookie)
    assert response.status == 401
    request_id = response.headers["X-Request-ID"]
    [sent] = await upstream_requests(emulator)
    assert sent_id(sent) == request_id
    [denied] = logs.events("token.denied")
    assert denied["request_id"] == request_id


async def test_each_request_forwards_its_own_id(service, emulator) -> None:
    answered = []
    for _ in range(3):
        cookie = emulator.signed_in_user(email=f"u{len(answered)}@example.com")[2]
        answered.append((await exchange(service, cookie)).headers["X-Request-ID"])
    assert len(set(answered)) == 3
    assert [sent_id(sent) for sent in await upstream_requests(emulator)] == answered


async def test_the_relay_handshake_and_its_account_check_carry_the_id(service, emulator, logs) -> None:
    cookie = emulator.signed_in_user()[2]
    socket = await service.ws_connect(
        f"/v1/realtime?project={PROJECT}&channels[]=account", headers={"Origin": ORIGIN, "Cookie": f"{COOKIE}={cookie}"}
    )
    request_id = socket._response.headers["X-Request-ID"]
    await socket.close()
    [checked] = await upstream_requests(emulator, "/v1/account")
    [handshake] = await upstream_requests(emulator, "/v1/realtime")
    assert sent_id(checked) == sent_id(handshake) == request_id
    [opened] = logs.events("relay.opened")
    assert opened["request_id"] == request_id


async def test_the_readiness_probe_carries_the_id(service, emulator) -> None:
    response = await service.get("/readyz", headers={"X-Request-ID": "probe-1"})
    assert (await response.json())["checks"]["appwrite"]["status"] == "ok"
    [probe] = await upstream_requests(emulator, "/v1/health/version")
    assert sent_id(probe) == "probe-1"
