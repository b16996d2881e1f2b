"""`presence` frames (1.9.5+): the frame's answer as Appwrite's Realtime `Presence` handler gives it
(src/Appwrite/Realtime/Message/Handlers/Presence.php on 1.9.6; no Realtime e2e test covers it)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType

from tests.support.emulator_client import PROJECT, Emu, EmuFactory


async def open_socket(emu: Emu, cookie: str | None = None) -> ClientWebSocketResponse:
    headers = {"X-Appwrite-Session": cookie} if cookie else {}
    ws = await emu.client.ws_connect("/v1/realtime", params={"project": PROJECT, "channels[]": "a"}, headers=headers)
    assert (await receive(ws))["type"] == "connected"
    return ws


async def receive(ws: ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=2)
    assert message.type == WSMsgType.TEXT, message
    return dict(json.loads(message.data))


async def send(ws: ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(json.dumps(frame))
    return await receive(ws)


@pytest.mark.parametrize("mode", ["main", "2.2.0", "cl-1.9.6", "1.9.6", "1.9.5"])
async def test_presence_upserts_the_users_presence(emu_factory: EmuFactory, mode: str) -> None:
    emu = await emu_factory(mode=mode)
    user, _, cookie = emu.signed_in()
    ws = await open_socket(emu, cookie)
    reply = await send(ws, {"type": "presence", "data": {"status": "online", "metadata": {"page": "/"}}})
    assert reply["type"] == "response"
    assert reply["data"]["to"] == "presence"
    presence = reply["data"]["presence"]
    assert (presence["userId"], presence["source"], presence["status"], presence["metadata"]) == (
        user.id,
        "realtime",
        "online",
        {"page": "/"},
    )
    assert presence["$permissions"] == [f'{action}("user:{user.id}")' for action in ("read", "update", "delete")]
    emu.clock.advance(5)
    again = await send(ws, {"type": "presence", "data": {"status": "away", "presenceId": presence["$id"]}})
    updated = again["data"]["presence"]
    assert (updated["$id"], updated["$createdAt"], updated["status"]) == (
        presence["$id"],
        presence["$createdAt"],
        "away",
    )
    assert updated["$updatedAt"] != presence["$updatedAt"]
    assert "metadata" not in updated


async def test_presence_needs_a_user_and_a_status(emu_factory: EmuFactory) -> None:
    emu = await emu_factory(mode="main")
    guest = await open_socket(emu)
    assert await send(guest, {"type": "presence", "data": {"status": "online"}}) == {
        "type": "error",
        "data": {"code": 401, "message": "User must be authorized"},
    }
    assert (await send(guest, {"type": "ping"}))["type"] == "pong"  # not a policy violation: still open
    _, _, cookie = emu.signed_in()
    ws = await open_socket(emu, cookie)
    assert (await send(ws, {"type": "presence", "data": {}}))["data"] == {
        "code": 1003,
        "message": "Payload is not valid. Status is required",
    }
    assert (await send(ws, {"type": "presence", "data": {"status": 5}}))["data"]["message"] == (
        "status: Value must be a valid string and at most 2048 chars"
    )
    long_id = {"status": "x", "presenceId": "p" * 37}
    assert (await send(ws, {"type": "presence", "data": long_id}))["data"]["message"] == (
        "presenceId: Value must be a valid string and at most 36 chars"
    )


@pytest.mark.parametrize("mode", ["1.9.0", "1.8.1"])
async def test_older_servers_do_not_know_presence(emu_factory: EmuFactory, mode: str) -> None:
    emu = await emu_factory(mode=mode)
    _, _, cookie = emu.signed_in()
    ws = await open_socket(emu, cookie)
    assert (await send(ws, {"type": "presence", "data": {"status": "online"}}))["data"] == {
        "code": 1003,
        "message": "Message type is not valid.",
    }
