"""Relay at population scale, each figure beside a floor measured in the same run: memory per relayed
socket and the time one event takes to reach every page, for the service relaying plainly, the
service translating (APPWRITE_REALTIME_CHANNELS_IN_URL=yes) and a bare aiohttp pass-through
(bench/relay_floor_app.py); a storm of subscribe frames on one translated page; one large event to
many pages under the byte budget of a 256 MiB container; and what the shipped pod's derived caps
would hold at the memory measured here."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appwrite_token_exchange.capacity import Capacity, MemoryLimit, plan

from bench.exchange import service_env
from bench.gc_pauses import read_pauses
from bench.procs import PYTHON, Child, Children, Cores, free_port, http_call, raise_open_files_limit, wait_http
from bench.relay import RELAY_LIMITS, ClientProcess, start_client
from bench.upstream import PROJECT, create_sessions, start_emulator

MIB = 1024 * 1024
# As the relay benchmark's, and the derived caps out of the way: this machine's cgroup (if any)
# is not the pod's, and RELAY_MAX_SOCKETS must not refuse the pages being counted.
POPULATION_LIMITS = RELAY_LIMITS | {"RELAY_MAX_SOCKETS": "20000", "CONTAINER_MEMORY_LIMIT": "none"}
# Appwrite takes a publish of several MiB; aiohttp's own cap on request bodies (1 MiB) would not.
EMULATOR_CAPS = ("--max-body-bytes", str(64 * MIB))
# The shipped pod (deploy/k8s/base/deployment.yaml: limits.memory).
POD_MEMORY_BYTES = 256 * MIB
POD_MEMORY = "256Mi"
USERS = 20


@dataclass(frozen=True)
class Sizes:
    sockets: int  # pages per server in the memory and fan-out runs
    fanouts: int  # events published to all pages, one after another
    storm_frames: int
    large_sockets: int
    large_bytes: int


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    mode: str  # how its pages subscribe: "plain" or "translated"
    env: dict[str, str] = field(default_factory=dict)
    floor: bool = False


SERVERS = (
    Server("floor", "floor (bare aiohttp pass-through)", "plain", floor=True),
    Server("plain", "service, plain relay", "plain"),
    Server("translated", "service, translated", "translated", {"APPWRITE_REALTIME_CHANNELS_IN_URL": "yes"}),
)
LARGE = Server("large", "service, large event", "plain", {"CONTAINER_MEMORY_LIMIT": POD_MEMORY})


@dataclass
class Storm:
    frames: int
    responses: int
    errors: int
    seconds: float
    sent_seconds: float
    connects: int  # upstream handshakes the emulator saw during the storm, the page's first one included
    close_code: int | None
    said: dict[str, int] = field(default_factory=dict)  # error message -> frames answered with it


@dataclass
class Population:
    """One server holding N pages: memory per page, and one event to all of them."""

    key: str
    label: str
    wanted: int
    opened: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    open_seconds: float = 0.0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    fanouts: list[dict[str, Any]] = field(default_factory=list)
    gc_pauses: list[float] = field(default_factory=list)  # the server's full collections during the fan-outs
    storm: Storm | None = None

    @property
    def kib_per_socket(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / max(1, self.opened)

    @property
    def last_page_ms(self) -> float | None:
        """The median over events of the time from the publish call to the last page that got it."""
        lasts = [run["last_ms"] for run in self.fanouts if run["last_ms"] is not None]
        return statistics.median(lasts) if lasts else None

    @property
    def missed(self) -> int:
        return sum(self.opened - run["received"] for run in self.fanouts)


@dataclass
class LargeEvent:
    pages: int
    event_bytes: int
    budget_bytes: int
    received: int = 0
    closes: dict[str, int] = field(default_factory=dict)
    silent: int = 0
    seconds: float = 0.0
    rss_before_kib: int = 0
    peak_before_kib: int = 0
    peak_after_kib: int = 0
    rss_after_kib: int = 0


@dataclass
class PopulationResult:
    sizes: Sizes
    populations: dict[str, Population]
    large: LargeEvent | None
    pod: Capacity

    def ratio(self, key: str, value: Callable[[Population], float | None]) -> float | None:
        mine, floor = value(self.populations[key]), value(self.populations["floor"])
        return mine / floor if mine is not None and floor else None

    def to_json(self) -> dict[str, object]:
        return {
            "sizes": asdict(self.sizes),
            "populations": {k: {**asdict(p), "kib_per_socket": round(p.kib_per_socket, 2),
                                "last_page_ms": p.last_page_ms} for k, p in self.populations.items()},
            "kib_ratio": {k: self.ratio(k, lambda p: p.kib_per_socket) for k in ("plain", "translated")},
            "large_event": asdict(self.large) if self.large else None,
            "pod": self.pod.to_json(),
        }


def population_bench(
    children: Children, cores: Cores, workdir: Path, sizes: Sizes, log: Callable[[str], None]
) -> PopulationResult:
    # Two descriptors per page in the server; children inherit the raised soft limit.
    limit = raise_open_files_limit(2 * sizes.sockets + 1024)
    wanted = min(sizes.sockets, (limit - 512) // 2)
    emulator = start_emulator(children, cores.rest, lean=True, name="population-emulator", lean_args=EMULATOR_CAPS)
    try:
        sessions_file = _sessions(emulator, max(USERS, sizes.large_sockets) + 1, workdir)
        populations = {s.key: memory_and_fan_out(children, cores, emulator, sessions_file, s, wanted, sizes, log)
                       for s in SERVERS}
        large = large_event(children, cores, emulator, sessions_file, sizes, log)
    finally:
        children.stop(emulator)
    return PopulationResult(sizes, populations, large, shipped_pod())


def _sessions(emulator: Child, count: int, workdir: Path) -> Path:
    path = workdir / "population-sessions.json"
    sessions = create_sessions(emulator, count, prefix="population")
    path.write_text(json.dumps([{"user_id": s.user_id, "cookie": s.cookie} for s in sessions]))
    return path


def gc_log(children: Children, server: Server) -> Path:
    return children.workdir / f"population-{server.key}-gc.log"


def _start(children: Children, cores: Cores, emulator: Child, server: Server, env: dict[str, str]) -> Child:
    """The server, its full garbage collections written to gc_log (bench/gc_pauses.py)."""
    assert emulator.port is not None
    port = free_port()
    if server.floor:
        module = ["bench.relay_floor_app"]
        env = {"APPWRITE_ENDPOINT": f"http://127.0.0.1:{emulator.port}/v1", "APPWRITE_PROJECT_ID": PROJECT,
               "HOST": "127.0.0.1", "PORT": str(port)}
    else:
        module = ["appwrite_token_exchange", "serve"]
        env = service_env(emulator.port, port, "info", None) | env | server.env
    log = gc_log(children, server)
    log.unlink(missing_ok=True)
    child = children.start(f"population-{server.key}", [PYTHON, "-m", "bench.gc_pauses", str(log), *module], env=env,
                           cpus=cores.sut, port=port, stdout_to_null=True)
    wait_http(child, "/livez")
    return child


@contextmanager
def open_pages(
    children: Children, cores: Cores, server: Child, emulator: Child, sessions_file: Path, count: int, mode: str,
    *more: str,
) -> Iterator[tuple[ClientProcess, dict[str, Any], int]]:
    """`count` pages open through `server`: the client, its `opened` answer, and the server's RSS before."""
    child = start_client(children, cores, server, emulator, sessions_file, count, "--probes", "0", "--mode", mode,
                         *more)
    try:
        client = ClientProcess(child)
        client.expect("warmed")
        before = server.rss()
        client.send("open")
        yield client, client.expect("opened"), before
        client.send("close")
        client.expect("closed")
    finally:
        children.stop(child)


