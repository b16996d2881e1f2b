"""The relay at population scale: what one page may ask of a socket (subscriptions, channels), the
upstream reopens a translated page may cause, and the event bytes the whole process may hold."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from appwrite_token_exchange.emulator.keys import REALTIME
from appwrite_token_exchange.keys import ACCESS_LIMITS, RELAY_BUDGET
from appwrite_token_exchange.relay import pump as relay_pump
from appwrite_token_exchange.relay import translate as relay_translate
from appwrite_token_exchange.settings import Settings, SettingsError

from tests.support.service import COOKIE, PROJECT

ALLOWED = "https://app.example.com"
DOCUMENTS = "databases.db.collections.c.documents"


async def connect(service: Any, cookie: str, query: str = "") -> Any:
    headers = {"Origin": ALLOWED, "Cookie": f"{COOKIE}={cookie}"}
    return await service.ws_connect(f"/v1/realtime?project={PROJECT}{query}", headers=headers)


async def receive(ws: Any, timeout: float = 5.0) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), timeout)


async def frame(ws: Any) -> dict[str, Any]:
    message = await receive(ws)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return dict(json.loads(message.data))


def subscribe_frame(subscription_id: str, *channels: str) -> str:
    return json.dumps({"type": "subscribe", "data": [{"subscriptionId": subscription_id, "channels": list(channels)}]})


async def page(service: Any, cookie: str, query: str = "") -> Any:
    ws = await connect(service, cookie, query)
    assert (await frame(ws))["type"] == "connected"
    return ws


async def closed_with(ws: Any) -> tuple[int, str]:
    """The page's socket is closed: its code and reason, as the SDK sees them."""
    message = await receive(ws)
    while message.type == aiohttp.WSMsgType.TEXT:  # frames the relay sent before closing
        message = await receive(ws)
    assert message.type == aiohttp.WSMsgType.CLOSE, message
    return int(message.data), str(message.extra)


async def publish(emulator: Any, **body: Any) -> int:
    """One event through the emulator's control API; how many sockets it reached."""
    async with aiohttp.ClientSession() as http:
        async with http.post(emulator.server.make_url("/_emulator/realtime/publish"), json=body) as response:
            return int((await response.json())["delivered"])


async def upstreams_closed(emulator: Any) -> None:
    for _ in range(200):
        if emulator.app[REALTIME].open_count == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("an upstream socket outlived its page")


@pytest.mark.parametrize("mode", ["1.8", "1.9.0", "cloud"])
async def test_a_page_past_the_subscription_cap_is_closed_with_1008(service_factory, emulator_factory, mode, logs):
    emulator = await emulator_factory(mode=mode)
    service = await service_factory(emulator, RELAY_MAX_SUBSCRIPTIONS="3")
    _, _, cookie = emulator.signed_in_user()
    ws = await page(service, cookie)
    for n in range(3):
        await ws.send_str(subscribe_frame(f"s{n}", "account"))
        if mode != "cloud":  # translated: the relay answers; a newer server answers itself
            assert (await frame(ws))["data"]["success"] is True
    await ws.send_str(subscribe_frame("s3", "account"))
    assert await closed_with(ws) == (1008, "too_many_subscriptions")
    [closed] = logs.events("relay.closed")
    assert closed["close_reason"] == "too_many_subscriptions" and closed["close_code"] == 1008
    await upstreams_closed(emulator)


@pytest.mark.parametrize("mode", ["1.8", "cloud"])
async def test_a_page_past_the_channel_cap_is_closed_with_1008(service_factory, emulator_factory, mode):
    emulator = await emulator_factory(mode=mode)
    service = await service_factory(emulator, RELAY_MAX_CHANNELS="3")
    _, _, cookie = emulator.signed_in_user()
    ws = await page(service, cookie)
    await ws.send_str(subscribe_frame("s1", "account", f"{DOCUMENTS}.a", f"{DOCUMENTS}.b"))
    if mode != "cloud":
        assert (await frame(ws))["data"]["success"] is True
    # Re-using a known id still adds a channel: the cap counts channels, not frames.
    await ws.send_str(subscribe_frame("s1", f"{DOCUMENTS}.c"))
    assert await closed_with(ws) == (1008, "too_many_channels")


async def test_a_handshake_naming_more_channels_than_the_cap_is_refused(service_factory, emulator) -> None:
    service = await service_factory(RELAY_MAX_CHANNELS="2")
    _, _, cookie = emulator.signed_in_user()
    query = "".join(f"&channels[]={DOCUMENTS}.{n}" for n in range(3))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(service, cookie, query)
    assert refused.value.status == 403
    ws = await page(service, cookie, query="&channels[]=account&channels[]=" + DOCUMENTS)
    await ws.close()


async def test_subscribe_frames_sent_together_share_a_few_reopens(service_factory, emulator_factory) -> None:
    """The issue's storm: 300 frames, each adding a channel, made 301 upstream connects."""
    emulator = await emulator_factory(mode="1.8")
    service = await service_factory(emulator, RELAY_MAX_CHANNELS="1000", RELAY_MAX_SUBSCRIPTIONS="1000")
    user_id, _, cookie = emulator.signed_in_user()
    ws = await page(service, cookie)
    connects = emulator.app[REALTIME].connects
    # Short names: the upstream URL carries every channel, and servers cap a URL near 8 KiB.
    for n in range(300):
        await ws.send_str(subscribe_frame(f"s{n}", f"files.{n}"))
    answers = [await frame(ws) for _ in range(300)]
    assert [a["data"]["subscriptions"][0]["subscriptionId"] for a in answers] == [f"s{n}" for n in range(300)]
    assert all(a["data"]["success"] for a in answers)
    reopens = emulator.app[REALTIME].connects - connects
    assert 1 <= reopens <= 6  # RELAY_RECONNECTS_PER_SOCKET's 6/minute, whatever the timing
    [upstream] = emulator.app[REALTIME].history(open_only=True)
    assert "files.299" in upstream["channels"] and "files.0" in upstream["channels"]
    assert await publish(emulator, channels=["files.150"], roles=[f"user:{user_id}"], payload={"n": 150}) == 1
    event = await frame(ws)
    assert event["data"]["subscriptions"] == ["s150"] and event["data"]["payload"] == {"n": 150}
    await ws.close()


