"""Where the service's hot path spends its CPU: py-spy attached to the running service under load."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.exchange import Config, start_config
from bench.loadgen import LoadResult, run_wrk
from bench.procs import Children, Cores
from bench.upstream import PROJECT

_LINE = re.compile(r":\d+\)$")
# The command line's frames sit under every sample; they say nothing about the hot path.
_ROOTS = ("service/appwrite_token_exchange/__main__.py", "service/appwrite_token_exchange/cli.py")


def py_spy_binary() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _frame(raw: str) -> tuple[str, str]:
    """('function (file)', 'file') from py-spy's 'function (file:line)'."""
    name = _LINE.sub(")", raw.strip())
    start = name.rfind(" (")
    return name, name[start + 2 : -1] if start >= 0 else ""


def component(path: str) -> str:
    """A readable owner for a source file: the service's module, or the library."""
    if path.startswith("service/"):
        return path.removesuffix(".py")
    head = path.split("/", 1)[0].removesuffix(".py")
    if head == "aiohttp":
        tail = path.split("/", 1)[-1]
        if tail.startswith(("client", "connector")):
            return "aiohttp (client)"
        return "aiohttp (server and shared)"
    if head in ("asyncio", "selectors", "contextvars"):
        return "asyncio event loop"
    if head in ("logging", "structlog"):
        return "logging (structlog, stdlib)"
    if head in ("json", "jwt", "aiocache", "prometheus_client", "multidict", "yarl", "hmac", "uuid", "datetime",
                "ipaddress", "base64", "http", "redis", "re"):
        return head
    return "other"


@dataclass
class Profile:
    samples: int
    by_component: list[tuple[str, float]]
    top_self: list[tuple[str, float]]
    service_inclusive: list[tuple[str, float]]
    owner_inclusive: list[tuple[str, float]]

    def to_json(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "self_by_component_pct": [[n, round(p, 1)] for n, p in self.by_component],
            "top_self_pct": [[n, round(p, 1)] for n, p in self.top_self],
            "service_inclusive_pct": [[n, round(p, 1)] for n, p in self.service_inclusive],
            "library_inclusive_pct": [[n, round(p, 1)] for n, p in self.owner_inclusive],
        }

    def render(self, cpu_us: float | None) -> str:
        def row(name: str, pct: float) -> str:
            us = f"{pct / 100 * cpu_us:7.0f} µs" if cpu_us else ""
            return f"  {pct:5.1f}%  {us}  {name}"

        lines = [f"py-spy: {self.samples} samples of the service holding the GIL (idle and waiting excluded)",
                 "self time by owner:"]
        lines += [row(n, p) for n, p in self.by_component]
        lines.append("inclusive time by library (any frame of it on the stack):")
        lines += [row(n, p) for n, p in self.owner_inclusive]
        lines.append("inclusive time of the service's own functions:")
        lines += [row(n, p) for n, p in self.service_inclusive]
        lines.append("top functions by self time:")
        lines += [row(n, p) for n, p in self.top_self]
        return "\n".join(lines)


def summarize(raw_path: Path) -> Profile:
    total = 0
    by_component: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    owners: Counter[str] = Counter()
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        leaf_name, leaf_path = frames[-1]
        by_component[component(leaf_path)] += count
        self_time[leaf_name] += count
        for name in {name for name, path in frames if path.startswith("service/") and path not in _ROOTS}:
            inclusive[name] += count
        for owner in {component(path) for _, path in frames}:
            owners[owner] += count
    scale = 100.0 / max(1, total)
    return Profile(
        total,
        [(n, c * scale) for n, c in by_component.most_common()],
        [(n, c * scale) for n, c in self_time.most_common(25)],
        [(n, c * scale) for n, c in inclusive.most_common(30)],
        # Leave out what is under every sample (the event loop, aiohttp's server, the interpreter's start).
        [(n, c * scale) for n, c in owners.most_common() if not n.startswith("service/") and c * scale < 99.5],
    )


def profile_service(
    children: Children,
    config: Config,
    cores: Cores,
    sessions_file: Path,
    seconds: float,
    concurrency: int,
    out_dir: Path,
    log: Callable[[str], None],
) -> Profile | None:
    binary = py_spy_binary()
    if binary is None:
        log("  profile: py-spy is not installed (scripts/install-python installs it); skipped")
        return None
    service = start_config(children, config, cores)
    assert service.port is not None
    url = f"http://127.0.0.1:{service.port}"

    def load(duration: float) -> LoadResult:
        return run_wrk(url, sessions_file=sessions_file, project=PROJECT, mode="service", seconds=duration,
                       concurrency=concurrency, cpus=cores.rest)

    try:
        load(2)
        results: list[LoadResult] = []
        runner = threading.Thread(target=lambda: results.append(load(seconds + 2)))
        runner.start()
        raw = out_dir / f"profile-{config.key}.raw"
        spy = subprocess.run(  # noqa: S603 - fixed argv
            [binary, "record", "--pid", str(service.pid), "--duration", str(round(seconds)), "--rate", "250",
             # Only samples holding the GIL: the log writer's thread waiting for it is not work.
             "--gil", "--format", "raw", "--output", str(raw)],
            capture_output=True, timeout=seconds + 60, check=False,
        )
        runner.join()
        if spy.returncode != 0 or not raw.exists():
            log(f"  profile: py-spy failed ({spy.returncode}): {spy.stderr.decode(errors='replace')[-400:]}")
            return None
    finally:
        children.stop(service)
    return summarize(raw)
