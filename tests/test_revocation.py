"""Sign-out at once (revocation/): the app's internal kick and Appwrite's webhook close relayed
sockets now, instead of at the next re-check (RELAY_REVALIDATE_SECONDS, 300 s here)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from appwrite_token_exchange.emulator.keys import RECORDER
from appwrite_token_exchange.keys import METRICS, REVOKER
from appwrite_token_exchange.revocation.webhook import signature
from appwrite_token_exchange.settings import SettingsError

from tests.support.helpers import assert_problem
from tests.support.redis_server import redis_server
from tests.support.service import COOKIE, PROJECT, exchange, service_settings

SECRET = "revocation-secret-0123456789"
KEY = "whsec-0123456789abcdef"
URL = "https://rt.example.com/v1/realtime/webhooks/appwrite?x=a%20b+c"
ENV = {"REVOCATION_SECRET": SECRET, "APPWRITE_WEBHOOK_SIGNATURE_KEY": KEY, "APPWRITE_WEBHOOK_URL": URL}
BEARER = {"Authorization": f"Bearer {SECRET}"}
ORIGIN = "https://app.example.com"


def test_signature_is_appwrites() -> None:
    """Vectors from openssl (`printf '%s' "<url decoded><body>" | openssl dgst -sha1 -hmac <key> -binary | base64`):
    Appwrite signs rawurldecode(url) . body, and rawurldecode leaves '+' alone."""
    body = b'{"$id":"s1","userId":"u1"}'
    assert signature(URL, body, KEY) == "5Iw0KACLtQGqBNu2CpjsSUQZaFA="
    assert signature("https://rt.example.com/hook", b"{}", "k") == "rwx2bkS0AlfCQKEGP8NheMx8JeA="


async def relayed(service: Any, cookie: str) -> Any:
    ws = await service.ws_connect(f"/v1/realtime?project={PROJECT}&channels[]=account",
                                  headers={"Origin": ORIGIN, "Cookie": f"{COOKIE}={cookie}"})
    message = await asyncio.wait_for(ws.receive(), 3)
    assert json.loads(message.data)["type"] == "connected"
    return ws


async def closed_with(ws: Any) -> tuple[int, str]:
    """The close code and reason the page's socket gets (it must come: the re-check timer is 300 s)."""
    message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type == aiohttp.WSMsgType.CLOSE, message
    return int(message.data), str(message.extra)


async def still_open(ws: Any) -> None:
    await ws.send_str(json.dumps({"type": "ping"}))
    message = await asyncio.wait_for(ws.receive(), 3)
    assert message.type == aiohttp.WSMsgType.TEXT and json.loads(message.data)["type"] == "pong", message


def webhook(body: dict[str, Any], events: str, key: str = KEY) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", "X-Appwrite-Webhook-Events": events,
                 "X-Appwrite-Webhook-Signature": signature(URL, raw, key)}


def session_events(user_id: str, session_id: str) -> str:
    return f"users.*.sessions.*.delete,users.{user_id}.sessions.*.delete,users.{user_id}.sessions.{session_id}.delete"


def counted(service: Any, name: str, labels: dict[str, str]) -> float:
    registry = service.app[METRICS].registry
    return float(registry.get_sample_value(f"token_exchange_{name}_total", labels) or 0)


async def test_the_apps_kick_closes_every_socket_of_the_user_now(service_factory, emulator, logs) -> None:
    service = await service_factory(**ENV)
    user_id, _, first = emulator.signed_in_user()
    _, second = emulator.state.create_session(user_id)
    _, _, someone_else = emulator.signed_in_user("bob@example.com")
    sockets = [await relayed(service, first), await relayed(service, second)]
    other = await relayed(service, someone_else)

    response = await service.delete(f"/internal/v1/users/{user_id}/sockets", headers=BEARER)
    assert response.status == 200, await response.text()
    assert await response.json() == {"action": "closed", "userId": user_id, "closedHere": 2, "recheckedHere": 0,
                                     "broadcast": "local"}
    for ws in sockets:
        assert await closed_with(ws) == (1008, "signed_out")
    await still_open(other)
    # The sessions the closed sockets carried are answered 401 at once, without asking Appwrite,
    # though Appwrite still holds them (the app's word is final).
    minted = len(emulator.app[RECORDER].find("/v1/account/jwts"))
    await assert_problem(await exchange(service, first), 401, "session_invalid")
    await assert_problem(await exchange(service, second), 401, "session_invalid")
    assert len(emulator.app[RECORDER].find("/v1/account/jwts")) == minted
    assert (await exchange(service, someone_else)).status == 200
    [line] = logs.events("revocation")
    assert line["source"] == "internal" and line["action"] == "closed" and line["sockets"] == 2
    assert SECRET not in logs.text


