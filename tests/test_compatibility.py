"""The README's compatibility table, row by row: which Appwrite generation lets a browser use the
JWT route for Realtime, and that the relay works on all of them, with the SDKs users pair with each:
channels in the socket URL (web SDK <= 24) and channels in `subscribe` frames (web SDK >= 25)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.support.service import COOKIE, PROJECT, exchange

# mode (one per Appwrite ref the emulator plays) -> does the Realtime handshake accept ?jwt=
# (what a browser can send)?
JWT_REALTIME = {
    "main": True,
    "2.2.0": True,
    "cl-1.9.6": True,
    "1.9.6": False,
    "1.9.5": False,
    "1.9.0": False,
    "1.8.1": False,
}


async def _connected_user(url: str) -> object:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        message = await asyncio.wait_for(ws.receive(), 3)
        frame = json.loads(message.data)
        assert frame["type"] == "connected"
        user = frame["data"]["user"]
        return user["$id"] if user else None


@pytest.mark.parametrize("mode", sorted(JWT_REALTIME))
async def test_jwt_route_against_each_server_generation(emulator_factory, service_factory, mode) -> None:
    emulator = await emulator_factory(mode=mode)
    user_id, _, cookie = emulator.signed_in_user()
    service = await service_factory(emulator)
    token = await (await exchange(service, cookie)).json()
    # What web SDK >= 26.1.0 opens after setJWT(): the JWT in the query, no cookie, no headers.
    url = emulator.server.make_url(f"/v1/realtime?project={PROJECT}&channels[]=account&jwt={token['jwt']}")
    assert await _connected_user(str(url)) == (user_id if JWT_REALTIME[mode] else None)


@pytest.mark.parametrize("mode", sorted(JWT_REALTIME))
async def test_relay_against_each_server_generation(emulator_factory, service_factory, mode) -> None:
    emulator = await emulator_factory(mode=mode)
    user_id, _, cookie = emulator.signed_in_user()
    service = await service_factory(emulator)
    async with service.ws_connect(
        f"/v1/realtime?project={PROJECT}&channels[]=account",
        headers={"Cookie": f"{COOKIE}={cookie}", "Origin": "https://app.example.com"},
    ) as ws:
        frame = json.loads((await asyncio.wait_for(ws.receive(), 3)).data)
    assert frame["data"]["user"]["$id"] == user_id


async def _publish(emulator: object, user_id: str) -> None:
    async with aiohttp.ClientSession() as http:
        url = emulator.server.make_url("/_emulator/realtime/publish")  # type: ignore[attr-defined]
        async with http.post(url, json={"userId": user_id, "payload": {"row": True}}) as response:
            assert (await response.json())["delivered"] == 1


@pytest.mark.parametrize("mode", sorted(JWT_REALTIME))
async def test_relay_with_subscribe_frames_against_each_server_generation(
    emulator_factory, service_factory, mode
) -> None:
    """What web SDK >= 25 does: `?project=` only, then a `subscribe` frame; events must carry the
    page's subscription id (1.8.x and 1.9.0 themselves refuse such a socket: "Missing channels")."""
    emulator = await emulator_factory(mode=mode)
    user_id, _, cookie = emulator.signed_in_user()
    service = await service_factory(emulator)
    async with service.ws_connect(
        f"/v1/realtime?project={PROJECT}",
        headers={"Cookie": f"{COOKIE}={cookie}", "Origin": "https://app.example.com"},
    ) as ws:
        connected = json.loads((await asyncio.wait_for(ws.receive(), 3)).data)
        assert connected["type"] == "connected" and connected["data"]["user"]["$id"] == user_id
        item = {"subscriptionId": "row", "channels": ["account"], "queries": []}
        await ws.send_str(json.dumps({"type": "subscribe", "data": [item]}))
        response = json.loads((await asyncio.wait_for(ws.receive(), 3)).data)
        assert response["data"]["to"] == "subscribe" and response["data"]["success"] is True
        await _publish(emulator, user_id)
        event = json.loads((await asyncio.wait_for(ws.receive(), 3)).data)
    assert event["data"]["payload"] == {"row": True}
    assert event["data"]["subscriptions"] == ["row"]
