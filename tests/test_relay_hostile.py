"""The relay against a hostile page (issue 11, items 2 and 5): every spelling of a channel meets the
policy, binary frames are screened like text ones, and one caller cannot take every socket slot."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from appwrite_token_exchange.keys import RELAY_SLOTS
from yarl import URL

from tests.support.helpers import assert_problem, inject_fault, upstream_requests
from tests.support.service import COOKIE, PROJECT
from tests.support.websocket import HANDSHAKE

ALLOWED = "https://app.example.com"
POLICY = "account,account.*"
# One caller, many sockets: only the socket caps are under test, not the rate limits.
NO_RATE_LIMITS = {"RATE_LIMIT_IP": "off", "RATE_LIMIT_SESSION": "off", "RATE_LIMIT_USER": "off"}


def _url(query: str) -> URL:
    # encoded=True: the query reaches the service byte for byte, not requoted by yarl.
    return URL(f"/v1/realtime?project={PROJECT}&{query}", encoded=True)


def _headers(cookie: str, client_ip: str | None) -> dict[str, str]:
    headers = {"Origin": ALLOWED, "Cookie": f"{COOKIE}={cookie}"}
    if client_ip is not None:
        headers["X-Forwarded-For"] = client_ip
    return headers


async def connect(service: Any, cookie: str, query: str = "channels[]=account", client_ip: str | None = None) -> Any:
    """An open relayed socket, once Appwrite's `connected` frame has come through."""
    ws = await service.ws_connect(_url(query), headers=_headers(cookie, client_ip))
    assert (await frame(ws))["type"] == "connected"
    return ws


async def refused(
    service: Any, cookie: str, status: int, code: str, query: str = "channels[]=account", client_ip: str | None = None
) -> Any:
    """The handshake's problem answer (a plain GET with the upgrade headers, so the body is readable)."""
    response = await service.get(_url(query), headers={**HANDSHAKE, **_headers(cookie, client_ip)})
    body = await assert_problem(response, status, code)
    return body, response.headers


