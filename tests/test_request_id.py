"""X-Request-ID reaches Appwrite on every call the service makes, the same id it logs and answers
with, so one id finds a request in both logs. (Tracing is off here: no traceparent goes out.)

That id is always the service's own (issue 26, item 7): a caller's X-Request-ID, which any client
can reuse at will, is logged beside it as `client_request_id` when it is well formed, and never
answered with nor sent to Appwrite."""

from __future__ import annotations

import re
from typing import Any

import pytest
from multidict import CIMultiDict

from tests.support.helpers import upstream_requests
from tests.support.service import COOKIE, PROJECT, exchange

ORIGIN = "https://app.example.com"
OWN_ID = re.compile(r"[0-9a-f]{32}")


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


async def test_a_callers_own_id_is_logged_beside_the_services(service, emulator, session_cookie, logs) -> None:
    response = await exchange(service, session_cookie, headers={"X-Request-ID": "edge-proxy.7f3a:1"})
    request_id = response.headers["X-Request-ID"]
    assert OWN_ID.fullmatch(request_id)
    [sent] = await upstream_requests(emulator)
    assert sent_id(sent) == request_id
    [issued] = logs.events("token.issued")
    assert (issued["request_id"], issued["client_request_id"]) == (request_id, "edge-proxy.7f3a:1")
    assert "edge-proxy.7f3a:1" not in str(sent["headers"])


async def test_a_reused_id_does_not_join_two_requests(service, emulator, logs) -> None:
    """Two users, one id sent twice: two requests in the audit log and at Appwrite, told apart."""
    answered = []
    for email in ("a@example.com", "b@example.com"):
        cookie = emulator.signed_in_user(email=email)[2]
        answered.append((await exchange(service, cookie, headers={"X-Request-ID": "same-1"})).headers["X-Request-ID"])
    assert len(set(answered)) == 2 and "same-1" not in answered
    issued = logs.events("token.issued")
    assert [event["request_id"] for event in issued] == answered
    assert [event["client_request_id"] for event in issued] == ["same-1", "same-1"]
    assert len({event["user_id"] for event in issued}) == 2
    assert [sent_id(sent) for sent in await upstream_requests(emulator)] == answered


@pytest.mark.parametrize("sent", [
    ["q" * 129], ["bad-id\twith-junk"], ["spaced id-q7"], ["id,with,commas-q7"], ["first-id-q7", "second-id-q7"],
], ids=["too long", "control character", "space", "commas", "two lines"])
async def test_an_ill_formed_id_is_not_logged(service, session_cookie, logs, sent) -> None:
    """1-128 of [A-Za-z0-9._:-], on one line: anything else is not the caller's id in the log at all."""
    headers = CIMultiDict([("X-CSRF", "1"), ("Cookie", f"{COOKIE}={session_cookie}"),
                           *(("X-Request-ID", value) for value in sent)])
    response = await service.post("/v1/realtime/token", headers=headers)
    assert response.status == 200 and OWN_ID.fullmatch(response.headers["X-Request-ID"])
    [issued] = logs.events("token.issued")
    assert "client_request_id" not in issued
    for value in sent:
        assert value not in logs.text


async def test_the_longest_well_formed_id_is_logged(service, session_cookie, logs) -> None:
    longest = "A" * 128
    await exchange(service, session_cookie, headers={"X-Request-ID": longest})
    [issued] = logs.events("token.issued")
    assert issued["client_request_id"] == longest


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
        f"/v1/realtime?project={PROJECT}&channels[]=account",
        headers={"Origin": ORIGIN, "Cookie": f"{COOKIE}={cookie}", "X-Request-ID": "page-7"},
    )
    request_id = socket._response.headers["X-Request-ID"]
    await socket.close()
    assert OWN_ID.fullmatch(request_id)
    [checked] = await upstream_requests(emulator, "/v1/account")
    [handshake] = await upstream_requests(emulator, "/v1/realtime")
    assert sent_id(checked) == sent_id(handshake) == request_id
    [opened] = logs.events("relay.opened")
    assert (opened["request_id"], opened["client_request_id"]) == (request_id, "page-7")


async def test_the_readiness_probe_carries_the_id(service, emulator) -> None:
    response = await service.get("/readyz", headers={"X-Request-ID": "probe-1"})
    assert (await response.json())["checks"]["appwrite"]["status"] == "ok"
    [probe] = await upstream_requests(emulator, "/v1/health/version")
    assert sent_id(probe) == response.headers["X-Request-ID"] != "probe-1"
