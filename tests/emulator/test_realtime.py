"""`/v1/realtime`: handshake, frames, credentials per mode, delivery rules, limits and controls."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from appwrite.models import User

from tests.support.appwrite_checks import validate
from tests.support.emulator_client import PROJECT, Emu, EmuFactory

SELECT_ALL = '{"method":"select","values":["*"]}'


async def connect(
    emu: Emu, channels: Sequence[str] = ("account",), headers: dict[str, str] | None = None, **query: str
) -> ClientWebSocketResponse:
    params = [("project", PROJECT), *(("channels[]", channel) for channel in channels), *query.items()]
    return await emu.client.ws_connect("/v1/realtime", params=params, headers=headers or {})


async def receive(ws: ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=2)
    assert message.type == WSMsgType.TEXT, message
    return dict(json.loads(message.data))


async def assert_quiet(ws: ClientWebSocketResponse) -> None:
    """Nothing was queued for this socket: a ping's pong is the very next frame."""
    await ws.send_str('{"type":"ping"}')
    assert await receive(ws) == {"type": "pong"}


async def assert_refused(ws: ClientWebSocketResponse, code: int, message: str) -> None:
    """An error frame, then the server drops the connection without a close frame."""
    assert await receive(ws) == {"type": "error", "data": {"code": code, "message": message}}
    closing = await ws.receive(timeout=2)
    assert closing.type in (WSMsgType.CLOSED, WSMsgType.ERROR)
    assert ws.close_code == 1006


async def publish(emu: Emu, **event: Any) -> int:
    response = await emu.control("POST", "/realtime/publish", json=event)
    assert response.status == 200, await response.text()
    return int((await response.json())["delivered"])


# --- handshake ---------------------------------------------------------------------------------


async def test_connected_frame_for_a_session(emu: Emu) -> None:
    user, _, cookie = emu.signed_in()
    ws = await connect(emu, headers={"X-Appwrite-Session": cookie})
    raw = await ws.receive(timeout=2)
    assert raw.data.startswith('{"type":"connected","data":{"channels":')  # compact, like PHP
    frame = json.loads(raw.data)
    assert list(frame["data"]) == ["channels", "subscriptions", "user"]
    assert frame["data"]["channels"] == ["account", f"account.{user.id}"]
    [subscription_id] = frame["data"]["subscriptions"]
    assert validate(User, frame["data"]["user"]).id == user.id
    connections = await (await emu.control("GET", "/realtime/connections")).json()
    assert connections[0]["subscriptions"] == [
        {"subscriptionId": subscription_id, "channels": ["account", f"account.{user.id}"], "queries": [SELECT_ALL]}
    ]


async def test_a_guest_without_channels_is_connected_with_nothing(emu: Emu) -> None:
    ws = await connect(emu, channels=())
    assert await receive(ws) == {"type": "connected", "data": {"channels": [], "subscriptions": [], "user": None}}


async def test_a_guest_cannot_subscribe_to_someone_elses_account(emu: Emu) -> None:
    user, _, _ = emu.signed_in()
    ws = await connect(emu, channels=("account", f"account.{user.id}", "account.create", "documents"))
    data = (await receive(ws))["data"]
    assert data["channels"] == ["account", "account.create", "documents"]
    assert data["user"] is None


async def test_per_slot_subscriptions_from_the_url(emu: Emu) -> None:
    """What the web SDK sends: `<channel>[<slot>][]=<query>` per subscription."""
    _, _, cookie = emu.signed_in()
    query = '{"method":"equal","attribute":"x","values":[1]}'
    params = [
        ("project", PROJECT),
        ("channels[]", "account"),
        ("channels[]", "databases.db.collections.c.documents"),
        ("account[0][]", SELECT_ALL),
        ("databases.db.collections.c.documents[1][]", query),
    ]
    ws = await emu.client.ws_connect("/v1/realtime", params=params, headers={"X-Appwrite-Session": cookie})
    first, second = (await receive(ws))["data"]["subscriptions"]
    [connection] = await (await emu.control("GET", "/realtime/connections")).json()
    subscriptions = {entry["subscriptionId"]: entry for entry in connection["subscriptions"]}
    assert subscriptions[second]["channels"] == ["databases.db.collections.c.documents"]
    assert subscriptions[second]["queries"] == [query]
    assert "account" in subscriptions[first]["channels"]
    assert await publish(emu, channels=["databases.db.collections.c.documents"], payload={"x": 1}) == 1
    assert (await receive(ws))["data"]["subscriptions"] == [second]


