"""The exchange benchmark: every configuration under the same closed-loop load, in interleaved rounds."""

from __future__ import annotations

import re
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import LoadResult, run_wrk
from bench.procs import PYTHON, Child, Children, Cores, free_port, http_call, machine_busy_seconds, wait_http
from bench.upstream import PROJECT

# Limits stay switched on (so their code runs on every exchange) but can never refuse.
HUGE_LIMIT = "1000000000/second"
STATE_HASH_KEY = "bench-state-hash-key-0123456789"


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    target: bool  # a configuration the targets compare (the upstream row is for reference only)
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def service_env(upstream_port: int, port: int, log_level: str, redis_url: str | None) -> dict[str, str]:
    env = {
        "APPWRITE_ENDPOINT": f"http://127.0.0.1:{upstream_port}/v1",
        "APPWRITE_PROJECT_ID": PROJECT,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": log_level,
        "LOG_FORMAT": "json",
        "RATE_LIMIT_IP": HUGE_LIMIT,
        "RATE_LIMIT_SESSION": HUGE_LIMIT,
        "RATE_LIMIT_USER": HUGE_LIMIT,
        # One load generator stands in for many clients from one address.
        "MAX_REQUESTS_IN_FLIGHT_PER_IP": "1000000",
        "MAX_CONNECTIONS_PER_IP": "1000000",
    }
    if redis_url is not None:
        env |= {"REDIS_URL": redis_url, "STATE_HASH_KEY": STATE_HASH_KEY}
    return env


def configurations(
    upstream_port: int, redis_url: str, log_level: str, topologies: dict[str, str] | None = None
) -> list[Config]:
    """`topologies`: more Redis state rows, label -> REDIS_URL (a Cluster, a Sentinel set)."""
    def app(module: str) -> list[str]:
        return [PYTHON, "-m", module]

    service = [PYTHON, "-m", "appwrite_token_exchange", "serve"]
    endpoint = {"APPWRITE_ENDPOINT": f"http://127.0.0.1:{upstream_port}/v1", "APPWRITE_PROJECT_ID": PROJECT,
                "HOST": "127.0.0.1"}
    configs = [
        Config("naive", "naive (SDK client per request, to_thread)", True, app("bench.naive_app"), endpoint),
        Config("floor", "floor (one pooled aiohttp call)", True, app("bench.floor_app"), endpoint),
        Config("memory", f"service, memory state (LOG_LEVEL={log_level})", True, service,
               service_env(upstream_port, 0, log_level, None)),
        Config("redis", f"service, Redis state (LOG_LEVEL={log_level})", True, service,
               service_env(upstream_port, 0, log_level, redis_url)),
        Config("memory-traced", "service, memory state, tracing on", False, [PYTHON, "-m", "bench.traced_service"],
               service_env(upstream_port, 0, log_level, None)),
    ]
    for key, url in (topologies or {}).items():
        configs.append(Config(key, f"service, {key} state (LOG_LEVEL={log_level})", False, service,
                              service_env(upstream_port, 0, log_level, url)))
    if log_level != "warning":
        configs.append(
            Config("memory-quiet", "service, memory state, LOG_LEVEL=warning", False, service,
                   service_env(upstream_port, 0, "warning", None))
        )
    return configs


def start_config(children: Children, config: Config, cores: Cores, *, wait: bool = True) -> Child:
    """The configuration's server on a free port, pinned to the system-under-test core; stdout (its
    log lines, at LOG_LEVEL=info one per exchange) goes to a pipe another process drains, as under
    a container runtime; stderr to its log file."""
    port = free_port()
    child = children.start(
        config.key, config.argv, env={**config.env, "PORT": str(port)}, cpus=cores.sut, port=port,
        drain_cpus=cores.rest,
    )
    if wait:
        wait_http(child, "/livez")
    return child


@dataclass
class Sample:
    load: LoadResult
    cpu: float  # CPU seconds of the measured process during the run
    upstream_cpu: float
    wall: float
    other_cpu: float  # CPU seconds used on the machine by anything but the benchmark's processes


