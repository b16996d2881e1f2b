"""Appwrite's own Realtime e2e assertions, ported: each test names the Appwrite test it comes from.

Source: appwrite/appwrite `tests/e2e/Services/Realtime/*.php` on the tags 1.8.1, 1.9.0, 1.9.6,
cl-1.9.6-1 and `main`. A test runs in every emulator mode whose server has that Appwrite test (or,
where a later tag changed an assertion, with that tag's expectation). The 2.x source is not read:
`2.2.0` runs `main`'s tests. 1.9.5's tests are not read either: it runs 1.9.6's frame-subscribing
tests, since tag 1.9.5 has message-based subscribe (`Realtime/Message/Handlers/Subscribe.php`), but
not the `?jwt=` ones (PR #12664 is Cloud, `main` and 2.x only). Only the assertions are
ported; the code is ours. Appwrite's suite runs with `_APP_DOMAIN=localhost` and sends
`Origin: http://localhost`, so every socket here does too, with `localhost` registered as a Web
platform (the Cloud line does not trust `localhost` by itself).

Events come from `/_emulator/realtime/publish` where Appwrite's tests change an account (`PATCH
/account/name` publishes `users.<id>.update.name` with the account as payload to `account` and
`account.<id>`, role `user:<id>`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from appwrite_token_exchange.emulator.models import account_model

from tests.support.emulator_client import PROJECT, Emu, EmuFactory

ALL = ("main", "2.2.0", "cl-1.9.6", "1.9.6", "1.9.5", "1.9.0", "1.8.1")
SINCE_1_9_0 = ("main", "2.2.0", "cl-1.9.6", "1.9.6", "1.9.5", "1.9.0")
SINCE_1_9_5 = ("main", "2.2.0", "cl-1.9.6", "1.9.6", "1.9.5")
WITH_JWT_QUERY = ("main", "2.2.0", "cl-1.9.6")
ORIGIN = {"Origin": "http://localhost"}
BASE = "RealtimeBase.php"
CUSTOM = "RealtimeCustomClientTest.php"
QUERY = "RealtimeCustomClientQueryTest.php"
MESSAGE = "RealtimeCustomClientQueryTestWithMessage.php"


def ported(source: str, method: str, modes: Sequence[str]) -> Callable[[Any], Any]:
    """Run the test once per mode that plays a server whose suite has `source::method`."""

    def mark(test: Any) -> Any:
        test.appwrite_test = f"tests/e2e/Services/Realtime/{source}::{method}"
        return pytest.mark.parametrize("mode", modes)(test)

    return mark


def q(method: str, attribute: str | None = None, values: list[Any] | None = None) -> str:
    """Utopia's Query::toString()."""
    query: dict[str, Any] = {"method": method}
    if attribute is not None:
        query["attribute"] = attribute
    query["values"] = values if values is not None else []
    return json.dumps(query, separators=(",", ":"))


def nested(method: str, *queries: str) -> str:
    return json.dumps({"method": method, "values": [json.loads(query) for query in queries]}, separators=(",", ":"))


async def start(emu_factory: EmuFactory, mode: str) -> Emu:
    emu = await emu_factory(mode=mode)
    response = await emu.control("POST", "/platforms", json={"hostname": "localhost"})
    assert response.status == 201
    return emu


def cookie_header(cookie: str) -> dict[str, str]:
    return {**ORIGIN, "Cookie": f"a_session_{PROJECT}={cookie}"}


async def socket(
    emu: Emu,
    channels: Sequence[str] = (),
    headers: dict[str, str] | None = None,
    project: str = PROJECT,
    queries: Sequence[str] | None = None,
    **query: str,
) -> ClientWebSocketResponse:
    """RealtimeBase::getWebsocket / getWebsocketWithCustomQuery: queries go to the first channel's slot 0."""
    params = [("project", project), *(("channels[]", channel) for channel in channels), *query.items()]
    if queries is not None and channels:
        params += [(f"{channels[0]}[0][]", value) for value in (queries or [q("select", values=["*"])])]
    return await emu.client.ws_connect("/v1/realtime", params=params, headers=ORIGIN if headers is None else headers)