async def test_an_unknown_project_is_refused(emu: Emu) -> None:
    ws = await emu.client.ws_connect("/v1/realtime", params={"project": "nope", "channels[]": "account"})
    await assert_refused(ws, 1008, "Missing or unknown project ID")


async def test_plain_http_is_not_realtime(emu: Emu) -> None:
    response = await emu.client.get("/v1/realtime", params={"project": PROJECT})
    assert response.status == 400
    assert (await response.json())["type"] == "general_bad_request"


@pytest.mark.parametrize(
    "way",
    ["cookie", "legacy", "fallback", "header", "jwt-header"],
)
async def test_credentials_at_the_handshake(emu: Emu, way: str) -> None:
    user, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    name = f"a_session_{PROJECT}"
    headers = {
        "cookie": {"Cookie": f"{name}={cookie}"},
        "legacy": {"Cookie": f"{name}_legacy={cookie}"},
        "fallback": {"X-Fallback-Cookies": json.dumps({name: cookie})},
        "header": {"X-Appwrite-Session": cookie},
        "jwt-header": {"X-Appwrite-JWT": token},
    }[way]
    ws = await connect(emu, headers=headers)
    assert (await receive(ws))["data"]["user"]["$id"] == user.id


@pytest.mark.parametrize(
    ("mode", "reads_query"),
    [
        ("cloud", True),
        ("2.x", True),
        ("cl-1.9.6", True),
        ("1.9", False),
        ("1.9.5", False),
        ("1.9.0", False),
        ("1.8", False),
    ],
)
async def test_the_jwt_query_parameter_depends_on_the_server(
    emu_factory: EmuFactory, mode: str, reads_query: bool
) -> None:
    """`?jwt=` is PR #12664 (Cloud, `main`, 2.x); the `X-Appwrite-JWT` header (native SDKs) works
    everywhere, self-hosted 1.9.5 and 1.9.6 included."""
    emu = await emu_factory(mode=mode)
    user, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    ws = await connect(emu, jwt=token)
    user_seen = (await receive(ws))["data"]["user"]
    assert (user_seen or {}).get("$id") == (user.id if reads_query else None)
    ws = await connect(emu, headers={"X-Appwrite-JWT": token})
    assert (await receive(ws))["data"]["user"]["$id"] == user.id


@pytest.mark.parametrize(("mode", "refused"), [("cloud", True), ("cl-1.9.6", True), ("1.9", False), ("1.9.5", False)])
async def test_a_bad_jwt_in_the_query(emu_factory: EmuFactory, mode: str, refused: bool) -> None:
    emu = await emu_factory(mode=mode)
    ws = await connect(emu, jwt="a.b.c")
    if refused:
        await assert_refused(ws, 401, "Failed to verify JWT. JSON failed: Syntax error, malformed JSON")
    else:
        assert (await receive(ws))["data"]["user"] is None


async def test_an_expired_jwt_is_refused_with_401(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie, {"duration": 1})).json())["jwt"]
    emu.clock.advance(1)
    ws = await connect(emu, headers={"X-Appwrite-JWT": token})
    await assert_refused(ws, 401, "Failed to verify JWT. Invalid token: Expired")
    [connection] = await (await emu.control("GET", "/realtime/connections")).json()
    assert connection["error"] == {"code": 401, "message": "Failed to verify JWT. Invalid token: Expired"}
    assert connection["open"] is False


async def test_a_jwt_whose_session_is_gone_connects_a_guest(emu: Emu) -> None:
    _, session_id, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    emu.state.delete_session(session_id)
    ws = await connect(emu, headers={"X-Appwrite-JWT": token})
    assert (await receive(ws))["data"]["user"] is None