async def frame(ws: Any, timeout: float = 3.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return dict(json.loads(message.data))


async def open_upstreams(emulator: Any) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(emulator.server.make_url("/_emulator/realtime/connections")) as response:
            body = await response.json()
    return [c for c in (body if isinstance(body, list) else body["connections"]) if c["open"]]


async def close_all(sockets: list[Any]) -> None:
    for ws in sockets:
        await ws.close()


async def reconnects_soon(service: Any, cookie: str, client_ip: str | None = None) -> Any:
    """A socket once a slot is free again: the closed socket's handler finishes just after the close."""
    for _ in range(100):
        try:
            return await connect(service, cookie, client_ip=client_ip)
        except aiohttp.WSServerHandshakeError as error:
            assert error.status in (429, 503), error
        await asyncio.sleep(0.03)
    raise AssertionError("the slot was never given back")


# -- item 2: the channel policy holds for every spelling --------------------------------------------

SPELLINGS = {
    "brackets": "channels[]=secret.things",
    "index": "channels[0]=secret.things",
    "plain": "channels=secret.things",
    "named-index": "channels[x]=secret.things",
    "encoded-brackets": "channels%5B%5D=secret.things",
    "encoded-lowercase": "channels%5b0%5d=secret.things",
    "encoded-name": "%63hannels[]=secret.things",
    "leading-space": "%20channels[]=secret.things",
    "plus-leading-space": "+channels[]=secret.things",
    "space-in-brackets": "channels[%20]=secret.things",
    "tab-in-brackets": "channels[%09]=secret.things",
    "junk-after-index": "channels[0]junk=secret.things",
    "nul-ends-name": "channels%00junk=secret.things",
    "nested": "channels[0][1]=secret.things",
    "after-an-allowed-one": "channels[]=account&channels[1]=secret.things",
    "plain-after-brackets": "channels[]=account&channels=secret.things",
}


@pytest.mark.parametrize("query", SPELLINGS.values(), ids=SPELLINGS.keys())
async def test_every_spelling_of_channels_meets_the_policy(service_factory, emulator, query) -> None:
    service = await service_factory(RELAY_CHANNELS_ALLOW=POLICY)
    _, _, cookie = emulator.signed_in_user()
    body, _ = await refused(service, cookie, 403, "channel_not_allowed", query)
    assert "secret.things" in body["detail"]
    assert not await open_upstreams(emulator)


async def test_the_upstream_url_is_rebuilt_from_the_allowed_channels(service_factory, emulator) -> None:
    service = await service_factory(RELAY_CHANNELS_ALLOW=POLICY)
    user_id, _, cookie = emulator.signed_in_user()
    query = "channels[x]=account&%63hannels[]=account.create&jwt=stolen&project=other&evil[]=1&channels=account"
    ws = await connect(service, cookie, query)
    [upstream] = await open_upstreams(emulator)
    assert upstream["userId"] == user_id
    assert set(upstream["channels"]) == {"account", f"account.{user_id}", f"account.{user_id}.create"}
    [handshake] = await upstream_requests(emulator, "/v1/realtime")
    # Only what the relay checked goes out: the configured project and the channels, one spelling.
    assert set(handshake["query"]) == {"project", "channels[]"}
    assert handshake["query"]["project"] == PROJECT
    await ws.close()


async def test_per_slot_url_queries_of_allowed_channels_still_reach_appwrite(service_factory, emulator) -> None:
    """Web SDK 20-24 put each subscription's queries in the URL as `<channel>[<slot>][]=<query>`."""
    service = await service_factory(RELAY_CHANNELS_ALLOW="account,databases.*")
    _, _, cookie = emulator.signed_in_user()
    wanted = '{"method":"equal","attribute":"x","values":[1]}'
    channel = "databases.db.collections.c.documents"
    query = "&".join(
        [
            "channels[]=account",
            f"channels[]={channel}",
            "account[0][]=" + _quote('{"method":"select","values":["*"]}'),
            f"{channel}[1][]=" + _quote(wanted),
            "files[1][]=" + _quote(wanted),
        ]
    )
    ws = await connect(service, cookie, query)
    [upstream] = await open_upstreams(emulator)
    by_channels = {tuple(s["channels"]): s["queries"] for s in upstream["subscriptions"]}
    assert by_channels[(channel,)] == [wanted]
    await ws.close()


def _quote(text: str) -> str:
    return quote(text, safe="")


async def test_a_binary_subscribe_frame_is_screened_like_a_text_one(service_factory, emulator) -> None:
    service = await service_factory(RELAY_CHANNELS_ALLOW=POLICY)
    user_id, _, cookie = emulator.signed_in_user()
    ws = await connect(service, cookie)
    secret = {"type": "subscribe", "data": [{"subscriptionId": "s1", "channels": ["secret.things"], "queries": []}]}
    await ws.send_bytes(json.dumps(secret).encode())
    assert await frame(ws) == {
        "type": "error",
        "data": {"code": 1008, "message": "Channel not allowed: secret.things"},
    }
    # An allowed subscription in a binary frame still goes through (as text, once read).
    allowed = {"type": "subscribe", "data": [{"subscriptionId": "s2", "channels": ["account"], "queries": []}]}
    await ws.send_bytes(json.dumps(allowed).encode())
    answer = await frame(ws)
    assert answer["type"] == "response" and answer["data"]["to"] == "subscribe"
    [upstream] = await open_upstreams(emulator)
    assert "secret.things" not in upstream["channels"]
    assert upstream["userId"] == user_id
    await ws.close()


async def test_a_binary_authentication_frame_is_dropped_like_a_text_one(service, emulator) -> None:
    user_id, _, cookie = emulator.signed_in_user()
    _, _, other = emulator.signed_in_user("other@example.com")
    ws = await connect(service, cookie)
    await ws.send_bytes(json.dumps({"type": "authentication", "data": {"session": other}}).encode())
    await ws.send_str(json.dumps({"type": "ping"}))
    # The next thing back answers the ping: the authentication frame never reached Appwrite.
    assert (await frame(ws))["type"] == "pong"
    [upstream] = await open_upstreams(emulator)
    assert upstream["userId"] == user_id
    await ws.close()


@pytest.mark.parametrize(
    "sent",
    [
        {"type": "subscribe", "data": {"a": {"channels": ["secret.things"]}}},
        {"type": "subscribe", "data": [{"channels": {"0": "secret.things"}}]},
        {"type": "subscribe", "data": [{"channels": "secret.things"}]},
        {"type": True, "data": [{"channels": ["secret.things"]}]},
    ],
    ids=["data-object", "channels-object", "channels-string", "type-not-a-string"],
)
async def test_frames_the_relay_cannot_read_as_appwrite_would_are_not_forwarded(
    service_factory, emulator, sent
) -> None:
    service = await service_factory(RELAY_CHANNELS_ALLOW=POLICY)
    _, _, cookie = emulator.signed_in_user()
    ws = await connect(service, cookie)
    await ws.send_str(json.dumps(sent))
    error = await frame(ws)
    assert error["type"] == "error"
    assert error["data"]["message"].startswith("The relay")
    await ws.close()


# -- item 5: socket caps per caller and per process --------------------------------------------------


async def test_one_session_cannot_hold_more_than_its_share(service_factory, emulator) -> None:
    service = await service_factory(RELAY_MAX_SOCKETS_PER_SESSION="2", **NO_RATE_LIMITS)
    user_id, _, cookie = emulator.signed_in_user()
    sockets = [await connect(service, cookie) for _ in range(2)]
    body, headers = await refused(service, cookie, 429, "too_many_sockets")
    assert body["scope"] == "session"
    assert int(headers["Retry-After"]) >= 1
    # The same user with another session, and anyone else, still connect.
    _, another_session = emulator.state.create_session(user_id)
    _, _, stranger = emulator.signed_in_user("stranger@example.com")
    sockets += [await connect(service, another_session), await connect(service, stranger)]
    await sockets.pop(0).close()
    sockets.append(await reconnects_soon(service, cookie))
    await close_all(sockets)


async def test_one_user_cannot_hold_more_than_its_share(service_factory, emulator) -> None:
    service = await service_factory(RELAY_MAX_SOCKETS_PER_USER="2", **NO_RATE_LIMITS)
    user_id, _, cookie = emulator.signed_in_user()
    cookies = [cookie] + [emulator.state.create_session(user_id)[1] for _ in range(2)]
    sockets = [await connect(service, cookies[0]), await connect(service, cookies[1])]
    body, headers = await refused(service, cookies[2], 429, "too_many_sockets")
    assert body["scope"] == "user"
    assert int(headers["Retry-After"]) >= 1
    _, _, stranger = emulator.signed_in_user("stranger@example.com")
    sockets.append(await connect(service, stranger))
    await sockets.pop(0).close()
    sockets.append(await reconnects_soon(service, cookies[2]))
    await close_all(sockets)


@pytest.mark.parametrize(
    ("crowd", "neighbour", "outsider"),
    [
        (["203.0.113.7", "203.0.113.7"], "203.0.113.7", "203.0.113.8"),
        # IPv6 callers share the cap per /64 (IPV6_PREFIX_LENGTH), as they share the rate limit.
        (["2001:db8::1", "2001:db8::2"], "2001:db8::ffff", "2001:db8:0:1::1"),
    ],
    ids=["ipv4", "ipv6-network"],
)
async def test_one_client_ip_cannot_hold_more_than_its_share(
    service_factory, emulator, crowd, neighbour, outsider
) -> None:
    service = await service_factory(RELAY_MAX_SOCKETS_PER_IP="2", TRUSTED_PROXIES="127.0.0.1/32", **NO_RATE_LIMITS)
    cookies = [emulator.signed_in_user(f"user{n}@example.com")[2] for n in range(4)]
    sockets = [await connect(service, cookies[n], client_ip=ip) for n, ip in enumerate(crowd)]
    body, headers = await refused(service, cookies[2], 429, "too_many_sockets", client_ip=neighbour)
    assert body["scope"] == "ip"
    assert int(headers["Retry-After"]) >= 1
    sockets.append(await connect(service, cookies[3], client_ip=outsider))
    await sockets.pop(0).close()
    sockets.append(await reconnects_soon(service, cookies[2], client_ip=neighbour))
    await close_all(sockets)


async def test_a_full_relay_says_so(service_factory, emulator) -> None:
    service = await service_factory(RELAY_MAX_SOCKETS="2", **NO_RATE_LIMITS)
    cookies = [emulator.signed_in_user(f"user{n}@example.com")[2] for n in range(3)]
    sockets = [await connect(service, cookies[0]), await connect(service, cookies[1])]
    body, headers = await refused(service, cookies[2], 503, "relay_full")
    assert body["title"] == "The relay is full"
    assert int(headers["Retry-After"]) >= 1
    metrics = await (await service.get("/metrics")).text()
    # Counted by status on the relay's route, where an alert or a dashboard panel can see it.
    assert 'token_exchange_http_responses_total{route="/v1/realtime",status="503"} 1.0' in metrics
    await sockets.pop(0).close()
    sockets.append(await reconnects_soon(service, cookies[2]))
    await close_all(sockets)


async def _handshakes_at_once(service: Any, cookies: list[str]) -> tuple[list[Any], list[int]]:
    """Every handshake started together; the sockets that opened and the statuses of the rest."""

    async def one(cookie: str) -> Any:
        try:
            return await connect(service, cookie)
        except aiohttp.WSServerHandshakeError as error:
            return error.status

    results = await asyncio.gather(*(one(cookie) for cookie in cookies))
    return [r for r in results if not isinstance(r, int)], sorted(r for r in results if isinstance(r, int))


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("RELAY_MAX_SOCKETS_PER_SESSION", 429), ("RELAY_MAX_SOCKETS", 503)],
)
async def test_caps_hold_for_handshakes_in_flight_together(service_factory, emulator, setting, expected) -> None:
    """The issue's reproduction: one session, one IP, all slots at once while Appwrite is slow."""
    service = await service_factory(**{setting: "3"}, **NO_RATE_LIMITS)
    _, _, cookie = emulator.signed_in_user()
    await inject_fault(emulator, kind="latency", ms=200, path="/v1/account")
    opened, statuses = await _handshakes_at_once(service, [cookie] * 8)
    assert len(opened) == 3
    assert statuses == [expected] * 5
    await close_all(opened)


