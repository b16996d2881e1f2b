"""The relay in front of servers that take channels only in the handshake URL (1.8.x, 1.9.0):
the page talks to it as web SDK >= 25 talks to a newer server (no channels in the URL, `subscribe`
frames), and the relay opens the upstream socket with the page's channels in the URL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from appwrite_token_exchange.emulator.keys import REALTIME
from appwrite_token_exchange.relay import translate as relay_translate
from appwrite_token_exchange.settings import Settings, SettingsError

from tests.support.publisher import Publisher, events_until_answer, hold_the_swap
from tests.support.service import COOKIE, PROJECT

ALLOWED = "https://app.example.com"
# Emulator modes whose Realtime refuses a socket without `channels[]` in its URL and reads no
# `subscribe` frames. The lead adds "1.9.0" here once the emulator plays it.
URL_CHANNELS_ONLY_MODES = ["1.8", "1.9.0"]
ALL_MODES = ["cloud", "1.9", "1.8"]
PUBLIC = "databases.db.collections.public.documents"


@pytest.fixture(params=URL_CHANNELS_ONLY_MODES)
async def emulator(request, emulator_factory):  # type: ignore[no-untyped-def]
    return await emulator_factory(mode=request.param)


async def connect(service: Any, cookie: str, query: str = "") -> Any:
    headers = {"Origin": ALLOWED, "Cookie": f"{COOKIE}={cookie}"}
    return await service.ws_connect(f"/v1/realtime?project={PROJECT}{query}", headers=headers)


async def frame(ws: Any, timeout: float = 3.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return dict(json.loads(message.data))


async def send(ws: Any, kind: str, data: Any) -> None:
    await ws.send_str(json.dumps({"type": kind, "data": data}))


async def subscribe(ws: Any, subscription_id: str, *channels: str) -> dict[str, Any]:
    await send(ws, "subscribe", [{"subscriptionId": subscription_id, "channels": list(channels), "queries": []}])
    return await frame(ws)


async def publish(emulator: Any, **body: Any) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(emulator.server.make_url("/_emulator/realtime/publish"), json=body) as response:
            assert response.status == 200, await response.text()
            return int((await response.json())["delivered"])


def open_upstreams(emulator: Any) -> list[dict[str, Any]]:
    return [c for c in emulator.app[REALTIME].history(open_only=True)]


async def sdk_socket(service: Any, emulator: Any) -> tuple[Any, str]:
    """A page socket opened as web SDK >= 25 opens it (`?project=` only), once `connected` came."""
    user_id, _, cookie = emulator.signed_in_user()
    ws = await connect(service, cookie)
    connected = await frame(ws)
    assert connected["type"] == "connected", connected
    assert connected["data"]["user"]["$id"] == user_id
    return ws, user_id


@pytest.mark.parametrize("emulator", list(dict.fromkeys(ALL_MODES + URL_CHANNELS_ONLY_MODES)), indirect=True)
async def test_an_sdk_style_socket_subscribes_and_gets_routed_events_on_every_server(service, emulator) -> None:
    ws, user_id = await sdk_socket(service, emulator)
    response = await subscribe(ws, "s1", "account")
    assert response["type"] == "response", response
    assert response["data"]["to"] == "subscribe" and response["data"]["success"] is True
    assert [s["subscriptionId"] for s in response["data"]["subscriptions"]] == ["s1"]
    assert await publish(emulator, userId=user_id, payload={"n": 1}) == 1
    event = await frame(ws)
    assert event["type"] == "event"
    assert event["data"]["payload"] == {"n": 1}
    # The SDK routes an event to the callbacks of the ids it carries.
    assert event["data"]["subscriptions"] == ["s1"]
    await ws.close()


async def test_the_upstream_socket_carries_the_pages_channels_in_its_url(service, emulator) -> None:
    ws, user_id = await sdk_socket(service, emulator)
    assert (await subscribe(ws, "s1", "account", PUBLIC))["data"]["success"] is True
    [upstream] = open_upstreams(emulator)
    assert upstream["userId"] == user_id
    assert PUBLIC in upstream["channels"]
    assert await publish(emulator, channels=[PUBLIC], payload={"public": True}) == 1
    event = await frame(ws)
    assert event["data"]["subscriptions"] == ["s1"]
    await ws.close()


async def test_a_new_subscription_reopens_upstream_without_losing_or_doubling_events(
    service, emulator, monkeypatch
) -> None:
    ws, user_id = await sdk_socket(service, emulator)
    await subscribe(ws, "s1", "account")
    before = {c["id"] for c in open_upstreams(emulator)}
    publisher = Publisher(lambda payload: publish(emulator, userId=user_id, payload=payload))
    hold_the_swap(monkeypatch, publisher)
    async with publisher:
        await send(ws, "subscribe", [{"subscriptionId": "s2", "channels": [PUBLIC], "queries": []}])
        events, response = await events_until_answer(lambda: frame(ws))
        seen = [event["data"]["payload"]["n"] for event in events]
        assert response["data"]["to"] == "subscribe"
        assert [s["subscriptionId"] for s in response["data"]["subscriptions"]] == ["s2"]
        # Some more on the new socket alone, after the switch.
        await publisher.published(3)
    # Events were published during the swap: each before it reached the old socket only, those
    # during it both sockets, those after it the new one only.
    assert publisher.delivered[0] == 1 and publisher.delivered[-1] == 1
    assert 2 in publisher.delivered, publisher.delivered
    await publish(emulator, channels=[PUBLIC], payload={"last": True})
    while True:
        received = await frame(ws)
        if "last" in received["data"]["payload"]:
            assert received["data"]["subscriptions"] == ["s2"]
            break
        assert received["data"]["subscriptions"] == ["s1"]
        seen.append(received["data"]["payload"]["n"])
    # Every event published while the upstream socket was swapped arrived, exactly once, in order.
    assert seen == list(range(publisher.sent))
    [after] = open_upstreams(emulator)
    assert after["id"] not in before
    await ws.close()


async def test_unsubscribe_stops_the_events_of_that_subscription(service, emulator) -> None:
    ws, user_id = await sdk_socket(service, emulator)
    await subscribe(ws, "s1", "account")
    await subscribe(ws, "s2", PUBLIC)
    await send(ws, "unsubscribe", [{"subscriptionId": "s1"}])
    answer = await frame(ws)
    assert answer["data"] == {
        "to": "unsubscribe",
        "success": True,
        "subscriptions": [{"subscriptionId": "s1", "removed": True}],
    }
    await publish(emulator, userId=user_id, payload={"gone": True})
    await publish(emulator, channels=[PUBLIC], payload={"kept": True})
    event = await frame(ws)
    assert event["data"]["payload"] == {"kept": True}
    assert event["data"]["subscriptions"] == ["s2"]
    await ws.close()


async def test_subscribe_frames_meet_the_channel_policy(service_factory, emulator) -> None:
    service = await service_factory(RELAY_CHANNELS_ALLOW="account")
    ws, _ = await sdk_socket(service, emulator)
    refused = await subscribe(ws, "s1", "files")
    assert refused == {"type": "error", "data": {"code": 1008, "message": "Channel not allowed: files"}}
    assert all("files" not in c["channels"] for c in open_upstreams(emulator))
    assert (await subscribe(ws, "s2", "account"))["data"]["success"] is True
    await ws.close()


@pytest.mark.parametrize("emulator", ["1.8"], indirect=True)
async def test_queries_are_refused_where_the_server_cannot_apply_them(service, emulator) -> None:
    # 1.9.0 applies them (tests/test_relay_url_queries.py).
    ws, _ = await sdk_socket(service, emulator)
    await send(ws, "subscribe", [{"subscriptionId": "s1", "channels": ["account"], "queries": ['{"method":"equal"}']}])
    refused = await frame(ws)
    assert refused["type"] == "error" and refused["data"]["code"] == 1003
    assert "cannot filter Realtime events by query" in refused["data"]["message"]
    await ws.close()


async def test_pages_that_put_channels_in_the_url_are_relayed_as_before(service, emulator) -> None:
    user_id, _, cookie = emulator.signed_in_user()
    ws = await connect(service, cookie, "&channels[]=account")
    assert (await frame(ws))["data"]["channels"]
    await publish(emulator, userId=user_id, payload={"n": 1})
    assert (await frame(ws))["data"]["payload"] == {"n": 1}
    await ws.close()


async def test_without_the_translation_the_server_refuses_the_sdk(service_factory, emulator) -> None:
    service = await service_factory(APPWRITE_REALTIME_CHANNELS_IN_URL="no")
    _, _, cookie = emulator.signed_in_user()
    ws = await connect(service, cookie)
    refused = await frame(ws)
    assert refused == {"type": "error", "data": {"code": 1008, "message": "Missing channels"}}
    await ws.close()


@pytest.mark.parametrize("emulator", ["cloud", "1.9"], indirect=True)
async def test_auto_forwards_subscribe_frames_to_servers_that_read_them(service, emulator) -> None:
    ws, _ = await sdk_socket(service, emulator)
    await subscribe(ws, "s1", "account")
    [upstream] = open_upstreams(emulator)
    # The server itself holds the page's subscription: the relay translated nothing.
    assert [s["subscriptionId"] for s in upstream["subscriptions"]] == ["s1"]
    await ws.close()


@pytest.mark.parametrize("emulator", ["cloud"], indirect=True)
async def test_yes_translates_on_any_server(service_factory, emulator) -> None:
    service = await service_factory(APPWRITE_REALTIME_CHANNELS_IN_URL="yes")
    ws, user_id = await sdk_socket(service, emulator)
    await subscribe(ws, "s1", "account")
    [upstream] = open_upstreams(emulator)
    assert "s1" not in [s["subscriptionId"] for s in upstream["subscriptions"]]
    await publish(emulator, userId=user_id, payload={"n": 1})
    assert (await frame(ws))["data"]["subscriptions"] == ["s1"]
    await ws.close()


@pytest.mark.parametrize("value", ["maybe", "1"])
def test_the_setting_is_validated(value: str) -> None:
    env = {"APPWRITE_ENDPOINT": "https://aw.example.com/v1", "APPWRITE_PROJECT_ID": "p"}
    with pytest.raises(SettingsError, match="APPWRITE_REALTIME_CHANNELS_IN_URL"):
        Settings.from_env({**env, "APPWRITE_REALTIME_CHANNELS_IN_URL": value})
    assert Settings.from_env(env).relay_channels_in_url == "auto"


async def test_an_event_read_on_both_sockets_during_a_swap_reaches_the_page_once(
    service, emulator, monkeypatch
) -> None:
    ws, user_id = await sdk_socket(service, emulator)
    await subscribe(ws, "s1", "account")
    real = relay_translate.connect_upstream

    async def connect_then_publish(*args: Any) -> Any:
        # Once the new socket is registered but before the relay switched: both sockets get it.
        new = await real(*args)
        await asyncio.sleep(0.1)
        hub = emulator.app[REALTIME]
        assert await hub.publish(["account", f"account.{user_id}"], [], {"both": True}, [f"user:{user_id}"]) == 2
        return new

    monkeypatch.setattr(relay_translate, "connect_upstream", connect_then_publish)
    await send(ws, "subscribe", [{"subscriptionId": "s2", "channels": [PUBLIC], "queries": []}])
    received = [await frame(ws), await frame(ws)]
    assert [r["type"] for r in received] == ["event", "response"]
    await publish(emulator, channels=[PUBLIC], payload={"after": True})
    # The next event is the one published after the swap: the copy on the other socket was dropped.
    assert (await frame(ws))["data"]["payload"] == {"after": True}
    await ws.close()
