"""Large events through the relay (issue 12, item 4): Appwrite caps only what clients send (64,000
bytes); what it pushes can be a whole document of several megabytes, and must reach the page."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from appwrite_token_exchange.emulator.keys import REALTIME

from tests.support.service import COOKIE, PROJECT

ALLOWED = "https://app.example.com"
MB = 1024 * 1024


@pytest.fixture(params=["cloud", "1.9", "1.8"])
async def emulator(request, emulator_factory):  # type: ignore[no-untyped-def]
    return await emulator_factory(mode=request.param)


async def open_socket(service: Any, emulator: Any) -> tuple[Any, str]:
    user_id, _, cookie = emulator.signed_in_user()
    headers = {"Origin": ALLOWED, "Cookie": f"{COOKIE}={cookie}"}
    ws = await service.ws_connect(f"/v1/realtime?project={PROJECT}&channels[]=account", headers=headers, max_msg_size=0)
    message = await asyncio.wait_for(ws.receive(), 3.0)
    assert json.loads(message.data)["type"] == "connected"
    return ws, user_id


async def publish_big(emulator: Any, user_id: str, size: int) -> int:
    """Published on the emulator's hub directly: its control API takes bodies of at most 1 MiB
    (aiohttp's default), and what is under test is the socket, not the control API."""
    payload = {"blob": "x" * size}
    hub = emulator.app[REALTIME]
    return int(await hub.publish(["account", f"account.{user_id}"], ["users.*.update"], payload, [f"user:{user_id}"]))


async def test_an_event_of_several_megabytes_reaches_the_page_intact(service, emulator, logs) -> None:
    ws, user_id = await open_socket(service, emulator)
    assert await publish_big(emulator, user_id, 5 * MB) == 1
    message = await asyncio.wait_for(ws.receive(), 10.0)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    event = json.loads(message.data)
    assert event["type"] == "event"
    assert event["data"]["payload"]["blob"] == "x" * (5 * MB)
    # The socket is still open and working afterwards.
    await ws.send_str(json.dumps({"type": "ping"}))
    assert json.loads((await asyncio.wait_for(ws.receive(), 3.0)).data)["type"] == "pong"
    await ws.close()


async def test_an_event_over_the_cap_closes_the_page_with_1009(service_factory, emulator, logs) -> None:
    service = await service_factory(RELAY_MAX_EVENT_BYTES="100000")
    ws, user_id = await open_socket(service, emulator)
    await publish_big(emulator, user_id, 200_000)
    message = await asyncio.wait_for(ws.receive(), 5.0)
    assert message.type == aiohttp.WSMsgType.CLOSE, message
    # 1009 "message too big", not 1008: the SDK reconnects and resubscribes.
    assert ws.close_code == 1009
    for _ in range(100):
        if logs.events("relay.closed"):
            break
        await asyncio.sleep(0.02)
    [closed] = logs.events("relay.closed")
    assert closed["close_reason"] == "event_too_large"


@pytest.mark.parametrize("emulator", ["cloud"], indirect=True)
async def test_pages_frames_are_capped_at_appwrites_64000_bytes(service, emulator) -> None:
    ws, _ = await open_socket(service, emulator)
    frame = json.dumps({"type": "ping", "data": "x" * 64_000})
    assert len(frame) > 64_000
    assert len(frame) < 64 * 1024
    await ws.send_str(frame)
    message = await asyncio.wait_for(ws.receive(), 3.0)
    assert message.type == aiohttp.WSMsgType.CLOSE, message
    assert ws.close_code == 1009


def test_the_event_cap_is_a_validated_setting() -> None:
    from appwrite_token_exchange.settings import Settings, SettingsError

    env = {"APPWRITE_ENDPOINT": "https://aw.example.com/v1", "APPWRITE_PROJECT_ID": "p"}
    assert Settings.from_env(env).relay_max_event_bytes == 16 * MB
    for bad in ("1000", "x", str(2 * 1024 * MB)):
        with pytest.raises(SettingsError, match="RELAY_MAX_EVENT_BYTES"):
            Settings.from_env({**env, "RELAY_MAX_EVENT_BYTES": bad})
