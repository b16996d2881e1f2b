"""The relay benchmark's client, in its own process: opens relayed sockets through the service (and a
few straight to the emulator), then publishes timestamped events and measures their delivery, or
runs a population scenario (bench/relay_pages.py) on the open pages.

Driven over stdin/stdout, one JSON object per line, so the orchestrator can read the service's
memory at the right moments:
    -> {"event": "warmed"}                      <- "open"
    -> {"event": "opened", ...}                 <- any of the commands below, then "close"
       "measure"         -> {"event": "delays", ...}
       "fanout REPEATS"  -> {"event": "fanout", ...}
       "storm FRAMES"    -> {"event": "storm", ...}
       "large BYTES"     -> {"event": "large", ...}
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
from bench.relay_pages import Arrivals, Mode, fan_out, large_event, open_page, percentile, swap_storm, watch

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
    mode: Mode = "plain"
    max_msg_size: int = 1 << 20


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def command() -> str:
    line: str = await asyncio.to_thread(sys.stdin.readline)
    return line.strip()


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
        # What the background pages receive, and whose pages they are (the population scenarios).
        self.arrivals = Arrivals()
        self.users: dict[str, None] = {}

    async def connect(self, base: str, cookie: str) -> aiohttp.ClientWebSocketResponse:
        return await open_page(self.http, base, self.o.project, cookie, self.o.mode, self.o.max_msg_size)

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
                session = background_sessions[index % len(background_sessions)]
                try:
                    socket = await self.connect(self.o.service, session["cookie"])
                except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as error:
                    reason = type(error).__name__
                    if isinstance(error, aiohttp.WSServerHandshakeError):
                        reason = f"handshake {error.status}"
                    self.failures[reason] = self.failures.get(reason, 0) + 1
                    stop.set()  # as shipped, a cap shows up as failures: stop at the first one
                    return
                self.background.append(socket)
                self.users[session["user_id"]] = None
                self.readers.append(asyncio.create_task(watch(socket, self.arrivals)))

        await asyncio.gather(*(one(i) for i in range(wanted)))
        relayed = len(self.background) + sum(1 for p in self.probes if p.kind == "relayed")
        return {
            "relayed": relayed,
            "direct": sum(1 for p in self.probes if p.kind == "direct"),
            "failures": self.failures,
            "seconds": round(time.monotonic() - started, 2),
        }

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
            while (line := await command()) not in ("close", ""):
                say(**await scenario(client, *line.split()))
        finally:
            await client.close_all()
            say(event="closed")


async def scenario(client: Client, name: str, size: str = "0") -> dict[str, Any]:
    """One command of the orchestrator on the open pages; its answer, named as the command."""
    o, pages = client.o, len(client.background)
    if name == "measure":
        return {"event": "delays", **await client.publish_events(o.sessions[0]["user_id"])}
    if name == "fanout":
        return {"event": "fanout", **await fan_out(client.http, o.emulator, client.arrivals, pages, int(size))}
    if name == "storm":
        return {"event": "storm", **await swap_storm(client.http, o.service, o.project, o.sessions[0]["cookie"],
                                                     int(size))}
    if name == "large":
        return {"event": "large", **await large_event(client.http, o.emulator, client.arrivals, list(client.users),
                                                      pages, int(size))}
    raise ValueError(f"unknown command: {name}")


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
    parser.add_argument("--mode", choices=("plain", "translated"), default="plain",
                        help="plain: channels in the page's URL; translated: none, then a subscribe frame")
    parser.add_argument("--max-msg-bytes", type=int, default=1 << 20, help="largest frame a page takes (0: any)")
    args = parser.parse_args()
    raise_open_files_limit(args.sockets + args.probes * 2 + 512)
    with open(args.sessions) as handle:
        sessions = json.load(handle)
    options = Options(
        args.service, args.emulator, args.project, sessions, args.sockets, min(args.probes, args.sockets),
        args.events, args.interval, args.concurrency, args.mode, args.max_msg_bytes,
    )
    asyncio.run(run(options))


if __name__ == "__main__":
    main()
