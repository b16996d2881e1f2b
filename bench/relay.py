"""The relay benchmark: N relayed sockets in one service process, memory per socket, and the delay the
relay adds to event delivery compared with a socket straight to the emulator."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.exchange import service_env
from bench.procs import PYTHON, Child, Children, Cores, free_port, raise_open_files_limit, wait_http
from bench.upstream import PROJECT, Session, create_sessions, start_emulator

# The relay's own limits are switched off for the run (its per-IP connect limit would refuse us),
# and so are its per-caller socket caps: one load generator holds every socket, from one IP.
RELAY_LIMITS = {
    "RATE_LIMIT_IP": "off",
    "RATE_LIMIT_SESSION": "off",
    "RATE_LIMIT_USER": "off",
    "RELAY_MAX_SOCKETS_PER_IP": "1000000",
    "RELAY_MAX_SOCKETS_PER_SESSION": "1000000",
    "RELAY_MAX_SOCKETS_PER_USER": "1000000",
    "MAX_CONNECTIONS_PER_IP": "1000000",
    "MAX_REQUESTS_IN_FLIGHT_PER_IP": "1000000",
}
# Upstream connections the shipped default allows per process (UPSTREAM_MAX_CONCURRENCY).
SHIPPED_UPSTREAM_CONCURRENCY = 64


@dataclass
class Attempt:
    env_note: str
    wanted: int
    opened: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    open_seconds: float = 0.0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    delays: dict[str, Any] | None = None

    @property
    def kib_per_socket(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / max(1, self.opened)

    def to_json(self) -> dict[str, object]:
        return {
            "settings": self.env_note, "wanted": self.wanted, "opened": self.opened, "failures": self.failures,
            "open_seconds": self.open_seconds, "rss_before_mib": round(self.rss_before_kib / 1024, 1),
            "rss_after_mib": round(self.rss_after_kib / 1024, 1), "kib_per_socket": round(self.kib_per_socket, 2),
            "delays": self.delays,
        }


@dataclass
class RelayResult:
    sockets_wanted: int
    open_files_limit: int
    attempts: list[Attempt]

    @property
    def shipped(self) -> Attempt:
        return self.attempts[0]

    @property
    def measured(self) -> Attempt:
        """The attempt that opened every socket and measured delays (the last one)."""
        return self.attempts[-1]

    def added_ms(self, quantile: str) -> float | None:
        delays = self.measured.delays
        if not delays or not delays["relayed"]["n"] or not delays["direct"]["n"]:
            return None
        return float(delays["relayed"][quantile] - delays["direct"][quantile])

    def to_json(self) -> dict[str, object]:
        return {
            "sockets_wanted": self.sockets_wanted, "open_files_limit": self.open_files_limit,
            "attempts": [a.to_json() for a in self.attempts],
            "added_p50_ms": self.added_ms("p50_ms"), "added_p99_ms": self.added_ms("p99_ms"),
        }


class ClientProcess:
    """The relay client child, spoken to one line at a time."""

    def __init__(self, child: Child) -> None:
        self.child = child
        assert child.popen.stdin is not None and child.popen.stdout is not None
        self._in: IO[bytes] = child.popen.stdin
        self._out: IO[bytes] = child.popen.stdout

    def expect(self, event: str) -> dict[str, Any]:
        while True:
            line = self._out.readline()
            if not line:
                raise RuntimeError(f"relay client ended before '{event}':\n{self.child.log_tail()}")
            message: dict[str, Any] = json.loads(line)
            if message.get("event") == event:
                return message

    def send(self, text: str) -> None:
        self._in.write(text.encode() + b"\n")
        self._in.flush()


def start_client(
    children: Children, cores: Cores, server: Child, emulator: Child, sessions_file: Path, sockets: int, *more: str
) -> Child:
    """The relay client child (bench/relay_client.py) for `sockets` pages through `server`; `more`: its options."""
    return children.start(
        "relay-client",
        [PYTHON, "-m", "bench.relay_client", "--service", f"http://127.0.0.1:{server.port}",
         "--emulator", f"http://127.0.0.1:{emulator.port}", "--project", PROJECT,
         "--sessions", str(sessions_file), "--sockets", str(sockets), *more],
        cpus=cores.rest, stdin=subprocess.PIPE, stdout_pipe=True,
    )


def _attempt(
    children: Children,
    cores: Cores,
    emulator: Child,
    sessions_file: Path,
    attempt: Attempt,
    extra_env: dict[str, str],
    probes: int,
    events: int,
    log: Callable[[str], None],
) -> Attempt:
    assert emulator.port is not None
    port = free_port()
    env = service_env(emulator.port, port, "info", None) | RELAY_LIMITS | extra_env
    service = children.start("relay-service", [PYTHON, "-m", "appwrite_token_exchange", "serve"], env=env,
                             cpus=cores.sut, port=port, stdout_to_null=True)
    client_child: Child | None = None
    try:
        wait_http(service, "/livez")
        client_child = start_client(children, cores, service, emulator, sessions_file, attempt.wanted,
                                    "--probes", str(probes), "--events", str(events))
        client = ClientProcess(client_child)
        client.expect("warmed")
        attempt.rss_before_kib = service.rss()
        client.send("open")
        opened = client.expect("opened")
        attempt.opened = int(opened["relayed"])
        attempt.failures = dict(opened["failures"])
        attempt.open_seconds = float(opened["seconds"])
        attempt.rss_after_kib = service.rss()
        log(f"  relay ({attempt.env_note}): {attempt.opened}/{attempt.wanted} sockets open in "
            f"{attempt.open_seconds:.1f} s; service RSS {attempt.rss_before_kib / 1024:.1f} -> "
            f"{attempt.rss_after_kib / 1024:.1f} MiB" + (f"; failures {attempt.failures}" if attempt.failures else ""))
        if attempt.opened >= attempt.wanted:
            client.send("measure")
            attempt.delays = {k: v for k, v in client.expect("delays").items() if k != "event"}
            log(f"  relay delays: direct {attempt.delays['direct']}, relayed {attempt.delays['relayed']}, "
                f"lost {attempt.delays['lost']}")
        client.send("close")
        client.expect("closed")
    finally:
        if client_child is not None:
            children.stop(client_child)
        children.stop(service)
    return attempt


def relay_bench(
    children: Children,
    cores: Cores,
    workdir: Path,
    sockets: int,
    probes: int,
    events: int,
    users: int,
    log: Callable[[str], None],
) -> RelayResult:
    # The service holds two descriptors per relayed socket; children inherit the raised soft limit.
    limit = raise_open_files_limit(2 * sockets + 1024)
    wanted = min(sockets, (limit - 512) // 2)
    if wanted < sockets:
        log(f"  relay: open-files limit {limit} allows {wanted} sockets, not {sockets}")
    emulator = start_emulator(children, cores.rest, lean=False, name="relay-emulator")
    try:
        sessions: list[Session] = create_sessions(emulator, users + 1, prefix="relay")
        sessions_file = workdir / "relay-sessions.json"
        sessions_file.write_text(json.dumps([{"user_id": s.user_id, "cookie": s.cookie} for s in sessions]))
        attempts = [
            _attempt(children, cores, emulator, sessions_file, Attempt("as shipped", wanted), {}, probes, events, log)
        ]
        if attempts[0].opened < wanted:
            # Retry with the one setting that lifts the shipped cap, so memory and delay still get measured.
            raised = min(10_000, wanted + SHIPPED_UPSTREAM_CONCURRENCY)
            attempts.append(
                _attempt(children, cores, emulator, sessions_file,
                         Attempt(f"UPSTREAM_MAX_CONCURRENCY={raised}", wanted),
                         {"UPSTREAM_MAX_CONCURRENCY": str(raised)}, probes, events, log)
            )
    finally:
        children.stop(emulator)
    return RelayResult(sockets, limit, attempts)