async def receive(ws: ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=2)
    assert message.type == WSMsgType.TEXT, message
    return dict(json.loads(message.data))


async def send(ws: ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(json.dumps(frame))
    return await receive(ws)


async def subscribe(ws: ClientWebSocketResponse, items: list[dict[str, Any]]) -> dict[str, Any]:
    """RealtimeCustomClientQueryTestWithMessage::sendSubscribeMessage."""
    response = await send(ws, {"type": "subscribe", "data": items})
    assert response["type"] == "response"
    assert response["data"]["to"] == "subscribe"
    assert response["data"]["success"] is True
    assert isinstance(response["data"]["subscriptions"], list)
    return response


async def unsubscribe(ws: ClientWebSocketResponse, items: Any) -> dict[str, Any]:
    return await send(ws, {"type": "unsubscribe", "data": items})


async def assert_disconnected(ws: ClientWebSocketResponse) -> None:
    """`expectException(ConnectionException::class)`: the server dropped the socket."""
    closing = await ws.receive(timeout=2)
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)


async def account_event(emu: Emu, user_id: str) -> None:
    """What `PATCH /account/name` makes Appwrite publish."""
    payload = account_model(emu.state.user(user_id))
    response = await emu.control(
        "POST",
        "/realtime/publish",
        json={"userId": user_id, "events": [f"users.{user_id}.update.name", "users.*"], "payload": payload},
    )
    assert response.status == 200


# --- RealtimeBase.php --------------------------------------------------------------------------