async def test_a_session_kick_closes_that_sessions_sockets_only(service_factory, emulator) -> None:
    service = await service_factory(**ENV)
    user_id, session_id, kicked = emulator.signed_in_user()
    _, kept = emulator.state.create_session(user_id)
    assert (await exchange(service, kicked)).status == 200  # the token route learns the session's id
    ws, other = await relayed(service, kicked), await relayed(service, kept)

    response = await service.delete(f"/internal/v1/users/{user_id}/sessions/{session_id}/sockets", headers=BEARER)
    assert response.status == 200
    assert (await response.json())["action"] == "closed" and (await response.json())["closedHere"] == 1
    assert await closed_with(ws) == (1008, "signed_out")
    await still_open(other)
    await assert_problem(await exchange(service, kicked), 401, "session_invalid")
    assert (await exchange(service, kept)).status == 200


async def test_a_session_kick_refuses_the_session_even_with_no_socket_open(service_factory, emulator) -> None:
    service = await service_factory(**ENV)
    user_id, session_id, kicked = emulator.signed_in_user()
    assert (await exchange(service, kicked)).status == 200
    response = await service.delete(f"/internal/v1/users/{user_id}/sessions/{session_id}/sockets", headers=BEARER)
    assert (await response.json())["action"] == "closed" and (await response.json())["closedHere"] == 0
    await assert_problem(await exchange(service, kicked), 401, "session_invalid")
    await assert_problem(await relayed_refusal(service, kicked), 401, "session_invalid")


async def relayed_refusal(service: Any, cookie: str) -> Any:
    return await service.get(f"/v1/realtime?project={PROJECT}&channels[]=account",
                             headers={"Origin": ORIGIN, "Cookie": f"{COOKIE}={cookie}", "Connection": "Upgrade",
                                      "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})


async def test_a_session_never_seen_is_rechecked_with_appwrite(service_factory, emulator) -> None:
    service = await service_factory(**ENV)
    user_id, session_id, ended = emulator.signed_in_user()
    _, kept = emulator.state.create_session(user_id)
    ws, other = await relayed(service, ended), await relayed(service, kept)
    emulator.state.delete_session(session_id)  # the app signs the session out in Appwrite first

    response = await service.delete(f"/internal/v1/users/{user_id}/sessions/{session_id}/sockets", headers=BEARER)
    assert response.status == 200
    assert await response.json() == {"action": "rechecked", "userId": user_id, "sessionId": session_id,
                                     "closedHere": 0, "recheckedHere": 2, "broadcast": "local"}
    assert await closed_with(ws) == (1008, "session_ended")
    await still_open(other)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-secret-0123456789", f"Basic {SECRET}",
                                           f"Bearer {SECRET}x", f"Bearer {SECRET[:-1]}", "Bearer"])
async def test_the_internal_routes_refuse_without_the_secret(service_factory, emulator, authorization, logs) -> None:
    service = await service_factory(**ENV)
    user_id, session_id, cookie = emulator.signed_in_user()
    ws = await relayed(service, cookie)
    headers = {"Authorization": authorization} if authorization is not None else {}
    for path in (f"/internal/v1/users/{user_id}/sockets", f"/internal/v1/users/{user_id}/sessions/{session_id}/sockets"):
        response = await service.delete(path, headers=headers)
        await assert_problem(response, 401, "revocation_unauthorized")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="revocation"'
    assert counted(service, "revocation_refusals", {"reason": "unauthorized"}) == 2
    await still_open(ws)
    assert not logs.events("revocation")
    assert SECRET not in logs.text


