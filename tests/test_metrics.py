"""GET /metrics: the families an operator needs, and no label holding anything a user sent."""

from __future__ import annotations

import re

from tests.conftest import exchange


async def test_metrics_expose_the_families(service, emulator, session_cookie) -> None:
    await exchange(service, session_cookie)
    await exchange(service)
    await service.get("/no/such/path/for-user-123")
    response = await service.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    for family in (
        'token_exchanges_total{code="issued"} 1.0',
        'token_exchanges_total{code="session_missing"} 1.0',
        'http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/realtime/token"}',
        "upstream_request_duration_seconds_bucket",
        'upstream_responses_total{status="201"} 1.0',
        'ratelimit_decisions_total{decision="allow",scope="session"} 1.0',
        "state_backend_fallback 0.0",
        "circuit_state 0.0",
        "http_requests_in_flight",
    ):
        assert family in text, family


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
