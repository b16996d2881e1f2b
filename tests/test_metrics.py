"""GET /metrics: the families an operator needs, and no label holding anything a user sent."""

from __future__ import annotations

import re

from appwrite_token_exchange.keys import APPWRITE

from tests.support.service import exchange


async def test_metrics_expose_the_families(service, emulator, session_cookie) -> None:
    await exchange(service, session_cookie)
    await exchange(service)
    await service.get("/no/such/path/for-user-123")
    response = await service.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    for family in (
        'token_exchange_token_requests_total{code="issued"} 1.0',
        'token_exchange_token_requests_total{code="session_missing"} 1.0',
        'token_exchange_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/realtime/token"}',
        "token_exchange_upstream_request_duration_seconds_bucket",
        'token_exchange_upstream_responses_total{status="201"} 1.0',
        'token_exchange_ratelimit_decisions_total{decision="allow",scope="session"} 1.0',
        "token_exchange_state_backend_fallback 0.0",
        "token_exchange_circuit_state 0.0",
        "token_exchange_http_requests_in_flight",
        "token_exchange_relay_max_sockets 10000.0",
        'token_exchange_http_responses_total{route="/v1/realtime/token",status="200"} 1.0',
        'token_exchange_http_responses_total{route="/v1/realtime/token",status="401"} 1.0',
        'token_exchange_http_responses_total{route="unmatched",status="404"} 1.0',
    ):
        assert family in text, family


async def test_every_family_carries_the_prefix(service, emulator, session_cookie) -> None:
    await exchange(service, session_cookie)
    text = await (await service.get("/metrics")).text()
    families = re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE)
    assert len(families) >= 14
    assert [name for name in families if not name.startswith("token_exchange_")] == []


async def test_no_label_holds_user_input_or_secrets(service, emulator) -> None:
    user_id, _, cookie = emulator.signed_in_user()
    await exchange(service, cookie)
    await service.get("/no/such/path/for-user-123")
    await service.request("BREW", "/v1/realtime/token")
    text = await (await service.get("/metrics")).text()
    assert cookie not in text
    assert user_id not in text
    assert "for-user-123" not in text
    assert "BREW" not in text
    labels = set(re.findall(r'(\w+)="', text))
    assert labels <= {"code", "route", "method", "status", "scope", "decision", "le", "direction", "reason",
                      "backend", "cause"}


async def test_a_bug_on_the_token_route_is_counted_audited_and_answered_without_a_trace(
    service, emulator, session_cookie, monkeypatch, logs
) -> None:
    async def broken(session: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(service.app[APPWRITE], "create_jwt", broken)
    response = await exchange(service, session_cookie)
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["code"] == "internal_error"
    assert "a bug" not in str(body)
    text = await (await service.get("/metrics")).text()
    assert 'token_exchange_token_requests_total{code="internal_error"} 1.0' in text
    assert 'token_exchange_http_responses_total{route="/v1/realtime/token",status="500"} 1.0' in text
    assert [event["outcome"] for event in logs.events("token.denied")] == ["internal_error"]