def memory_and_fan_out(
    children: Children, cores: Cores, emulator: Child, sessions_file: Path, server: Server, count: int,
    sizes: Sizes, log: Callable[[str], None],
) -> Population:
    found = Population(server.key, server.label, count)
    process = _start(children, cores, emulator, server, POPULATION_LIMITS)
    try:
        pages = open_pages(children, cores, process, emulator, sessions_file, count, server.mode)
        with pages as (client, opened, before):
            found.rss_before_kib, found.rss_after_kib = before, process.rss()
            found.opened, found.failures = int(opened["relayed"]), dict(opened["failures"])
            found.open_seconds = float(opened["seconds"])
            log(f"  population {server.key}: {found.opened}/{count} pages in {found.open_seconds:.1f} s, "
                f"{found.kib_per_socket:.1f} KiB/socket" + (f"; failures {found.failures}" if found.failures else ""))
            if found.opened:
                since = time.monotonic()
                client.send(f"fanout {sizes.fanouts}")
                found.fanouts = client.expect("fanout")["runs"]
                found.gc_pauses = read_pauses(gc_log(children, server), since, time.monotonic())
                log(f"  population {server.key}: fan-out {found.fanouts}; full collections {found.gc_pauses}")
            if server.mode == "translated":
                found.storm = swap_storm(client, emulator, sizes.storm_frames)
                log(f"  population {server.key}: swap storm {found.storm}")
    finally:
        children.stop(process)
    return found


