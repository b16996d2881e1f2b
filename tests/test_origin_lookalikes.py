"""Origins that look like an allowed one are refused on every route that checks Origin: the token
route, its CORS preflight and the relay's WebSocket handshake (which has no preflight to fall back
on: a page that passes the check there can read the user's events). Issue 29: an Origin allowlist
turned into a prefix match passed all 1,109 tests; each case here fails on such a mutation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.helpers import assert_problem
from tests.support.service import COOKIE, PROJECT, exchange
from tests.support.websocket import HANDSHAKE

ALLOWED = "https://app.example.com"  # service_settings' ALLOWED_ORIGINS
LOOKALIKES = {
    "suffix on the host": "https://app.example.com.evil.example",
    "host prefix": "https://evilapp.example.com",
    "a prefix of the host": "https://app.example.co",
    "subdomain": "https://x.app.example.com",
    "another port": "https://app.example.com:8443",
    "the default port spelled out": "https://app.example.com:443",
    "another scheme": "http://app.example.com",
    "websocket scheme": "wss://app.example.com",
    "userinfo": "https://app.example.com@evil.example",
    "userinfo before": "https://user@app.example.com",
    "trailing dot": "https://app.example.com.",
    "IDN homograph (Cyrillic a)": "https://\u0430pp.example.com",
    "punycode": "https://xn--pp-8cd.example.com",
    "a path": "https://app.example.com/evil",
    "an encoded slash": "https://app.example.com%2f.evil.example",
    "null": "null",
    "whitespace inside": "https://app.example.com .evil.example",
}
# The same origin as the allowed one (DNS names are case-insensitive; an Origin has no path).
SAME_ORIGIN = {"upper case": "HTTPS://APP.EXAMPLE.COM", "a trailing slash": "https://app.example.com/"}


def assert_no_grant(response: Any) -> None:
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("origin", list(LOOKALIKES.values()), ids=list(LOOKALIKES))
async def test_the_token_route_refuses_a_lookalike(service: Any, session_cookie: str, origin: str) -> None:
    response = await exchange(service, session_cookie, headers={"Origin": origin})
    await assert_problem(response, 403, "origin_not_allowed")
    assert_no_grant(response)


@pytest.mark.parametrize("origin", list(LOOKALIKES.values()), ids=list(LOOKALIKES))
async def test_a_preflight_from_a_lookalike_grants_nothing(service: Any, origin: str) -> None:
    response = await service.options("/v1/realtime/token", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-csrf",
    })
    assert_no_grant(response)
    assert "Access-Control-Allow-Methods" not in response.headers


@pytest.mark.parametrize("origin", list(LOOKALIKES.values()), ids=list(LOOKALIKES))
async def test_the_relay_handshake_refuses_a_lookalike(service: Any, session_cookie: str, origin: str) -> None:
    response = await service.get(f"/v1/realtime?project={PROJECT}&channels[]=account", headers={
        **HANDSHAKE, "Origin": origin, "Cookie": f"{COOKIE}={session_cookie}",
    })
    await assert_problem(response, 403, "origin_not_allowed")
    assert "Sec-WebSocket-Accept" not in response.headers


@pytest.mark.parametrize("origin", [ALLOWED, *SAME_ORIGIN.values()], ids=["allowed", *SAME_ORIGIN])
async def test_the_allowed_origin_passes_everywhere(service: Any, session_cookie: str, origin: str) -> None:
    """The control: every refusal above is about the origin, not the request."""
    response = await exchange(service, session_cookie, headers={"Origin": origin})
    assert response.status == 200, await response.text()
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    async with service.ws_connect(f"/v1/realtime?project={PROJECT}&channels[]=account",
                                  headers={"Origin": origin, "Cookie": f"{COOKIE}={session_cookie}"}) as ws:
        assert not ws.closed