async def test_ids_that_are_not_appwrite_ids_are_refused(service_factory) -> None:
    service = await service_factory(**ENV)
    for path in ("/internal/v1/users/-bad/sockets", f"/internal/v1/users/{'a' * 37}/sockets",
                 "/internal/v1/users/u1/sessions/s%20/sockets"):
        await assert_problem(await service.delete(path, headers=BEARER), 400, "bad_request")


async def test_appwrites_webhook_has_the_users_sockets_rechecked(service_factory, emulator, logs) -> None:
    service = await service_factory(**ENV)
    user_id, session_id, ended = emulator.signed_in_user()
    _, kept = emulator.state.create_session(user_id)
    ws, other = await relayed(service, ended), await relayed(service, kept)
    emulator.state.delete_session(session_id)

    body, headers = webhook({"$id": session_id, "userId": user_id}, session_events(user_id, session_id))
    response = await service.post("/v1/realtime/webhooks/appwrite", data=body, headers=headers)
    assert response.status == 200
    assert await response.json() == {"action": "rechecked", "userId": user_id, "closedHere": 0, "recheckedHere": 2,
                                     "broadcast": "local"}
    assert await closed_with(ws) == (1008, "session_ended")
    await still_open(other)  # Appwrite still holds that session: the webhook alone signs no one out
    assert logs.events("revocation")[0]["source"] == "webhook"


@pytest.mark.parametrize("event", ["users.*.delete", "users.*.update.status", "users.*.update.password"])
async def test_user_webhooks_recheck_every_socket_of_the_user(service_factory, emulator, event) -> None:
    service = await service_factory(**ENV)
    user_id, _, cookie = emulator.signed_in_user()
    ws = await relayed(service, cookie)
    emulator.state.block_user(user_id)
    body, headers = webhook({"$id": user_id, "status": False}, event.replace("*", user_id) + "," + event)
    response = await service.post("/v1/realtime/webhooks/appwrite", data=body, headers=headers)
    assert (await response.json())["recheckedHere"] == 1
    assert await closed_with(ws) == (1008, "session_ended")


async def test_forged_and_replayed_webhooks_are_refused_and_counted(service_factory, emulator, logs) -> None:
    service = await service_factory(**ENV)
    user_id, session_id, cookie = emulator.signed_in_user()
    ws = await relayed(service, cookie)
    events = session_events(user_id, session_id)
    body, headers = webhook({"$id": session_id, "userId": user_id}, events)

    forgeries = [
        webhook({"$id": session_id, "userId": user_id}, events, key="another-key")[1],  # wrong key
        {**headers, "X-Appwrite-Webhook-Signature": ""},
        {k: v for k, v in headers.items() if k != "X-Appwrite-Webhook-Signature"},
    ]
    for forged in forgeries:
        response = await service.post("/v1/realtime/webhooks/appwrite", data=body, headers=forged)
        await assert_problem(response, 401, "webhook_signature_invalid")
    # The body changed under a genuine signature.
    tampered = json.dumps({"$id": session_id, "userId": "someone-else"}).encode()
    await assert_problem(await service.post("/v1/realtime/webhooks/appwrite", data=tampered, headers=headers),
                         401, "webhook_signature_invalid")
    assert counted(service, "revocation_refusals", {"reason": "signature"}) == 4

    assert (await service.post("/v1/realtime/webhooks/appwrite", data=body, headers=headers)).status == 200
    await assert_problem(await service.post("/v1/realtime/webhooks/appwrite", data=body, headers=headers),
                         409, "webhook_replayed")
    assert counted(service, "revocation_refusals", {"reason": "replayed"}) == 1
    assert counted(service, "revocations", {"source": "webhook", "action": "rechecked"}) == 1
    await still_open(ws)  # Appwrite still holds the session
    assert [line["reason"] for line in logs.events("revocation.refused")] == ["signature"] * 4 + ["replayed"]
    assert KEY not in logs.text and headers["X-Appwrite-Webhook-Signature"] not in logs.text