async def test_a_jwt_with_a_valid_cookie_is_refused(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    ws = await connect(emu, headers={"X-Appwrite-JWT": token, "Cookie": f"a_session_{PROJECT}={cookie}"})
    frame = await receive(ws)
    assert frame["data"]["code"] == 403
    assert frame["data"]["message"].startswith("JWT and cookie used in the same request.")


# --- frames on an open socket ----------------------------------------------------------------------


async def test_ping_pong(emu: Emu) -> None:
    ws = await connect(emu)
    await receive(ws)
    await ws.send_str('{"type":"ping"}')
    raw = await ws.receive(timeout=2)
    assert raw.data == '{"type":"pong"}'


async def test_subscribe_and_unsubscribe(emu: Emu) -> None:
    user, _, cookie = emu.signed_in()
    ws = await connect(emu, channels=(), headers={"X-Appwrite-Session": cookie})
    await receive(ws)
    await ws.send_json(
        {
            "type": "subscribe",
            "data": [
                {"subscriptionId": "mine", "channels": ["account"], "queries": [SELECT_ALL]},
                {"channels": ["documents"]},
            ],
        }
    )
    response = await receive(ws)
    assert response["type"] == "response"
    assert (response["data"]["to"], response["data"]["success"]) == ("subscribe", True)
    mine, generated = response["data"]["subscriptions"]
    assert mine == {"subscriptionId": "mine", "channels": ["account", f"account.{user.id}"], "queries": [SELECT_ALL]}
    assert generated["channels"] == ["documents"] and generated["queries"] == []
    assert await publish(emu, userId=user.id) == 1
    assert (await receive(ws))["data"]["subscriptions"] == ["mine"]

    await ws.send_json({"type": "unsubscribe", "data": [{"subscriptionId": "mine"}, {"subscriptionId": "nope"}]})
    assert (await receive(ws))["data"] == {
        "to": "unsubscribe",
        "success": True,
        "subscriptions": [{"subscriptionId": "mine", "removed": True}, {"subscriptionId": "nope", "removed": False}],
    }
    assert await publish(emu, userId=user.id) == 0
    await assert_quiet(ws)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("not json", "Message format is not valid."),
        ("[1, 2]", "Message format is not valid."),
        ('{"nothing": 1}', "Message format is not valid."),
        ('{"type": "shout"}', "Message type is not valid."),
        ('{"type": 5}', "Message type is not valid."),
        ('{"type": "subscribe"}', "Payload is not valid. Items is required"),
        ('{"type": "subscribe", "data": {"channels": []}}', "items: Payload is not valid."),
        ('{"type": "subscribe", "data": [{"queries": []}]}', "items: channels is not present in payload."),
        ('{"type": "subscribe", "data": [{"channels": [1]}]}', "items: channels must contain only strings."),
        (
            '{"type": "subscribe", "data": [{"channels": ["a"], "subscriptionId": "-x"}]}',
            "items: subscriptionId is not a valid id.",
        ),
        ('{"type": "subscribe", "data": [{"channels": ["a"], "queries": ["nope"]}]}', "Invalid query: nope"),
        ('{"type": "authentication", "data": {}}', "Payload is not valid. Session is required"),
        ('{"type": "authentication", "data": {"session": "bad"}}', "Session is not valid."),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays(emu: Emu, frame: str, message: str) -> None:
    ws = await connect(emu)
    await receive(ws)
    await ws.send_str(frame)
    assert await receive(ws) == {"type": "error", "data": {"code": 1003, "message": message}}
    await assert_quiet(ws)


async def test_authentication_upgrades_a_guest_socket(emu: Emu) -> None:
    user, _, cookie = emu.signed_in()
    ws = await connect(emu, channels=("account.update",))
    assert (await receive(ws))["data"]["user"] is None
    await ws.send_json({"type": "authentication", "data": {"session": cookie}})
    response = await receive(ws)
    assert (response["type"], response["data"]["to"], response["data"]["success"]) == (
        "response",
        "authentication",
        True,
    )
    assert validate(User, response["data"]["user"]).id == user.id
    [connection] = await (await emu.control("GET", "/realtime/connections")).json()
    assert connection["userId"] == user.id
    assert connection["channels"] == [f"account.{user.id}.update"]
    assert await publish(emu, userId=user.id, channels=[f"account.{user.id}.update"]) == 1


async def test_the_old_server_has_no_subscribe_frames(emu_factory: EmuFactory) -> None:
    emu = await emu_factory(mode="1.8")
    user, _, cookie = emu.signed_in()
    ws = await connect(emu, headers={"X-Appwrite-Session": cookie})
    assert await receive(ws) == {
        "type": "connected",
        "data": {"channels": ["account", f"account.{user.id}"], "user": (await receive_account(emu, cookie))},
    }
    await ws.send_json({"type": "subscribe", "data": [{"channels": ["documents"]}]})
    assert await receive(ws) == {"type": "error", "data": {"code": 1003, "message": "Message type is not valid."}}
    assert await publish(emu, userId=user.id, events=["users.x.update"]) == 1
    event = await receive(ws)
    assert "subscriptions" not in event["data"]


async def receive_account(emu: Emu, cookie: str) -> dict[str, Any]:
    return dict(await (await emu.client.get("/v1/account", headers=emu.headers(cookie))).json())


async def test_the_old_server_needs_channels(emu_factory: EmuFactory) -> None:
    emu = await emu_factory(mode="1.8")
    await assert_refused(await connect(emu, channels=()), 1008, "Missing channels")


# --- delivery ------------------------------------------------------------------------------------


async def test_account_events_reach_only_their_user(emu: Emu) -> None:
    ada, _, ada_cookie = emu.signed_in()
    _, _, eve_cookie = emu.signed_in("eve@example.com")
    ada_ws = await connect(emu, headers={"X-Appwrite-Session": ada_cookie})
    eve_ws = await connect(emu, headers={"X-Appwrite-Session": eve_cookie})
    guest_ws = await connect(emu)
    [ada_subscription] = (await receive(ada_ws))["data"]["subscriptions"]
    for ws in (eve_ws, guest_ws):
        await receive(ws)

    delivered = await publish(emu, userId=ada.id, events=[f"users.{ada.id}.update.name"], payload={"name": "Ada"})
    assert delivered == 1
    raw = await ada_ws.receive(timeout=2)
    event = json.loads(raw.data)
    assert event["type"] == "event"
    assert list(event["data"]) == ["events", "channels", "timestamp", "payload", "subscriptions"]
    assert event["data"]["channels"] == ["account", f"account.{ada.id}"]
    assert event["data"]["events"] == [f"users.{ada.id}.update.name"]
    assert event["data"]["payload"] == {"name": "Ada"}
    assert event["data"]["subscriptions"] == [ada_subscription]
    assert event["data"]["timestamp"].endswith("+00:00")
    for ws in (eve_ws, guest_ws):
        await assert_quiet(ws)


async def test_public_events_reach_every_subscriber_including_guests(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    user_ws = await connect(emu, channels=("documents",), headers={"X-Appwrite-Session": cookie})
    guest_ws = await connect(emu, channels=("documents",))
    elsewhere_ws = await connect(emu, channels=("files",))
    for ws in (user_ws, guest_ws, elsewhere_ws):
        await receive(ws)
    assert await publish(emu, channels=["documents", "documents.d1"], events=["x"], payload={"$id": "d1"}) == 2
    for ws in (user_ws, guest_ws):
        assert (await receive(ws))["data"]["payload"] == {"$id": "d1"}
    await assert_quiet(elsewhere_ws)
    # Role "users": signed-in sockets only.
    assert await publish(emu, channels=["documents"], roles=["users"]) == 1
    assert (await receive(user_ws))["type"] == "event"
    await assert_quiet(guest_ws)


async def test_an_open_socket_outlives_its_credentials(emu: Emu) -> None:
    """Appwrite checks credentials only at the handshake: logout, block and expiry change nothing."""
    user, session_id, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie, {"duration": 5})).json())["jwt"]
    ws = await connect(emu, headers={"X-Appwrite-JWT": token})
    await receive(ws)
    emu.state.delete_session(session_id)
    emu.state.block_user(user.id)
    emu.clock.advance(60)
    assert await publish(emu, userId=user.id) == 1
    assert (await receive(ws))["type"] == "event"