def swap_storm(client: ClientProcess, emulator: Child, frames: int) -> Storm:
    """One translated page subscribes to `frames` new channels as fast as it can; the reopens it cost
    are the upstream handshakes the emulator counts meanwhile (its other pages stay put)."""
    before = _emulator_connects(emulator)
    client.send(f"storm {frames}")
    answer = client.expect("storm")
    connects = _emulator_connects(emulator) - before
    return Storm(frames, answer["responses"], answer["errors"], answer["seconds"], answer["sent_seconds"], connects,
                 answer["close_code"], answer["said"])


def _emulator_connects(emulator: Child) -> int:
    assert emulator.port is not None
    status, body = http_call(emulator.port, "GET", "/_emulator/stats")
    if status != 200:
        raise RuntimeError(f"emulator stats: {status} {body[:200]!r}")
    return int(json.loads(body)["realtime"]["connects"])


def large_event(
    children: Children, cores: Cores, emulator: Child, sessions_file: Path, sizes: Sizes, log: Callable[[str], None]
) -> LargeEvent:
    """One `large_bytes` event to `large_sockets` pages (each its own user) at once, in a service whose
    byte budget is derived from the pod's memory limit: who got it, who was closed, and the peak RSS."""
    # What the service derives from CONTAINER_MEMORY_LIMIT, RELAY_MAX_SOCKETS being set.
    budget = plan(MemoryLimit(POD_MEMORY_BYTES, "CONTAINER_MEMORY_LIMIT"), 20_000, None).max_bytes_in_flight
    found = LargeEvent(sizes.large_sockets, sizes.large_bytes, budget)
    process = _start(children, cores, emulator, LARGE, POPULATION_LIMITS)
    try:
        with open_pages(children, cores, process, emulator, sessions_file, sizes.large_sockets, "plain",
                    "--max-msg-bytes", "0") as (client, opened, _):
            found.pages = int(opened["relayed"])
            found.rss_before_kib, found.peak_before_kib = process.rss(), process.peak_rss()
            client.send(f"large {sizes.large_bytes}")
            answer = client.expect("large")
            found.peak_after_kib, found.rss_after_kib = process.peak_rss(), process.rss()
            found.received, found.closes = int(answer["received"]), dict(answer["closes"])
            found.silent, found.seconds = int(answer["silent"]), float(answer["seconds"])
            log(f"  population large event: {answer}")
    finally:
        children.stop(process)
    return found


def shipped_pod(tls: bool = False) -> Capacity:
    """The caps the shipped pod derives at its defaults (no RELAY_MAX_* set), by default for the ws://
    upstream measured here (bench/relay_tls.py measures wss://)."""
    return plan(MemoryLimit(POD_MEMORY_BYTES, "deploy/k8s/base"), None, None, tls=tls)
