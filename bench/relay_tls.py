"""Memory per relayed socket by the upstream's scheme: the service relaying to the emulator over ws://
and over wss:// (bench/lean_emulator.py --tls-port, with a certificate made for the run and trusted
through SSL_CERT_FILE, as OpenSSL's default paths read it), plain and translated, each socket idle
and then after it got one event larger than the TLS layer's read buffers; the same on asyncio's own
loop; and the caps the shipped pod derives for each scheme (capacity.py) against those costs.

    python -m bench.relay_tls serve-on-asyncio     `token-exchange serve` on asyncio's own loop
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appwrite_token_exchange.capacity import IN_FLIGHT_COPIES, Capacity

from bench.exchange import service_env
from bench.procs import PYTHON, Child, Children, Cores, free_port, raise_open_files_limit, wait_http
from bench.relay_population import (
    EMULATOR_CAPS,
    MIB,
    POD_MEMORY,
    POD_MEMORY_BYTES,
    POPULATION_LIMITS,
    USERS,
    open_pages,
    shipped_pod,
)
from bench.upstream import create_sessions, start_emulator

# Well past uvloop's per-connection TLS read buffer (SSL_READ_MAX_SIZE, 256 KiB), so that every
# socket's reads fill it, as a large document's event can (at 320 KiB only some of them do).
EVENT_BYTES = 1024 * 1024
# Every page must get its event: the byte budget is not what is measured here.
UNBOUNDED_BUDGET = str(16 * 1024 * MIB)
# The service's reads of a burst end, and its frees are done, before the second reading.
SETTLE_SECONDS = 2.0
SERVE = ("-m", "appwrite_token_exchange", "serve")


@dataclass(frozen=True)
class Upstream:
    key: str
    label: str
    tls: bool
    mode: str = "plain"  # how its pages subscribe, as in bench/relay_population.py
    env: dict[str, str] = field(default_factory=dict)
    argv: tuple[str, ...] = SERVE

    @property
    def as_served(self) -> bool:
        """Whether it runs as `token-exchange serve` does (on uvloop), so its costs are the pod's."""
        return self.argv == SERVE


TRANSLATED = {"APPWRITE_REALTIME_CHANNELS_IN_URL": "yes"}
UPSTREAMS = (
    Upstream("ws", "ws://, plain relay", tls=False),
    Upstream("ws-translated", "ws://, translated", tls=False, mode="translated", env=TRANSLATED),
    Upstream("wss", "wss://, plain relay", tls=True),
    Upstream("wss-translated", "wss://, translated", tls=True, mode="translated", env=TRANSLATED),
    Upstream("wss-asyncio", "wss://, plain, on asyncio's loop", tls=True,
             argv=("-m", "bench.relay_tls", "serve-on-asyncio")),
)


@dataclass
class SchemeRow:
    key: str
    label: str
    tls: bool
    as_served: bool
    wanted: int
    opened: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    rss_before_kib: int = 0
    rss_idle_kib: int = 0
    rss_burst_kib: int = 0  # SETTLE_SECONDS after every page got its event
    received: int = 0
    closes: dict[str, int] = field(default_factory=dict)

    @property
    def idle_kib_per_socket(self) -> float:
        return (self.rss_idle_kib - self.rss_before_kib) / max(1, self.opened)

    @property
    def burst_kib_per_socket(self) -> float:
        return (self.rss_burst_kib - self.rss_before_kib) / max(1, self.opened)


@dataclass
class TlsResult:
    event_bytes: int
    rows: dict[str, SchemeRow]
    pods: dict[str, Capacity]  # the shipped pod's caps per scheme ("ws", "wss")

    def worst_kib_per_socket(self, tls: bool) -> float:
        """The most a socket of this scheme held after the event, in the service as it is served."""
        return max(r.burst_kib_per_socket for r in self.rows.values() if r.tls == tls and r.as_served)

    def to_json(self) -> dict[str, object]:
        return {
            "event_bytes": self.event_bytes,
            "rows": {k: {**asdict(r), "idle_kib_per_socket": round(r.idle_kib_per_socket, 2),
                         "burst_kib_per_socket": round(r.burst_kib_per_socket, 2)} for k, r in self.rows.items()},
            "pods": {k: c.to_json() for k, c in self.pods.items()},
        }