# --- limits --------------------------------------------------------------------------------------


async def test_connects_are_limited_per_forwarded_ip(emu_factory: EmuFactory) -> None:
    emu = await emu_factory(realtime_connect_limit=2)
    for _ in range(2):
        ws = await connect(emu, headers={"X-Forwarded-For": "198.51.100.7, 10.0.0.1"})
        assert (await receive(ws))["type"] == "connected"
    await assert_refused(await connect(emu, headers={"X-Forwarded-For": "198.51.100.7"}), 1013, "Too many requests")
    other = await connect(emu, headers={"X-Forwarded-For": "198.51.100.8"})
    assert (await receive(other))["type"] == "connected"
    emu.clock.advance(60)
    again = await connect(emu, headers={"X-Forwarded-For": "198.51.100.7"})
    assert (await receive(again))["type"] == "connected"


async def test_messages_are_limited_per_connection(emu_factory: EmuFactory) -> None:
    emu = await emu_factory(realtime_message_limit=3)
    ws = await connect(emu)
    await receive(ws)
    for _ in range(3):
        await ws.send_str('{"type":"ping"}')
        assert await receive(ws) == {"type": "pong"}
    await ws.send_str('{"type":"ping"}')
    assert await receive(ws) == {"type": "error", "data": {"code": 1013, "message": "Too many messages."}}
    # Not a policy violation: the socket stays open and works again in the next window.
    emu.clock.advance(60)
    await assert_quiet(ws)
    fresh = await connect(emu)
    await receive(fresh)
    await assert_quiet(fresh)


