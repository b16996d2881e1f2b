"""Redis topologies for the benchmark: the test suite's Cluster and Sentinel rigs (real servers),
pinned away from the system under test; round trips per exchange counted with MONITOR; the keys
and bytes an active session holds in Redis."""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.loadgen import LoadResult
from bench.procs import Child

# What a client sends besides the exchange's own calls (discovery, health, connection set-up).
_HOUSEKEEPING = frozenset({"ping", "info", "cluster", "sentinel", "command", "hello", "client", "select", "role",
                           "readonly", "auth", "monitor"})


@dataclass(frozen=True)
class Topology:
    key: str
    url: str
    data_ports: list[int]  # where the exchange's commands land (a Cluster's masters; a Sentinel set's master)


@contextmanager
def topologies(cpus: frozenset[int], enabled: bool = True) -> Iterator[list[Topology]]:
    """A 3-master Cluster and a Sentinel set (master, replica, 3 sentinels), on `cpus`."""
    if not enabled:
        yield []
        return
    # The test suite's rigs, loaded by name: mypy checks bench/, and tests/ is typed for pytest only.
    rigs = {name: importlib.import_module(f"tests.support.{name}") for name in ("redis_cluster", "redis_sentinel")}
    with ExitStack() as stack:
        cluster = stack.enter_context(rigs["redis_cluster"].redis_cluster())
        sentinel = stack.enter_context(rigs["redis_sentinel"].redis_sentinel())
        _pin_redis_children(cpus)
        yield [
            Topology("redis-cluster", cluster.url, list(cluster.ports)),
            Topology("redis-sentinel", sentinel.url, [sentinel.master_port()]),
        ]


def _pin_redis_children(cpus: frozenset[int]) -> None:
    """The rigs start their servers unpinned: every redis-server child of ours goes to `cpus`."""
    me = str(os.getpid())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == me and fields.get("Name", "").strip().startswith(("redis", "valkey")):
            os.sched_setaffinity(int(proc.name), set(cpus))


def round_trips(ports: list[int], issued: Callable[[], int], run: Callable[[], LoadResult]) -> float:
    """Commands clients sent (one per round trip; a script's own calls left out) per exchange
    issued, over one load run with MONITOR on every data port (not a measured run: MONITOR slows
    Redis)."""
    stop = threading.Event()
    seen: list[str] = []

    def watch(port: int, ready: threading.Event) -> None:
        client = redis.Redis(port=port, socket_timeout=0.5)
        try:
            with client.monitor() as monitor:  # type: ignore[no-untyped-call]
                ready.set()
                while not stop.is_set():
                    try:
                        command = monitor.next_command()
                    except redis.TimeoutError:
                        continue
                    if command and command["client_type"] != "lua":
                        seen.append(str(command["command"]).split(" ", 1)[0].lower())
        finally:
            ready.set()
            client.close()

    readies = [threading.Event() for _ in ports]
    threads = [threading.Thread(target=watch, args=(port, ready), daemon=True)
               for port, ready in zip(ports, readies, strict=True)]
    for thread in threads:
        thread.start()
    for ready in readies:
        ready.wait(10)
    time.sleep(0.2)
    before = issued()
    run()
    time.sleep(0.3)  # the last commands in flight
    after = issued()
    stop.set()
    for thread in threads:
        thread.join(10)
    return len([command for command in seen if command not in _HOUSEKEEPING]) / max(1, after - before)


@dataclass(frozen=True)
class RedisFootprint:
    sessions: int
    keys: int
    bytes: int
    per_scope: dict[str, int]
    scope_bytes: dict[str, int]

    @property
    def keys_per_session(self) -> float:
        return self.keys / max(1, self.sessions)

    @property
    def bytes_per_session(self) -> float:
        return self.bytes / max(1, self.sessions)

    @property
    def bytes_per_user(self) -> float:
        """An active user with a session of their own and an IP of their own (the worst case):
        the per-session keys, plus one IP window at its measured average size."""
        ip = "rtx:rl:ip"
        shared = self.scope_bytes.get(ip, 0)
        ip_each = shared / max(1, self.per_scope.get(ip, 0))
        return (self.bytes - shared) / max(1, self.sessions) + ip_each

    def to_json(self) -> dict[str, object]:
        return {"sessions": self.sessions, "keys": self.keys, "bytes": self.bytes, "per_scope": self.per_scope,
                "scope_bytes": self.scope_bytes, "bytes_per_user": round(self.bytes_per_user, 1),
                "keys_per_session": round(self.keys_per_session, 2),
                "bytes_per_session": round(self.bytes_per_session, 1)}


def footprint(url: str, sessions: int) -> RedisFootprint:
    """Every key the service holds in a standalone Redis right after a run, with MEMORY USAGE
    (key, value and Redis's per-key overhead), grouped by what it is for."""
    client = redis.Redis.from_url(url)
    try:
        keys, total, scopes, sizes = 0, 0, dict[str, int](), dict[str, int]()
        for key in client.scan_iter(count=1000):
            name = key.decode(errors="replace")
            scope = ":".join(name.split(":")[:3])  # rtx:rl:session, rtx:cache:user..., ...
            usage = int(client.memory_usage(key) or 0)
            keys, total = keys + 1, total + usage
            scopes[scope] = scopes.get(scope, 0) + 1
            sizes[scope] = sizes.get(scope, 0) + usage
        return RedisFootprint(sessions, keys, total, scopes, sizes)
    finally:
        client.close()


def service_child_issued(child: Child) -> Callable[[], int]:
    from bench.exchange import issued_count

    return lambda: issued_count(child)