def tls_bench(
    children: Children, cores: Cores, workdir: Path, sockets: int, log: Callable[[str], None]
) -> TlsResult:
    limit = raise_open_files_limit(2 * sockets + 1024)
    wanted = min(sockets, (limit - 512) // 2)
    cert, key = self_signed(workdir)
    tls_port = free_port()
    emulator = start_emulator(children, cores.rest, lean=True, name="tls-emulator", lean_args=(
        *EMULATOR_CAPS, "--tls-port", str(tls_port), "--certfile", str(cert), "--keyfile", str(key)))
    try:
        sessions_file = workdir / "tls-sessions.json"
        sessions = create_sessions(emulator, USERS + 1, prefix="tls")
        sessions_file.write_text(json.dumps([{"user_id": s.user_id, "cookie": s.cookie} for s in sessions]))
        env = {"SSL_CERT_FILE": str(cert), "RELAY_MAX_BYTES_IN_FLIGHT": UNBOUNDED_BUDGET}
        rows = {}
        for upstream in UPSTREAMS:
            scheme = f"https://127.0.0.1:{tls_port}" if upstream.tls else f"http://127.0.0.1:{emulator.port}"
            row = SchemeRow(upstream.key, upstream.label, upstream.tls, upstream.as_served, wanted)
            rows[upstream.key] = measure(children, cores, emulator, sessions_file, upstream,
                                         env | upstream.env | {"APPWRITE_ENDPOINT": f"{scheme}/v1"}, row, log)
    finally:
        children.stop(emulator)
    return TlsResult(EVENT_BYTES, rows, {key: shipped_pod(tls) for key, tls in (("ws", False), ("wss", True))})


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made for this run (openssl, as e2e/proxy.js makes nginx's)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed: apt-get install openssl")
    cert, key = workdir / "upstream-cert.pem", workdir / "upstream-key.pem"
    subprocess.run(  # noqa: S603 - a fixed argv
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def measure(
    children: Children, cores: Cores, emulator: Child, sessions_file: Path, upstream: Upstream, env: dict[str, str],
    row: SchemeRow, log: Callable[[str], None],
) -> SchemeRow:
    assert emulator.port is not None
    port = free_port()
    env = service_env(emulator.port, port, "info", None) | POPULATION_LIMITS | env
    process = children.start(f"tls-{upstream.key}", [PYTHON, *upstream.argv], env=env, cpus=cores.sut, port=port,
                             stdout_to_null=True)
    try:
        wait_http(process, "/livez")
        with open_pages(children, cores, process, emulator, sessions_file, row.wanted, upstream.mode,
                        "--max-msg-bytes", "0") as (client, opened, before):
            row.rss_before_kib, row.rss_idle_kib = before, process.rss()
            row.opened, row.failures = int(opened["relayed"]), dict(opened["failures"])
            if row.opened:
                client.send(f"large {EVENT_BYTES}")
                answer = client.expect("large")
                row.received, row.closes = int(answer["received"]), dict(answer["closes"])
                time.sleep(SETTLE_SECONDS)
                row.rss_burst_kib = process.rss()
        log(f"  {upstream.key}: {row.opened}/{row.wanted} pages, {row.idle_kib_per_socket:.1f} KiB/socket idle, "
            f"{row.burst_kib_per_socket:.1f} after a {EVENT_BYTES // 1024} KiB event to each ({row.received} got it)"
            + (f"; failures {row.failures}" if row.failures else ""))
    finally:
        children.stop(process)
    return row


def tls_text(result: TlsResult) -> str:
    lines = [f"\nrelay memory by upstream scheme (the server's RSS after opening its pages minus before, then "
             f"{SETTLE_SECONDS:g} s after every page got one {result.event_bytes // 1024} KiB event):"]
    for row in result.rows.values():
        line = (f"    {row.label:<34} {row.opened:>6,}/{row.wanted:,} pages  {row.idle_kib_per_socket:6.1f} KiB/socket "
                f"idle, {row.burst_kib_per_socket:6.1f} after the event ({row.received:,} got it)")
        if row.failures:
            line += f"; stopped at the first failure: {row.failures}"
        lines.append(line)
    base = result.rows["ws"].rss_before_kib / 1024
    lines.append(f"  the pod ({POD_MEMORY}, caps left to auto) per scheme; RSS predicted after the event = base "
                 f"{base:.1f} MiB + sockets x the scheme's most KiB/socket after the event (uvloop), then with the "
                 "byte budget full:")
    for key, pod in result.pods.items():
        after = result.worst_kib_per_socket(pod.upstream_scheme == "wss")
        predicted = base + pod.max_sockets * after / 1024
        full = predicted + pod.max_bytes_in_flight * IN_FLIGHT_COPIES / MIB
        lines.append(f"    {key + '://':<7}RELAY_MAX_SOCKETS {pod.max_sockets:,} at {pod.socket_bytes / 1024:.0f} "
                     f"KiB a socket: {predicted:.1f} MiB, {full:.1f} MiB of {POD_MEMORY_BYTES / MIB:.0f} MiB")
    return "\n".join(lines)


def serve_on_asyncio() -> int:
    """The service as `token-exchange serve` runs it, but on asyncio's loop: uvloop made unimportable
    (a None in sys.modules is the import system's own "not here"), so cli._run falls back."""
    sys.modules["uvloop"] = None  # type: ignore[assignment]
    from appwrite_token_exchange.cli import main

    return main(["serve"])


if __name__ == "__main__":
    if sys.argv[1:] != ["serve-on-asyncio"]:
        raise SystemExit(__doc__)
    raise SystemExit(serve_on_asyncio())