class FakeClock:
    """Stands in for the relay's clock and its waits: a wait moves the clock, no time passes."""

    def __init__(self) -> None:
        self.now = 5000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def pause(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


async def test_a_socket_past_its_reopen_limit_waits_for_its_window(service_factory, emulator_factory, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(relay_translate, "_clock", clock.monotonic)
    monkeypatch.setattr(relay_translate, "_pause", clock.pause)
    emulator = await emulator_factory(mode="1.8")
    service = await service_factory(emulator, RELAY_RECONNECTS_PER_SOCKET="2/minute", RELAY_RECONNECTS_PER_IP="off")
    _, _, cookie = emulator.signed_in_user()
    ws = await page(service, cookie)
    connects = emulator.app[REALTIME].connects
    for n in range(3):
        await ws.send_str(subscribe_frame(f"s{n}", f"{DOCUMENTS}.d{n}"))
        assert (await frame(ws))["data"]["success"] is True
        clock.now += 10
    # Two reopens at once, the third only once the first left the minute (60 s after it, 20 s on).
    assert clock.waits == [40.0]
    assert emulator.app[REALTIME].connects - connects == 3
    await ws.close()


async def test_a_client_ips_reopens_are_limited_across_its_sockets(service_factory, emulator) -> None:
    service = await service_factory(RELAY_RECONNECTS_PER_IP="3/minute")
    limits = service.app[ACCESS_LIMITS]
    assert [await limits.reconnect_wait("203.0.113.7") for _ in range(3)] == [0, 0, 0]
    assert await limits.reconnect_wait("203.0.113.7") > 0
    assert await limits.reconnect_wait("203.0.113.8") == 0  # another client's budget
    text = await (await service.get("/metrics")).text()
    assert 'token_exchange_ratelimit_decisions_total{decision="deny",scope="reconnect_ip"} 1.0' in text or (
        'token_exchange_ratelimit_decisions_total{scope="reconnect_ip",decision="deny"} 1.0' in text)


async def test_events_in_flight_past_the_process_budget_close_their_pages_with_1013(
    service_factory, emulator, monkeypatch, logs
) -> None:
    """One page not taking its large event holds it in flight; the same event for the other pages
    would take the process past RELAY_MAX_BYTES_IN_FLIGHT, so their sockets are cut instead."""
    budget_bytes = 1024 * 1024
    service = await service_factory(RELAY_MAX_BYTES_IN_FLIGHT=str(budget_bytes), RELAY_MAX_EVENT_BYTES=str(budget_bytes))
    budget = service.app[RELAY_BUDGET]
    peaks: list[int] = []
    gate, held = asyncio.Event(), asyncio.Event()
    send = relay_pump.Relay._bounded_send

    async def slow_first_page(self: Any, sending: Any, size: int) -> None:
        peaks.append(budget.used)
        if size > 100_000 and not held.is_set():
            held.set()  # this page reads slowly: its event stays in flight until the gate opens
            await gate.wait()
        await send(self, sending, size)

    monkeypatch.setattr(relay_pump.Relay, "_bounded_send", slow_first_page)
    user_id, _, cookie = emulator.signed_in_user()
    pages = [await page(service, cookie, query="&channels[]=account") for _ in range(3)]
    assert await publish(emulator, userId=user_id, payload={"blob": "x" * 700_000}) == 3
    await held.wait()

    async def outcome(ws: Any) -> tuple[object, str | None]:
        message = await receive(ws, 10.0)
        if message.type == aiohttp.WSMsgType.CLOSE:
            return int(message.data), str(message.extra)
        return "event", None

    outcomes = []
    for finished in asyncio.as_completed([outcome(ws) for ws in pages]):
        outcomes.append(await finished)
        if outcomes.count((1013, "relay_busy")) == 2:
            gate.set()  # the slow page reads again, and gets its event
    assert sorted(outcomes, key=str) == sorted([(1013, "relay_busy")] * 2 + [("event", None)], key=str)
    assert max(peaks) <= budget_bytes
    closed = [line for line in logs.events("relay.closed") if line["close_reason"] == "relay_busy"]
    assert len(closed) == 2
    text = await (await service.get("/metrics")).text()
    assert 'token_exchange_relay_closes_total{reason="relay_busy"} 2.0' in text
    for ws in pages:
        await ws.close()
    assert budget.used == 0


def test_an_event_cap_above_the_budget_is_refused_at_start() -> None:
    env = {"APPWRITE_ENDPOINT": "https://appwrite.example.com/v1", "APPWRITE_PROJECT_ID": "p",
           "RELAY_MAX_BYTES_IN_FLIGHT": "1000000", "RELAY_MAX_EVENT_BYTES": "2000000"}
    with pytest.raises(SettingsError, match="RELAY_MAX_EVENT_BYTES: must not exceed RELAY_MAX_BYTES_IN_FLIGHT"):
        Settings.from_env(env)
