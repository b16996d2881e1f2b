"""The relay benchmark's client, in its own process: opens relayed sockets through the service (and a
few straight to the emulator), then publishes timestamped events and measures their delivery.

Driven over stdin/stdout, one JSON object per line, so the orchestrator can read the service's
memory at the right moments:
    -> {"event": "warmed"}                      <- "open"
    -> {"event": "opened", ...}                 <- "measure" | "close"
    -> {"event": "delays", ...}                 <- "close"
    -> {"event": "closed"}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.procs import raise_open_files_limit

CONNECT_TIMEOUT_SECONDS = 15.0
EVENT_TIMEOUT_SECONDS = 2.0


@dataclass
class Probe:
    kind: str  # "direct" or "relayed"
    socket: aiohttp.ClientWebSocketResponse
    delays: list[float] = field(default_factory=list)


@dataclass
class Options:
    service: str
    emulator: str
    project: str
    sessions: list[dict[str, str]]
    sockets: int
    probes: int
    events: int
    interval: float
    concurrency: int


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def command() -> str:
    line: str = await asyncio.to_thread(sys.stdin.readline)
    return line.strip()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


class Client:
    def __init__(self, options: Options, http: aiohttp.ClientSession) -> None:
        self.o = options
        self.http = http
        self.background: list[aiohttp.ClientWebSocketResponse] = []
        self.probes: list[Probe] = []
        self.readers: list[asyncio.Task[None]] = []
        self.failures: dict[str, int] = {}
        self.seen: dict[int, int] = {}
        self.arrived = asyncio.Event()

    def url(self, base: str) -> str:
        return f"{base.replace('http', 'ws', 1)}/v1/realtime?project={self.o.project}&channels[]=account"

    async def connect(self, base: str, cookie: str) -> aiohttp.ClientWebSocketResponse:
        socket = await self.http.ws_connect(
            self.url(base),
            headers={"Cookie": f"a_session_{self.o.project}={cookie}"},
            timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            autoping=True,
            max_msg_size=1 << 20,
        )
        try:
            first = await asyncio.wait_for(socket.receive(), CONNECT_TIMEOUT_SECONDS)
            frame = json.loads(first.data) if first.type is aiohttp.WSMsgType.TEXT else None
            if not isinstance(frame, dict) or frame.get("type") != "connected":
                raise ConnectionError(f"no connected frame: {first.type.name} {str(first.data)[:120]}")
        except BaseException:
            await socket.close()
            raise
        return socket

    async def warm(self, count: int) -> None:
        """Open and close a few relayed sockets, so the service's first-use costs are paid before measuring."""
        for index in range(count):
            session = self.o.sessions[1 + index % (len(self.o.sessions) - 1)]
            with contextlib.suppress(Exception):
                socket = await self.connect(self.o.service, session["cookie"])
                await socket.close()

    async def open_all(self) -> dict[str, Any]:
        started = time.monotonic()
        probe_cookie = self.o.sessions[0]["cookie"]
        # Probes first and interleaved: the emulator sends an event to sockets in the order they opened.
        for _ in range(self.o.probes):
            for kind, base in (("direct", self.o.emulator), ("relayed", self.o.service)):
                probe = Probe(kind, await self.connect(base, probe_cookie))
                self.probes.append(probe)
                self.readers.append(asyncio.create_task(self.read_probe(probe)))
        wanted = self.o.sockets - self.o.probes
        stop = asyncio.Event()
        semaphore = asyncio.Semaphore(self.o.concurrency)
        background_sessions = self.o.sessions[1:]

        async def one(index: int) -> None:
            async with semaphore:
                if stop.is_set():
                    return
                cookie = background_sessions[index % len(background_sessions)]["cookie"]
                try:
                    socket = await self.connect(self.o.service, cookie)
                except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as error:
                    reason = type(error).__name__
                    if isinstance(error, aiohttp.WSServerHandshakeError):
                        reason = f"handshake {error.status}"
                    self.failures[reason] = self.failures.get(reason, 0) + 1
                    stop.set()  # as shipped, a cap shows up as failures: stop at the first one
                    return
                self.background.append(socket)
                self.readers.append(asyncio.create_task(self.drain(socket)))

        await asyncio.gather(*(one(i) for i in range(wanted)))
        relayed = len(self.background) + sum(1 for p in self.probes if p.kind == "relayed")
        return {
            "relayed": relayed,
            "direct": sum(1 for p in self.probes if p.kind == "direct"),
            "failures": self.failures,
            "seconds": round(time.monotonic() - started, 2),
        }

    async def drain(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        async for _ in socket:
            pass

    async def read_probe(self, probe: Probe) -> None:
        async for message in probe.socket:
            received = time.time()
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            if frame.get("type") != "event":
                continue
            payload = frame["data"]["payload"]
            probe.delays.append(received - payload["t"])
            self.seen[payload["seq"]] = self.seen.get(payload["seq"], 0) + 1
            self.arrived.set()

    async def publish_events(self, probe_user: str) -> dict[str, Any]:
        expected = len(self.probes)
        lost = 0
        for seq in range(self.o.events):
            self.arrived.clear()
            body = {"userId": probe_user, "events": ["bench.probe"], "payload": {"seq": seq, "t": time.time()}}
            async with self.http.post(f"{self.o.emulator}/_emulator/realtime/publish", json=body) as answer:
                answer.raise_for_status()
            deadline = time.monotonic() + EVENT_TIMEOUT_SECONDS
            while self.seen.get(seq, 0) < expected and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), max(0.0, deadline - time.monotonic()))
                self.arrived.clear()
            lost += expected - self.seen.get(seq, 0)
            await asyncio.sleep(self.o.interval)
        result: dict[str, Any] = {"lost": lost, "still_open": sum(1 for s in self.background if not s.closed)}
        for kind in ("direct", "relayed"):
            delays = [1000 * d for p in self.probes if p.kind == kind for d in p.delays]
            result[kind] = {
                "n": len(delays),
                "p50_ms": round(percentile(delays, 50), 3),
                "p99_ms": round(percentile(delays, 99), 3),
                "max_ms": round(max(delays), 3) if delays else None,
            }
        return result

    async def close_all(self) -> None:
        sockets = self.background + [p.socket for p in self.probes]
        semaphore = asyncio.Semaphore(self.o.concurrency)

        async def close(socket: aiohttp.ClientWebSocketResponse) -> None:
            async with semaphore:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(socket.close(), 5)

        await asyncio.gather(*(close(s) for s in sockets))
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def run(options: Options) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        client = Client(options, http)
        try:
            await client.warm(10)
            say(event="warmed")
            if await command() != "open":
                return
            say(event="opened", **await client.open_all())
            if await command() == "measure":
                say(event="delays", **await client.publish_events(options.sessions[0]["user_id"]))
                await command()
        finally:
            await client.close_all()
            say(event="closed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--service", required=True, help="http://127.0.0.1:PORT of the service")
    parser.add_argument("--emulator", required=True, help="http://127.0.0.1:PORT of the emulator")
    parser.add_argument("--project", required=True)
    parser.add_argument("--sessions", required=True, help="JSON file: [{user_id, cookie}], the first is the probe")
    parser.add_argument("--sockets", type=int, required=True, help="relayed sockets to open in all")
    parser.add_argument("--probes", type=int, default=10, help="measuring sockets of each kind")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    raise_open_files_limit(args.sockets + args.probes * 2 + 512)
    with open(args.sessions) as handle:
        sessions = json.load(handle)
    options = Options(
        args.service, args.emulator, args.project, sessions, args.sockets, min(args.probes, args.sockets),
        args.events, args.interval, args.concurrency,
    )
    asyncio.run(run(options))


if __name__ == "__main__":
    main()
