"""Pages of the relay benchmark, in its client process: a page opened plain (its channels in the URL)
or translated (no channels, then a `subscribe` frame), what every open page receives, and the
client's side of the population scenarios: one event to every page, a storm of subscribe frames
on one translated page, and one large event to many pages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from typing import Any, Literal

import aiohttp

Mode = Literal["plain", "translated"]
CONNECT_TIMEOUT_SECONDS = 15.0
# How long a scenario waits for its last page (or answer) before counting what it has.
SCENARIO_TIMEOUT_SECONDS = 120.0
# A translated page asks for what a plain page names in its URL.
PAGE_SUBSCRIPTION = json.dumps({"type": "subscribe", "data": [{"subscriptionId": "s1", "channels": ["account"]}]})
# Events the scenarios publish carry a mark in their payload; found without parsing the frame,
# which may be megabytes (the emulator writes compact JSON, the relay may re-encode with spaces).
_MARK = re.compile(r'"mark": ?"([A-Za-z0-9_.-]+)"')


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def open_page(
    http: aiohttp.ClientSession, base: str, project: str, cookie: str, mode: Mode, max_msg_size: int
) -> aiohttp.ClientWebSocketResponse:
    """A page's socket, once it is ready for events: `connected`, and (translated) the answer to its subscribe."""
    query = f"project={project}" + ("&channels[]=account" if mode == "plain" else "")
    socket = await http.ws_connect(
        f"{base.replace('http', 'ws', 1)}/v1/realtime?{query}",
        headers={"Cookie": f"a_session_{project}={cookie}"},
        timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
        autoping=True,
        max_msg_size=max_msg_size,
    )
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            await _expect(socket, "connected")
            if mode == "translated":
                await socket.send_str(PAGE_SUBSCRIPTION)
                await _expect(socket, "response")
    except BaseException:
        await socket.close()
        raise
    return socket


async def _expect(socket: aiohttp.ClientWebSocketResponse, kind: str) -> None:
    message = await socket.receive()
    frame = json.loads(message.data) if message.type is aiohttp.WSMsgType.TEXT else None
    if not isinstance(frame, dict) or frame.get("type") != kind:
        raise ConnectionError(f"no {kind} frame: {message.type.name} {str(message.data)[:120]}")


class Arrivals:
    """When the pages got each marked event, and how pages ended (close code -> pages)."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.closes: dict[int, int] = {}
        self._changed = asyncio.Event()

    def got(self, mark: str) -> int:
        return len(self.times.get(mark, ()))

    def frame(self, data: str) -> None:
        found = _MARK.search(data)
        if found is not None:
            self.times.setdefault(found.group(1), []).append(time.monotonic())
            self._changed.set()

    def ended(self, code: int | None) -> None:
        self.closes[code or 0] = self.closes.get(code or 0, 0) + 1
        self._changed.set()

    async def until_got(self, mark: str, pages: int) -> None:
        await self.until(lambda: self.got(mark) >= pages)

    async def until(self, done: Callable[[], bool]) -> None:
        """Until `done()` holds, or SCENARIO_TIMEOUT_SECONDS have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SCENARIO_TIMEOUT_SECONDS):
                while not done():
                    self._changed.clear()
                    await self._changed.wait()


async def watch(socket: aiohttp.ClientWebSocketResponse, arrivals: Arrivals) -> None:
    """A page's reader for as long as it is open."""
    async for message in socket:
        if message.type is aiohttp.WSMsgType.TEXT:
            arrivals.frame(message.data)
    arrivals.ended(socket.close_code)


async def publish(http: aiohttp.ClientSession, emulator: str, body: bytes) -> None:
    async with http.post(f"{emulator}/_emulator/realtime/publish", data=body,
                         headers={"Content-Type": "application/json"}) as answer:
        answer.raise_for_status()


async def fan_out(
    http: aiohttp.ClientSession, emulator: str, arrivals: Arrivals, pages: int, repeats: int
) -> dict[str, Any]:
    """One event to every page at once (role `any` on `account`, which every page listens on), `repeats`
    times: from the publish call to the last page that got it."""
    runs = []
    for index in range(repeats):
        mark = f"fanout-{index}"
        body = {"channels": ["account"], "roles": ["any"], "events": ["bench.fanout"], "payload": {"mark": mark}}
        started = time.monotonic()
        await publish(http, emulator, json.dumps(body).encode())
        published = time.monotonic()
        await arrivals.until_got(mark, pages)
        delays = [1000 * (t - started) for t in arrivals.times.get(mark, [])]
        runs.append({
            "received": len(delays), "publish_ms": round(1000 * (published - started), 1),
            "p50_ms": round(percentile(delays, 50), 1), "last_ms": round(max(delays), 1) if delays else None,
        })
        await asyncio.sleep(0.5)  # the pages' reads settle before the next event
    return {"pages": pages, "runs": runs}


async def swap_storm(
    http: aiohttp.ClientSession, service: str, project: str, cookie: str, frames: int
) -> dict[str, Any]:
    """One more translated page sends `frames` subscribe frames as fast as it can, each adding a channel;
    how many were answered, and when the last answer came."""
    socket = await open_page(http, service, project, cookie, "translated", 1 << 20)
    try:
        started = time.monotonic()
        for index in range(frames):
            item = {"subscriptionId": f"storm{index}", "channels": [f"databases.db.collections.c.documents.d{index}"]}
            await socket.send_str(json.dumps({"type": "subscribe", "data": [item]}))
        sent = time.monotonic() - started
        answers: dict[str, int] = {"response": 0, "error": 0}
        said: dict[str, int] = {}  # error message -> frames answered with it
        last = started
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SCENARIO_TIMEOUT_SECONDS):
                while sum(answers.values()) < frames:
                    message = await socket.receive()
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    frame = json.loads(message.data)
                    if frame.get("type") in answers:
                        answers[frame["type"]] += 1
                        last = time.monotonic()
                    if frame.get("type") == "error":
                        message_text = str(frame.get("data", {}).get("message"))[:200]
                        said[message_text] = said.get(message_text, 0) + 1
        return {"frames": frames, "sent_seconds": round(sent, 3), "responses": answers["response"],
                "errors": answers["error"], "said": said, "seconds": round(last - started, 3),
                "close_code": socket.close_code}
    finally:
        await socket.close()


async def large_event(
    http: aiohttp.ClientSession, emulator: str, arrivals: Arrivals, users: list[str], pages: int, size: int
) -> dict[str, Any]:
    """One event of `size` payload bytes to every page, published to each page's user at once: the
    emulator writes one publish call's sockets one after another, Appwrite pushes without waiting."""
    payload = {"mark": "large", "blob": "x" * size}
    bodies = [json.dumps({"userId": user, "events": ["bench.large"], "payload": payload}).encode() for user in users]
    closed_before = sum(arrivals.closes.values())
    started = time.monotonic()
    await asyncio.gather(*(publish(http, emulator, b) for b in bodies))

    def settled() -> int:
        return arrivals.got("large") + sum(arrivals.closes.values()) - closed_before

    await arrivals.until(lambda: settled() >= pages)
    return {"pages": pages, "bytes": size, "received": arrivals.got("large"),
            "closes": {str(code): n for code, n in arrivals.closes.items()}, "silent": pages - settled(),
            "seconds": round(time.monotonic() - started, 2)}