async def test_the_default_limits_are_appwrites(emu: Emu) -> None:
    assert (emu.config.realtime_connect_limit, emu.config.realtime_message_limit) == (128, 32)


# --- control --------------------------------------------------------------------------------------


async def test_connections_record_forwarding_and_origin(emu: Emu) -> None:
    user, _, cookie = emu.signed_in()
    ws = await connect(emu, headers={"X-Appwrite-Session": cookie, "X-Forwarded-For": "203.0.113.5"})
    await receive(ws)
    assert (await emu.control("POST", "/platforms", json={"hostname": "app.example.com"})).status == 201
    from_browser = await connect(emu, headers={"Origin": "https://app.example.com"})
    await receive(from_browser)
    relayed, direct = await (await emu.control("GET", "/realtime/connections")).json()
    assert (relayed["userId"], relayed["forwardedFor"], relayed["origin"], relayed["ip"]) == (
        user.id,
        "203.0.113.5",
        None,
        "203.0.113.5",
    )
    assert relayed["channels"] == ["account", f"account.{user.id}"]
    assert relayed["open"] is True and relayed["closedAt"] is None
    assert (direct["userId"], direct["forwardedFor"], direct["origin"]) == (None, None, "https://app.example.com")
    await ws.close()
    await receive_until_closed(emu, relayed["id"])
    open_now = await (await emu.control("GET", "/realtime/connections", params={"open": "true"})).json()
    assert [entry["id"] for entry in open_now] == [direct["id"]]


async def receive_until_closed(emu: Emu, connection_id: str) -> None:
    import asyncio

    for _ in range(100):
        listed = await (await emu.control("GET", "/realtime/connections")).json()
        if not next(entry for entry in listed if entry["id"] == connection_id)["open"]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the connection never closed")


async def test_disconnect_closes_one_users_sockets(emu: Emu) -> None:
    ada, _, ada_cookie = emu.signed_in()
    _, _, eve_cookie = emu.signed_in("eve@example.com")
    ada_ws = await connect(emu, headers={"X-Appwrite-Session": ada_cookie})
    eve_ws = await connect(emu, headers={"X-Appwrite-Session": eve_cookie})
    await receive(ada_ws)
    await receive(eve_ws)
    response = await emu.control("POST", "/realtime/disconnect", json={"userId": ada.id})
    assert await response.json() == {"closed": 1}
    closing = await ada_ws.receive(timeout=2)
    assert (closing.type, closing.data) == (WSMsgType.CLOSE, 1011)
    await assert_quiet(eve_ws)
    everyone = await emu.control("POST", "/realtime/disconnect", json={"code": 4000})
    assert await everyone.json() == {"closed": 1}
    assert (await eve_ws.receive(timeout=2)).data == 4000


async def test_frames_over_64_kb_end_the_socket(emu: Emu) -> None:
    ws = await connect(emu)
    await receive(ws)
    await ws.send_str(json.dumps({"type": "ping", "data": "x" * 64_000}))
    closing = await ws.receive(timeout=2)
    assert (closing.type, closing.data) == (WSMsgType.CLOSE, 1009)