@ported(BASE, "testConnection", ALL)
async def test_connection(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    ws = await socket(emu, ["rows"])
    assert await receive(ws)


@ported(BASE, "testConnectionFailureMissingChannels", ("1.9.0", "1.8.1"))
async def test_connection_failure_missing_channels(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    ws = await socket(emu, [])
    payload = await receive(ws)
    assert payload["type"] == "error"
    assert payload["data"]["code"] == 1008
    assert payload["data"]["message"] == "Missing channels"
    await assert_disconnected(ws)


@ported(BASE, "testConnectionSuccessMissingChannels", SINCE_1_9_5)
async def test_connection_success_missing_channels(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    payload = await receive(await socket(emu, []))
    assert "data" in payload
    assert payload["type"] == "connected"


@ported(BASE, "testConnectionFailureUnknownProject", ALL)
async def test_connection_failure_unknown_project(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    ws = await socket(emu, ["documents"], project="123")
    payload = await receive(ws)
    assert payload["type"] == "error"
    assert payload["data"]["code"] == 1008
    assert payload["data"]["message"] == "Missing or unknown project ID"
    await assert_disconnected(ws)


@ported(BASE, "testConnectionRegionCheck", SINCE_1_9_0)
async def test_connection_region_check(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    response = await receive(await socket(emu, ["documents"]))
    assert response["type"] == "connected"
    assert response["data"]
    assert "documents" in response["data"]["channels"]


# --- RealtimeCustomClientTest.php ----------------------------------------------------------------


@ported(CUSTOM, "testChannelParsing", ALL)
async def test_channel_parsing(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    user, _, cookie = emu.signed_in()
    headers = cookie_header(cookie)

    response = await receive(await socket(emu, ["documents"], headers))
    assert response["type"] == "connected"
    assert response["data"]["user"]["$id"] == user.id
    assert response["data"]["channels"] == ["documents"]

    response = await receive(await socket(emu, ["account"], headers))
    assert sorted(response["data"]["channels"]) == sorted(["account", f"account.{user.id}"])
    assert response["data"]["user"]["$id"] == user.id

    response = await receive(await socket(emu, ["account", "documents", "account.123"], headers))
    assert sorted(response["data"]["channels"]) == sorted(["documents", "account", f"account.{user.id}"])

    many = [
        "account",
        "files",
        "files.1",
        "collections",
        "tables",
        "collections.1.documents",
        "collections.2.documents",
        "tables.1.rows",
        "tables.2.rows",
        "documents",
        "rows",
        "collections.1.documents.1",
        "collections.2.documents.2",
        "tables.1.rows.1",
        "tables.2.rows.2",
    ]
    response = await receive(await socket(emu, many, headers))
    channels = response["data"]["channels"]
    assert isinstance(channels, list) and len(channels) == 16  # a JSON list, not an object
    assert set(channels) == {*many, f"account.{user.id}"}
    assert response["data"]["user"]["$id"] == user.id


@ported(CUSTOM, "testPingPong", ALL)
async def test_ping_pong(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    ws = await socket(emu, ["files"])
    response = await receive(ws)
    assert response["type"] == "connected"
    assert response["data"]["channels"] == ["files"]
    assert (await send(ws, {"type": "ping"}))["type"] == "pong"


@ported(CUSTOM, "testManualAuthentication", ALL)
async def test_manual_authentication(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    user, _, cookie = emu.signed_in()
    ws = await socket(emu, ["account"])
    response = await receive(ws)
    assert response["type"] == "connected"
    assert response["data"]["channels"] == ["account"]

    response = await send(ws, {"type": "authentication", "data": {"session": cookie}})
    assert response["type"] == "response"
    assert response["data"]["to"] == "authentication"
    assert response["data"]["success"] is True
    assert response["data"]["user"]["$id"] == user.id

    response = await send(ws, {"type": "authentication", "data": {"session": "invalid_session"}})
    assert response == {"type": "error", "data": {"code": 1003, "message": "Session is not valid."}}

    # 1.9.5 moved frames to a dispatcher (Realtime/Message/Handlers) that names the missing
    # parameter; read at 1.9.6, inferred for 1.9.5.
    expected = "Payload is not valid. Session is required" if mode in SINCE_1_9_5 else "Payload is not valid."
    response = await send(ws, {"type": "authentication", "data": {}})
    assert response == {"type": "error", "data": {"code": 1003, "message": expected}}

    response = await send(ws, {"type": "unknown", "data": {"session": "invalid_session"}})
    assert response == {"type": "error", "data": {"code": 1003, "message": "Message type is not valid."}}

    response = await send(ws, {"test": "123"})
    assert response == {"type": "error", "data": {"code": 1003, "message": "Message format is not valid."}}


@ported(CUSTOM, "testConnectionJWT", WITH_JWT_QUERY)
async def test_connection_jwt(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    user, _, cookie = emu.signed_in()
    minted = await emu.mint(cookie)
    assert minted.status == 201
    jwt = (await minted.json())["jwt"]

    response = await receive(await socket(emu, ["account"], {**ORIGIN, "X-Appwrite-JWT": jwt}))
    assert response["type"] == "connected"
    assert response["data"]["user"]["$id"] == user.id
    assert {"account", f"account.{user.id}"} <= set(response["data"]["channels"])

    response = await receive(await socket(emu, ["account"], jwt=jwt))
    assert response["type"] == "connected"
    assert response["data"]["user"]["$id"] == user.id
    assert {"account", f"account.{user.id}"} <= set(response["data"]["channels"])

    ws = await socket(emu, ["account"], jwt="invalid-token")
    response = await receive(ws)
    assert response["type"] == "error"
    assert response["data"]["code"] == 401
    await assert_disconnected(ws)


@ported(CUSTOM, "testConnectionPlatform", ALL)
async def test_connection_platform(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    ws = await socket(emu, ["documents"], {"Origin": "http://appwrite.unknown"})
    payload = await receive(ws)
    assert payload["type"] == "error"
    assert payload["data"]["code"] == 1008
    assert payload["data"]["message"] == (
        "Invalid Origin. Register your new client (appwrite.unknown) as a new Web platform on your project console"
        " dashboard"
    )
    await assert_disconnected(ws)


# --- RealtimeCustomClientQueryTest.php (URL subscriptions with queries) --------------------------

INVALID_QUERIES = [
    (q("contains", "status", ["active"]), ("contains",)),
    (nested("and", q("equal", "status", ["active"]), q("search", "name", ["test"])), ("search",)),
    (nested("or", q("equal", "status", ["active"]), q("between", "score", [0, 100])), ("between",)),
    (
        nested(
            "and",
            q("equal", "status", ["active"]),
            nested("or", q("greaterThan", "score", [50]), q("startsWith", "name", ["test"])),
        ),
        ("startsWith",),
    ),
    (
        nested(
            "and",
            q("contains", "tags", ["important"]),
            nested("or", q("endsWith", "email", ["@example.com"]), q("equal", "status", ["active"])),
        ),
        ("contains", "endsWith"),
    ),
]


@ported(QUERY, "testInvalidQueryShouldNotSubscribe", SINCE_1_9_0)
async def test_invalid_query_should_not_subscribe_url(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    _, _, cookie = emu.signed_in()
    for query, named in INVALID_QUERIES:
        ws = await socket(emu, ["documents"], cookie_header(cookie), queries=[query])
        response = await receive(ws)
        assert response["type"] == "error"
        assert response["data"]["code"] == 1008
        assert "not supported in Realtime queries" in response["data"]["message"]
        assert any(method in response["data"]["message"] for method in named)
        await ws.close()


@ported(MESSAGE, "testProjectChannelWithHeaderOnly", SINCE_1_9_5)
async def test_project_channel_with_header_only(emu_factory: EmuFactory, mode: str) -> None:
    """Also RealtimeCustomClientQueryTest.php::testProjectChannelWithHeaderOnly (same assertions)."""
    emu = await start(emu_factory, mode)
    _, _, cookie = emu.signed_in()
    for _ in range(2):
        ws = await socket(emu, [], {**cookie_header(cookie), "X-Appwrite-Project": PROJECT})
        assert (await receive(ws))["type"] == "connected"
        response = await subscribe(ws, [{"channels": ["project"], "queries": [q("select", values=["*"])]}])
        assert len(response["data"]["subscriptions"]) == 1
        assert response["data"]["subscriptions"][0]["channels"] == ["project"]
        await ws.close()


# --- RealtimeCustomClientQueryTestWithMessage.php (subscribe / unsubscribe frames) --------------


@ported(MESSAGE, "testInvalidQueryShouldNotSubscribe", SINCE_1_9_5)
async def test_invalid_query_should_not_subscribe_message(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    _, _, cookie = emu.signed_in()
    for query, named in INVALID_QUERIES:
        ws = await socket(emu, [], cookie_header(cookie))
        assert (await receive(ws))["type"] == "connected"
        response = await send(ws, {"type": "subscribe", "data": [{"channels": ["documents"], "queries": [query]}]})
        assert response["type"] == "error"
        assert response["data"]["message"].startswith("Invalid query: ")
        assert "not supported in Realtime queries" in response["data"]["message"]
        assert any(method in response["data"]["message"] for method in named)
        await ws.close()


@ported(MESSAGE, "testConnectionJWT", WITH_JWT_QUERY)
async def test_connection_jwt_then_subscribe(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    user, _, cookie = emu.signed_in()
    jwt = (await (await emu.mint(cookie)).json())["jwt"]
    for ws in (await socket(emu, [], {**ORIGIN, "X-Appwrite-JWT": jwt}), await socket(emu, [], jwt=jwt)):
        connected = await receive(ws)
        assert connected["type"] == "connected"
        assert connected["data"]["user"]["$id"] == user.id
        response = await subscribe(ws, [{"channels": ["account"]}])
        assert "account" in response["data"]["subscriptions"][0]["channels"]
        await ws.close()
    ws = await socket(emu, [], jwt="invalid-token")
    error = await receive(ws)
    assert error["type"] == "error"
    assert error["data"]["code"] == 401
    await assert_disconnected(ws)


@ported(MESSAGE, "testSubscribeMessageUpsertCreateAndEdgeCases", SINCE_1_9_5)
async def test_subscribe_message_upsert_create_and_edge_cases(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    _, _, cookie = emu.signed_in()
    ws = await socket(emu, [], cookie_header(cookie))
    assert (await receive(ws))["type"] == "connected"

    initial = await subscribe(ws, [{"channels": ["documents"], "queries": [q("select", values=["*"])]}])
    initial_id = initial["data"]["subscriptions"][0]["subscriptionId"]
    assert initial_id

    for status in ("q1", "q2"):
        queries = [q("equal", "status", [status])]
        reply = await subscribe(ws, [{"subscriptionId": initial_id, "channels": ["documents"], "queries": queries}])
        assert len(reply["data"]["subscriptions"]) == 1
        assert reply["data"]["subscriptions"][0]["subscriptionId"] == initial_id
        assert reply["data"]["subscriptions"][0]["queries"] == queries

    omitted = await subscribe(ws, [{"channels": ["documents"], "queries": [q("equal", "status", ["omitted-slot"])]}])
    minted = omitted["data"]["subscriptions"][0]["subscriptionId"]
    assert minted and minted != initial_id

    explicit_id, explicit = "explicitNewId0001", [q("equal", "status", ["explicit"])]
    reply = await subscribe(ws, [{"subscriptionId": explicit_id, "channels": ["documents"], "queries": explicit}])
    assert reply["data"]["subscriptions"][0]["subscriptionId"] == explicit_id
    assert reply["data"]["subscriptions"][0]["queries"] == explicit

    first, second = [q("equal", "status", ["dup-a"])], [q("equal", "status", ["dup-b"])]
    reply = await subscribe(
        ws,
        [
            {"subscriptionId": initial_id, "channels": ["documents"], "queries": first},
            {"subscriptionId": initial_id, "channels": ["documents"], "queries": second},
        ],
    )
    assert [s["subscriptionId"] for s in reply["data"]["subscriptions"]] == [initial_id, initial_id]
    assert reply["data"]["subscriptions"][1]["queries"] == second

    reply = await subscribe(
        ws,
        [
            {"subscriptionId": initial_id, "channels": ["documents"], "queries": [q("equal", "status", ["mixed"])]},
            {"channels": ["documents"], "queries": [q("equal", "status", ["mixed-new"])]},
        ],
    )
    assert len(reply["data"]["subscriptions"]) == 2
    assert reply["data"]["subscriptions"][0]["subscriptionId"] == initial_id
    assert reply["data"]["subscriptions"][1]["subscriptionId"] not in ("", initial_id)

    same = [{"subscriptionId": initial_id, "channels": ["documents"], "queries": [q("equal", "status", ["idem"])]}]
    once, again = await subscribe(ws, same), await subscribe(ws, same)
    assert once["data"]["subscriptions"][0]["queries"] == again["data"]["subscriptions"][0]["queries"]

    empty = await subscribe(ws, [{"subscriptionId": initial_id, "channels": ["documents"], "queries": []}])
    assert len(empty["data"]["subscriptions"]) == 1
    assert empty["data"]["subscriptions"][0]["subscriptionId"] == initial_id


@ported(MESSAGE, "testUpdateSubscriptionAndEdgeCases", SINCE_1_9_5)
async def test_update_subscription_and_edge_cases(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    user, _, cookie = emu.signed_in()
    ws = await socket(emu, [], cookie_header(cookie))
    assert (await receive(ws))["type"] == "connected"

    async def event_subscriptions() -> list[str]:
        await account_event(emu, user.id)
        event = await receive(ws)
        assert event["type"] == "event"
        return sorted(event["data"]["subscriptions"])

    def mine(value: str) -> list[str]:
        return [q("equal", "$id", [value])]

    created = await subscribe(
        ws, [{"channels": ["account"], "queries": mine(user.id)}, {"channels": ["account"], "queries": mine("x")}]
    )
    sub_a, sub_b = (s["subscriptionId"] for s in created["data"]["subscriptions"])
    assert sub_a != sub_b
    assert await event_subscriptions() == [sub_a]

    swap = await subscribe(
        ws,
        [
            {"subscriptionId": sub_a, "channels": ["account"], "queries": mine("no-match-swapped")},
            {"subscriptionId": sub_b, "channels": ["account"], "queries": mine(user.id)},
        ],
    )
    assert [s["subscriptionId"] for s in swap["data"]["subscriptions"]] == [sub_a, sub_b]
    assert await event_subscriptions() == [sub_b]

    await subscribe(ws, [{"subscriptionId": sub_a, "channels": ["account"], "queries": mine(user.id)}])
    assert await event_subscriptions() == sorted([sub_a, sub_b])

    empty = await subscribe(ws, [{"subscriptionId": sub_a, "channels": ["account"], "queries": []}])
    assert empty["data"]["subscriptions"][0]["subscriptionId"] == sub_a
    assert await event_subscriptions() == sorted([sub_a, sub_b])

    ghost = "ghostSubscription01"
    reply = await subscribe(ws, [{"subscriptionId": ghost, "channels": ["account"], "queries": mine(user.id)}])
    assert reply["data"]["subscriptions"][0]["subscriptionId"] == ghost
    assert await event_subscriptions() == sorted([sub_a, sub_b, ghost])

    removed = await unsubscribe(ws, [{"subscriptionId": sub_a}])
    assert removed["data"]["subscriptions"][0]["removed"] is True
    assert await event_subscriptions() == sorted([sub_b, ghost])

    recreated = await subscribe(ws, [{"subscriptionId": sub_a, "channels": ["account"], "queries": mine(user.id)}])
    assert recreated["data"]["subscriptions"][0]["subscriptionId"] == sub_a
    assert await event_subscriptions() == sorted([sub_a, sub_b, ghost])


@ported(MESSAGE, "testUnsubscribeRemovesOnlyMatchingSubscription", SINCE_1_9_5)
async def test_unsubscribe_removes_only_matching_subscription(emu_factory: EmuFactory, mode: str) -> None:
    emu = await start(emu_factory, mode)
    user, _, cookie = emu.signed_in()
    ws = await socket(emu, [], cookie_header(cookie))
    assert (await receive(ws))["type"] == "connected"

    async def event_subscriptions() -> list[str]:
        await account_event(emu, user.id)
        event = await receive(ws)
        assert event["type"] == "event"
        return sorted(event["data"]["subscriptions"])

    sub_a = (await subscribe(ws, [{"channels": ["account"], "queries": [q("equal", "$id", [user.id])]}]))["data"][
        "subscriptions"
    ][0]["subscriptionId"]
    sub_b = (await subscribe(ws, [{"channels": ["account"], "queries": [q("select", values=["*"])]}]))["data"][
        "subscriptions"
    ][0]["subscriptionId"]
    assert sub_a != sub_b
    assert await event_subscriptions() == sorted([sub_a, sub_b])

    reply = await unsubscribe(ws, [{"subscriptionId": sub_a}])
    assert reply["type"] == "response"
    assert reply["data"]["to"] == "unsubscribe"
    assert reply["data"]["success"] is True
    assert reply["data"]["subscriptions"] == [{"subscriptionId": sub_a, "removed": True}]
    assert await event_subscriptions() == [sub_b]

    again = await unsubscribe(ws, [{"subscriptionId": sub_a}])
    assert again["data"]["success"] is True
    assert again["data"]["subscriptions"][0]["removed"] is False
    assert (await send(ws, {"type": "ping"}))["type"] == "pong"

    non_string = await unsubscribe(ws, [{"subscriptionId": 123}])
    assert non_string["type"] == "error"
    assert "subscriptionId" in non_string["data"]["message"]
    assert (await unsubscribe(ws, [{"subscriptionId": ""}]))["type"] == "error"
    assert (await unsubscribe(ws, [{"channels": ["foo"]}]))["type"] == "error"
    assert (await unsubscribe(ws, {"subscriptionId": sub_b}))["type"] == "error"

    partial = await unsubscribe(ws, [{"subscriptionId": sub_b}, {"subscriptionId": 999}])
    assert partial["type"] == "error"
    assert await event_subscriptions() == [sub_b]  # the refused batch removed nothing

    bulk = await unsubscribe(ws, [{"subscriptionId": sub_b}, {"subscriptionId": "does-not-exist"}])
    assert bulk["data"]["success"] is True
    assert bulk["data"]["subscriptions"] == [
        {"subscriptionId": sub_b, "removed": True},
        {"subscriptionId": "does-not-exist", "removed": False},
    ]