async def test_a_failed_handshake_gives_its_slot_back(service_factory, emulator) -> None:
    service = await service_factory(RELAY_MAX_SOCKETS_PER_SESSION="1", **NO_RATE_LIMITS)
    _, _, cookie = emulator.signed_in_user()
    await inject_fault(emulator, kind="status", status=503, path="/v1/account", times=1)
    await refused(service, cookie, 503, "upstream_unavailable")
    await inject_fault(emulator, kind="status", status=500, path="/v1/realtime", times=1)
    await refused(service, cookie, 502, "upstream_bad_response")
    ws = await connect(service, cookie)
    await ws.close()


async def test_a_handshake_the_client_gives_up_on_gives_its_slot_back(service_factory, emulator) -> None:
    service = await service_factory(RELAY_MAX_SOCKETS_PER_SESSION="1", **NO_RATE_LIMITS)
    _, _, cookie = emulator.signed_in_user()
    await inject_fault(emulator, kind="latency", ms=300, path="/v1/account", times=1)
    abandoned = asyncio.create_task(connect(service, cookie))
    slots = service.app[RELAY_SLOTS]
    for _ in range(500):  # until the handshake holds its slot and is asking Appwrite about the session
        if slots.open == 1 and await upstream_requests(emulator, "/v1/account"):
            break
        await asyncio.sleep(0.01)
    assert slots.open == 1, "the handshake never took its slot"
    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    ws = await reconnects_soon(service, cookie)
    await ws.close()
