"""The Realtime relay against the emulator's Realtime socket: every rule, over real WebSockets."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from appwrite_token_exchange.keys import LIFECYCLE
from appwrite_token_exchange.relay import pump as relay_pump
from appwrite_token_exchange.relay.policy import read_handshake, upstream_url

from tests.support.service import COOKIE, PROJECT

ALLOWED = "https://app.example.com"


async def connect(service: Any, cookie: str | None, origin: str = ALLOWED, query: str = "") -> Any:
    headers = {"Origin": origin}
    if cookie is not None:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    return await service.ws_connect(f"/v1/realtime?project={PROJECT}{query}", headers=headers)


async def frame(ws: Any, timeout: float = 3.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return dict(json.loads(message.data))


async def subscribe(ws: Any, *channels: str) -> dict[str, Any]:
    await ws.send_str(json.dumps({"type": "subscribe", "data": [{"subscriptionId": "s1", "channels": list(channels), "queries": []}]}))
    return await frame(ws)


async def audit_event(logs: Any, name: str) -> dict[str, Any]:
    """The one audit event of that name, waiting briefly: it is logged as the socket finishes."""
    for _ in range(100):
        events = logs.events(name)
        if events:
            [event] = events
            return dict(event)
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {name} event")


async def control(emulator: Any, path: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as http:
        async with http.post(emulator.server.make_url(f"/_emulator/{path}"), json=body) as response:
            assert response.status < 300, await response.text()
            return await response.json(content_type=None) if response.status != 204 else None


async def connections(emulator: Any) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(emulator.server.make_url("/_emulator/realtime/connections")) as response:
            body = await response.json()
    return list(body if isinstance(body, list) else body["connections"])


@pytest.fixture(params=["cloud", "1.9", "1.8"])
async def emulator(request, emulator_factory):  # type: ignore[no-untyped-def]
    # The relay works the same against every server generation, so every test runs on all three.
    return await emulator_factory(mode=request.param)


async def test_relayed_socket_is_authenticated_and_receives_events(service, emulator) -> None:
    user_id, _, cookie = emulator.signed_in_user()
    ws = await connect(service, cookie, query="&channels[]=account")
    connected = await frame(ws)
    assert connected["type"] == "connected"
    assert connected["data"]["user"]["$id"] == user_id
    assert (await control(emulator, "realtime/publish", {"userId": user_id, "payload": {"n": 1}}))["delivered"] == 1
    event = await frame(ws)
    assert event["type"] == "event"
    assert event["data"]["payload"] == {"n": 1}
    await ws.close()


async def test_upstream_gets_the_client_ip_and_no_origin(service, emulator) -> None:
    _, _, cookie = emulator.signed_in_user()
    ws = await connect(service, cookie, query="&channels[]=account&jwt=should-not-pass")
    await frame(ws)
    [upstream] = [c for c in await connections(emulator) if c["open"]]
    assert upstream["forwardedFor"] == "127.0.0.1"
    assert upstream["origin"] in (None, "")
    await ws.close()


def test_upstream_url_is_the_project_and_the_channels_never_a_jwt() -> None:
    handshake = read_handshake("project=evil&jwt=x&channels[]=account&channels[0]=files&evil=1")
    url = upstream_url("https://aw.example.com/v1", "p1", handshake)
    assert url == "wss://aw.example.com/v1/realtime?project=p1&channels[]=account&channels[]=files"
    assert upstream_url("http://127.0.0.1:9/v1", "p", read_handshake("")) == "ws://127.0.0.1:9/v1/realtime?project=p"


@pytest.mark.parametrize(
    ("cookie", "origin", "status"),
    [(None, ALLOWED, 401), ("made-up", ALLOWED, 401), ("valid", "https://evil.example", 403)],
)
async def test_handshake_refusals_happen_before_the_upgrade(service, emulator, cookie, origin, status) -> None:
    real = emulator.signed_in_user()[2]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(service, real if cookie == "valid" else cookie, origin=origin)
    assert refused.value.status == status
    assert not [c for c in await connections(emulator) if c["open"]]


async def test_plain_get_is_a_problem(service) -> None:
    response = await service.get("/v1/realtime")
    assert response.status == 400
    assert (await response.json(content_type=None))["code"] == "bad_request"


async def test_connects_share_the_exchanges_limits(service_factory, emulator) -> None:
    service = await service_factory(RATE_LIMIT_SESSION="2/minute")
    _, _, cookie = emulator.signed_in_user()
    ok = await service.post("/v1/realtime/token", headers={"X-CSRF": "1", "Cookie": f"{COOKIE}={cookie}"})
    assert ok.status == 200
    ws = await connect(service, cookie, query="&channels[]=account")
    await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(service, cookie)
    assert refused.value.status == 429


async def test_authentication_frames_from_the_page_are_dropped(service, emulator) -> None:
    user_id, _, cookie = emulator.signed_in_user()
    _, _, other = emulator.signed_in_user("other@example.com")
    ws = await connect(service, cookie, query="&channels[]=account")
    await frame(ws)
    await ws.send_str(json.dumps({"type": "authentication", "data": {"session": other}}))
    await ws.send_str(json.dumps({"type": "ping"}))
    # The next thing back answers the ping: the authentication frame never reached Appwrite.
    assert (await frame(ws))["type"] == "pong"
    [upstream] = [c for c in await connections(emulator) if c["open"]]
    assert upstream["userId"] == user_id
    await ws.close()


async def test_channel_policy_refuses_other_channels(service_factory, emulator) -> None:
    service = await service_factory(RELAY_CHANNELS_ALLOW="account,databases.*.collections.public.*")
    _, _, cookie = emulator.signed_in_user()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(service, cookie, query="&channels[]=files")
    assert refused.value.status == 403
    ws = await connect(service, cookie, query="&channels[]=account")
    await frame(ws)
    error = await subscribe(ws, "files")
    assert error == {"type": "error", "data": {"code": 1008, "message": "Channel not allowed: files"}}
    await ws.send_str(json.dumps({"type": "ping"}))
    assert (await frame(ws))["type"] == "pong"
    await ws.close()


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["logout", "blocked"])
async def test_the_relay_closes_the_socket_when_the_session_ends(service_factory, emulator, ending, logs) -> None:
    service = await service_factory(RELAY_REVALIDATE_SECONDS="1")
    user_id, session_id, cookie = emulator.signed_in_user()
    ws = await connect(service, cookie, query="&channels[]=account")
    await frame(ws)
    if ending == "logout":
        emulator.state.delete_session(session_id)
    else:
        emulator.state.block_user(user_id)
    message = await asyncio.wait_for(ws.receive(), 3.0)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1008
    closed = await audit_event(logs, "relay.closed")
    assert closed["close_reason"] == "session_ended"


async def test_upstream_close_is_passed_on(service, emulator) -> None:
    user_id, _, cookie = emulator.signed_in_user()
    ws = await connect(service, cookie, query="&channels[]=account")
    await frame(ws)
    await control(emulator, "realtime/disconnect", {"userId": user_id, "code": 1011})
    message = await asyncio.wait_for(ws.receive(), 3.0)
    assert message.type == aiohttp.WSMsgType.CLOSE
    # Not 1008: the SDK reconnects on anything else.
    assert ws.close_code == 1011


async def test_drain_closes_relayed_sockets_with_going_away(service_factory, emulator) -> None:
    service = await service_factory(DRAIN_TIMEOUT_SECONDS="0.2")
    _, _, cookie = emulator.signed_in_user()
    ws = await connect(service, cookie, query="&channels[]=account")
    await frame(ws)
    service.app[LIFECYCLE].start_drain()
    message = await asyncio.wait_for(ws.receive(), 3.0)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1001
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(service, cookie)
    assert refused.value.status == 503


@pytest.mark.slow
async def test_a_client_that_does_not_read_is_closed(service, emulator, monkeypatch, logs) -> None:
    monkeypatch.setattr(relay_pump, "SEND_TIMEOUT_SECONDS", 0.3)
    user_id, _, cookie = emulator.signed_in_user()
    ws = await connect(service, cookie, query="&channels[]=account")
    await frame(ws)
    big = {"blob": "x" * 60_000}
    for _ in range(400):
        await control(emulator, "realtime/publish", {"userId": user_id, "payload": big})
        if logs.events("relay.closed"):
            break
    closed = await audit_event(logs, "relay.closed")
    assert closed["close_reason"] == "slow_client"
    assert closed["close_code"] == 1013


async def test_audit_and_metrics(service, emulator, logs) -> None:
    user_id, _, cookie = emulator.signed_in_user()
    started = time.monotonic()
    ws = await connect(service, cookie, query="&channels[]=account")
    await frame(ws)
    text = await (await service.get("/metrics")).text()
    assert "token_exchange_relay_open_sockets 1.0" in text
    await ws.send_str(json.dumps({"type": "ping"}))
    await frame(ws)
    await ws.close()
    closed = await audit_event(logs, "relay.closed")
    opened = await audit_event(logs, "relay.opened")
    assert opened["user_id"] == user_id and closed["user_id"] == user_id
    assert closed["frames"]["to_appwrite"] == 1
    assert closed["frames"]["to_client"] >= 2
    assert closed["bytes"]["to_client"] > 0
    # How long the socket lived: within what this test took, not a clock's reading.
    assert isinstance(closed["duration_s"], float) and 0 <= closed["duration_s"] <= time.monotonic() - started
    assert closed["close_reason"] == "client_closed"
    assert cookie not in logs.text
    text = await (await service.get("/metrics")).text()
    assert "token_exchange_relay_open_sockets 0.0" in text
    assert 'token_exchange_relay_closes_total{reason="client_closed"} 1.0' in text
    assert 'token_exchange_relay_frames_total{direction="to_appwrite"} 1.0' in text


async def test_open_sockets_do_not_use_up_the_exchange_slots(service_factory, emulator) -> None:
    service = await service_factory(UPSTREAM_MAX_CONCURRENCY="2", RATE_LIMIT_SESSION="off")
    _, _, cookie = emulator.signed_in_user()
    sockets = [await connect(service, cookie, query="&channels[]=account") for _ in range(4)]
    for ws in sockets:
        assert (await frame(ws))["type"] == "connected"
    response = await service.post("/v1/realtime/token", headers={"X-CSRF": "1", "Cookie": f"{COOKIE}={cookie}"})
    assert response.status == 200
    for ws in sockets:
        await ws.close()
