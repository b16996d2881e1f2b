"""Queries through the translation: Appwrite 1.9.0 reads channels only from the handshake URL but
applies per-channel queries given there (`<channel>[<slot>][]=<query>`), so the relay writes one
slot per page subscription and routes each event by the server subscriptions it matched; 1.8.x
applies none, so a subscription with queries is refused there."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from appwrite_token_exchange.emulator.keys import REALTIME
from appwrite_token_exchange.relay import translate as relay_translate

from tests.support.publisher import Publisher, events_until_answer, hold_the_swap
from tests.test_relay_url_channels import PUBLIC, frame, open_upstreams, publish, sdk_socket, send

OPEN = json.dumps({"method": "equal", "attribute": "status", "values": ["open"]})
TAGGED = json.dumps({"method": "equal", "attribute": "tag", "values": ["x"]})


@pytest.fixture(params=["1.9.0"])
async def emulator(request, emulator_factory):  # type: ignore[no-untyped-def]
    return await emulator_factory(mode=request.param)


async def subscribe(ws: Any, subscription_id: str, channels: list[str], queries: list[str]) -> dict[str, Any]:
    await send(ws, "subscribe", [{"subscriptionId": subscription_id, "channels": channels, "queries": queries}])
    return await frame(ws)


async def test_each_event_carries_exactly_the_subscriptions_whose_queries_it_matches(service, emulator) -> None:
    ws, _ = await sdk_socket(service, emulator)
    assert (await subscribe(ws, "all", [PUBLIC], []))["data"]["success"] is True
    response = await subscribe(ws, "open", [PUBLIC], [OPEN])
    assert response["data"]["subscriptions"] == [{"subscriptionId": "open", "channels": [PUBLIC], "queries": [OPEN]}]
    # One upstream socket, holding the filtered subscription itself (the server applies the query).
    [upstream] = open_upstreams(emulator)
    assert [OPEN] in [s["queries"] for s in upstream["subscriptions"]]
    for status in ("open", "closed", "open", "draft"):
        await publish(emulator, channels=[PUBLIC], payload={"status": status})
    received = [await frame(ws) for _ in range(4)]
    assert [(r["data"]["payload"]["status"], r["data"]["subscriptions"]) for r in received] == [
        ("open", ["all", "open"]),
        ("closed", ["all"]),
        ("open", ["all", "open"]),
        ("draft", ["all"]),
    ]
    await ws.close()


async def test_an_event_no_subscription_matches_never_reaches_the_page(service, emulator) -> None:
    ws, _ = await sdk_socket(service, emulator)
    await subscribe(ws, "open", [PUBLIC], [OPEN])
    await publish(emulator, channels=[PUBLIC], payload={"status": "closed"})
    await publish(emulator, channels=[PUBLIC], payload={"status": "open"})
    event = await frame(ws)
    assert event["data"]["payload"] == {"status": "open"}
    assert event["data"]["subscriptions"] == ["open"]
    await ws.close()


async def test_a_query_on_a_channel_already_carried_reopens_upstream(service, emulator) -> None:
    ws, user_id = await sdk_socket(service, emulator)
    await subscribe(ws, "s1", ["account"], [])
    [before] = open_upstreams(emulator)
    assert (await subscribe(ws, "s2", ["account"], [TAGGED]))["data"]["subscriptions"][0]["queries"] == [TAGGED]
    [after] = open_upstreams(emulator)
    assert after["id"] != before["id"]
    await publish(emulator, userId=user_id, payload={"tag": "y"})
    await publish(emulator, userId=user_id, payload={"tag": "x"})
    assert [(await frame(ws))["data"]["subscriptions"] for _ in range(2)] == [["s1"], ["s1", "s2"]]
    # Unsubscribing only stops routing, as for subscriptions without queries.
    await send(ws, "unsubscribe", [{"subscriptionId": "s1"}])
    assert (await frame(ws))["data"]["to"] == "unsubscribe"
    await publish(emulator, userId=user_id, payload={"tag": "y"})
    await publish(emulator, userId=user_id, payload={"tag": "x", "last": True})
    event = await frame(ws)
    assert event["data"]["payload"] == {"tag": "x", "last": True}
    assert event["data"]["subscriptions"] == ["s2"]
    await ws.close()


async def test_a_swap_to_query_slots_loses_and_doubles_nothing(service, emulator, monkeypatch) -> None:
    ws, user_id = await sdk_socket(service, emulator)
    await subscribe(ws, "s1", ["account"], [])
    before = {c["id"] for c in open_upstreams(emulator)}
    publisher = Publisher(lambda payload: publish(emulator, userId=user_id, payload=payload))
    hold_the_swap(monkeypatch, publisher)
    async with publisher:
        await send(ws, "subscribe", [{"subscriptionId": "s2", "channels": ["account"], "queries": [TAGGED]}])
        events, response = await events_until_answer(lambda: frame(ws))
        assert all(event["data"]["subscriptions"] == ["s1"] for event in events)
        seen = [event["data"]["payload"]["n"] for event in events]
        assert response["data"]["subscriptions"] == [
            {"subscriptionId": "s2", "channels": ["account"], "queries": [TAGGED]}
        ]
        await publisher.published(3)
    # Events were published while the old and the new upstream socket were both open.
    assert max(publisher.delivered) > publisher.delivered[0], publisher.delivered
    await publish(emulator, userId=user_id, payload={"tag": "x"})
    while True:
        received = await frame(ws)
        if "tag" in received["data"]["payload"]:
            assert received["data"]["subscriptions"] == ["s1", "s2"]
            break
        # None of these match s2's query.
        assert received["data"]["subscriptions"] == ["s1"]
        seen.append(received["data"]["payload"]["n"])
    # Every event published while the upstream socket was swapped arrived, exactly once, in order.
    assert seen == list(range(publisher.sent))
    [after] = open_upstreams(emulator)
    assert after["id"] not in before
    await ws.close()


async def test_an_event_on_both_sockets_reaches_each_subscription_once(service, emulator, monkeypatch) -> None:
    ws, user_id = await sdk_socket(service, emulator)
    await subscribe(ws, "s1", ["account"], [])
    real = relay_translate.connect_upstream

    async def connect_then_publish(*args: Any) -> Any:
        # Registered on the new socket, not yet switched to: the old socket passes it on for s1
        # only (it applies no query), the new one also for s2.
        new = await real(*args)
        await asyncio.sleep(0.1)
        hub = emulator.app[REALTIME]
        assert await hub.publish(["account", f"account.{user_id}"], [], {"tag": "x"}, [f"user:{user_id}"]) == 2
        return new

    monkeypatch.setattr(relay_translate, "connect_upstream", connect_then_publish)
    await send(ws, "subscribe", [{"subscriptionId": "s2", "channels": ["account"], "queries": [TAGGED]}])
    received = [await frame(ws) for _ in range(3)]
    events = [r["data"]["subscriptions"] for r in received if r["type"] == "event"]
    assert sorted(events) == [["s1"], ["s2"]]
    await publish(emulator, userId=user_id, payload={"after": True})
    # The next event is the one published after the swap: no copy of the first was left over.
    after = await frame(ws)
    assert after["data"]["payload"] == {"after": True}
    assert after["data"]["subscriptions"] == ["s1"]
    await ws.close()


@pytest.mark.parametrize("emulator", ["1.8.1"], indirect=True)
async def test_1_8_refuses_a_subscription_with_queries_and_says_why(service, emulator) -> None:
    ws, _ = await sdk_socket(service, emulator)
    refused = await subscribe(ws, "s1", [PUBLIC], [OPEN])
    assert refused["type"] == "error" and refused["data"]["code"] == 1003
    assert "cannot filter Realtime events by query" in refused["data"]["message"]
    # Without queries the same subscription holds.
    assert (await subscribe(ws, "s1", [PUBLIC], []))["data"]["success"] is True
    await ws.close()


async def test_an_unknown_version_refuses_queries(service_factory, emulator) -> None:
    # `yes` translates without asking the version, so the relay cannot tell whether queries apply.
    service = await service_factory(APPWRITE_REALTIME_CHANNELS_IN_URL="yes")
    ws, _ = await sdk_socket(service, emulator)
    refused = await subscribe(ws, "s1", [PUBLIC], [OPEN])
    assert refused["type"] == "error"
    assert "could not tell whether this Appwrite server applies Realtime queries" in refused["data"]["message"]
    await ws.close()


async def test_queries_past_the_url_limit_are_refused(service, emulator) -> None:
    ws, _ = await sdk_socket(service, emulator)
    huge = json.dumps({"method": "equal", "attribute": "status", "values": ["x" * relay_translate.MAX_URL_BYTES]})
    refused = await subscribe(ws, "s1", [PUBLIC], [huge])
    assert refused["type"] == "error" and refused["data"]["code"] == 1008
    assert "do not fit" in refused["data"]["message"]
    # The page's subscriptions are as before the refused frame.
    assert (await subscribe(ws, "s2", [PUBLIC], [OPEN]))["data"]["success"] is True
    await publish(emulator, channels=[PUBLIC], payload={"status": "open"})
    assert (await frame(ws))["data"]["subscriptions"] == ["s2"]
    await ws.close()


async def test_a_channel_whose_query_parameter_appwrite_would_misread_is_refused(service, emulator) -> None:
    ws, _ = await sdk_socket(service, emulator)
    refused = await subscribe(ws, "s1", ["files[0]"], [OPEN])
    assert refused["type"] == "error" and refused["data"]["code"] == 1008
    assert "cannot carry queries" in refused["data"]["message"]
    await ws.close()