async def test_other_events_are_ignored_and_unreadable_ones_refused(service_factory, emulator) -> None:
    service = await service_factory(**ENV)
    body, headers = webhook({"$id": "d1"}, "databases.*.collections.*.documents.*.create")
    response = await service.post("/v1/realtime/webhooks/appwrite", data=body, headers=headers)
    assert await response.json() == {"action": "ignored"}
    for payload in ([1, 2], {"userId": "not an id!"}, {"$id": "s1"}):
        body, headers = webhook(payload, "users.*.sessions.*.delete")  # type: ignore[arg-type]
        response = await service.post("/v1/realtime/webhooks/appwrite", data=body, headers=headers)
        await assert_problem(response, 400, "bad_request")
    big = b'{"$id": "' + b"x" * 70_000 + b'"}'
    headers = {"X-Appwrite-Webhook-Signature": signature(URL, big, KEY), "Content-Type": "application/json"}
    await assert_problem(await service.post("/v1/realtime/webhooks/appwrite", data=big, headers=headers),
                         413, "body_too_large")


async def test_the_routes_exist_only_when_configured(service_factory) -> None:
    service = await service_factory()
    await assert_problem(await service.delete("/internal/v1/users/u1/sockets", headers=BEARER), 404, "not_found")
    await assert_problem(await service.post("/v1/realtime/webhooks/appwrite", data=b"{}"), 404, "not_found")


@pytest.mark.parametrize(("env", "variable"), [
    ({"APPWRITE_WEBHOOK_SIGNATURE_KEY": KEY}, "APPWRITE_WEBHOOK_URL"),
    ({"APPWRITE_WEBHOOK_SIGNATURE_KEY": KEY, "APPWRITE_WEBHOOK_URL": "rt.example.com/hook"}, "APPWRITE_WEBHOOK_URL"),
    ({"APPWRITE_WEBHOOK_URL": URL}, "APPWRITE_WEBHOOK_SIGNATURE_KEY"),
    ({"REVOCATION_SECRET": "short"}, "REVOCATION_SECRET"),
])
def test_settings_are_checked_at_start(emulator, env, variable) -> None:
    with pytest.raises(SettingsError) as raised:
        service_settings(emulator, **env)
    assert raised.value.variable == variable
    assert "short" not in str(raised.value) and KEY not in str(raised.value)


@pytest.fixture
def redis() -> Iterator[Any]:
    with redis_server() as server:
        yield server


async def test_with_redis_gone_the_kick_closes_here_and_says_it_was_not_passed_on(service_factory, emulator, redis,
                                                                                  logs) -> None:
    """REDIS_URL set, then Redis stops: this replica still closes its sockets, and answers 503
    revocation_not_broadcast (retry: the kick is idempotent); /readyz says the bus is down."""
    service = await service_factory(**ENV, REDIS_URL=redis.url, STATE_HASH_KEY="revocation-test-hash-key-0123")
    user_id, _, cookie = emulator.signed_in_user()
    ws = await relayed(service, cookie)
    await asyncio.wait_for(service.app[REVOKER].bus.listened.wait(), 5)  # type: ignore[union-attr]
    await asyncio.to_thread(redis.stop)
    response = await service.delete(f"/internal/v1/users/{user_id}/sockets", headers=BEARER)
    body = await assert_problem(response, 503, "revocation_not_broadcast")
    assert response.headers["Retry-After"] == "1"
    assert (body["closedHere"], body["broadcast"]) == (1, "failed")
    assert await closed_with(ws) == (1008, "signed_out")
    await asyncio.wait_for(service.app[REVOKER].bus.lost.wait(), 5)  # type: ignore[union-attr]
    ready = await (await service.get("/readyz")).json()
    assert ready["checks"]["revocation"] == {"status": "degraded", "channel": "rtx:revocations",
                                             "subscribed": False}
    assert logs.events("revocation.bus_unavailable")
    # Redis back: the bus subscribes again, and the next kick is passed on.
    await asyncio.to_thread(redis.start)
    await asyncio.wait_for(service.app[REVOKER].bus.listened.wait(), 15)  # type: ignore[union-attr]
    response = await service.delete(f"/internal/v1/users/{user_id}/sockets", headers=BEARER)
    assert (await response.json())["broadcast"] == "redis"
    assert logs.events("revocation.bus_recovered")