@dataclass
class Row:
    key: str
    label: str
    target: bool
    samples: list[Sample] = field(default_factory=list)
    rss_kib: int = 0

    @property
    def ok(self) -> int:
        return sum(s.load.ok for s in self.samples)

    @property
    def errors(self) -> int:
        return sum(s.load.errors for s in self.samples)

    @property
    def rate(self) -> float:
        return statistics.median(s.load.rate for s in self.samples)

    @property
    def p50_ms(self) -> float:
        return statistics.median(s.load.p50_ms for s in self.samples)

    @property
    def p99_ms(self) -> float:
        return statistics.median(s.load.p99_ms for s in self.samples)

    def round_cpu_us(self) -> list[float]:
        return [1e6 * s.cpu / max(1, s.load.ok) for s in self.samples]

    @property
    def cpu_us(self) -> float:
        return statistics.median(self.round_cpu_us())

    @property
    def upstream_busy(self) -> float:
        return sum(s.upstream_cpu for s in self.samples) / max(1e-9, sum(s.wall for s in self.samples))

    @property
    def other_load(self) -> float:
        return sum(s.other_cpu for s in self.samples) / max(1e-9, sum(s.wall for s in self.samples))

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key, "label": self.label, "exchanges": self.ok, "errors": self.errors,
            "rate": round(self.rate, 1), "p50_ms": round(self.p50_ms, 3), "p99_ms": round(self.p99_ms, 3),
            "cpu_us_per_exchange": round(self.cpu_us, 1), "rss_mib": round(self.rss_kib / 1024, 1),
            "upstream_busy": round(self.upstream_busy, 3), "other_load": round(self.other_load, 3),
            "rounds": [
                {"rate": round(s.load.rate, 1), "p50_ms": s.load.p50_ms, "p99_ms": s.load.p99_ms,
                 "cpu_us": round(1e6 * s.cpu / max(1, s.load.ok), 1), "other_load": round(s.other_cpu / s.wall, 3)}
                for s in self.samples
            ],
        }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    target: Child,
    helpers: list[Child],
    upstream: Child,
    run: Callable[[], LoadResult],
) -> Sample:
    """One load run; CPU of the measured process, the upstream, and of everything else on the machine."""
    cpu0, up0 = target.cpu(), upstream.cpu()
    helpers0 = sum(h.cpu() for h in helpers)
    busy0, _ = machine_busy_seconds()
    waited0 = _children_cpu()
    started = time.monotonic()
    load = run()
    wall = time.monotonic() - started
    busy1, _ = machine_busy_seconds()
    cpu, up = target.cpu() - cpu0, upstream.cpu() - up0
    helpers_cpu = sum(h.cpu() for h in helpers) - helpers0
    wrk_cpu = _children_cpu() - waited0
    ours = cpu + helpers_cpu + wrk_cpu + (up if upstream is not target else 0.0)
    return Sample(load, cpu, up, wall, max(0.0, busy1 - busy0 - ours))


def issued_count(service: Child) -> int:
    """Tokens issued so far, from the service's own Prometheus counter."""
    assert service.port is not None
    status, body = http_call(service.port, "GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    match = re.search(rb'^token_exchange_token_requests_total\{code="issued"\} ([0-9.e+]+)$', body, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


@dataclass
class Flatness:
    first_at: int
    first_rss_kib: int
    second_at: int
    second_rss_kib: int
    seconds: float

    @property
    def ratio(self) -> float:
        return self.second_rss_kib / max(1, self.first_rss_kib)

    def to_json(self) -> dict[str, object]:
        return {
            "first_at": self.first_at, "first_rss_mib": round(self.first_rss_kib / 1024, 2),
            "second_at": self.second_at, "second_rss_mib": round(self.second_rss_kib / 1024, 2),
            "ratio": round(self.ratio, 4), "seconds": round(self.seconds, 1),
        }


def flatness(
    children: Children,
    config: Config,
    cores: Cores,
    sessions_file: Path,
    concurrency: int,
    first: int,
    second: int,
    log: Callable[[str], None],
) -> Flatness:
    """A fresh service; its RSS once `first` exchanges were served, and again after `second`."""
    started = time.monotonic()
    service = start_config(children, config, cores)
    assert service.port is not None
    url = f"http://127.0.0.1:{service.port}"
    rate: float | None = None
    marks: list[tuple[int, int]] = []
    try:
        for goal in (first, second):
            while (count := issued_count(service)) < goal:
                seconds = 1.0 if rate is None else min(10.0, max(1.0, (goal - count) / rate))
                load = run_wrk(url, sessions_file=sessions_file, project=PROJECT, mode="service",
                               seconds=seconds, concurrency=concurrency, cpus=cores.rest)
                rate = max(100.0, load.rate)
                if load.ok == 0:
                    raise RuntimeError(f"no exchange succeeded during the flatness run:\n{service.log_tail()}")
            marks.append((issued_count(service), service.rss()))
            log(f"  flatness: {marks[-1][0]:>7} exchanges, RSS {marks[-1][1] / 1024:.1f} MiB")
    finally:
        children.stop(service)
    return Flatness(marks[0][0], marks[0][1], marks[1][0], marks[1][1], time.monotonic() - started)


def load_runner(
    url: str, sessions_file: Path, mode: str, seconds: float, concurrency: int, cores: Cores, path: str
) -> Callable[[], LoadResult]:
    def run() -> LoadResult:
        return run_wrk(url, sessions_file=sessions_file, project=PROJECT, mode=mode, seconds=seconds,
                       concurrency=concurrency, cpus=cores.rest, path=path)

    return run

