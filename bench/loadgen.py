"""The load generator: wrk (Debian's package) with a Lua script, pinned away from the system under test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk_post.lua")
_MARK = "BENCH_RESULT "


class LoadGeneratorMissing(RuntimeError):
    pass


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        raise LoadGeneratorMissing("wrk is not installed: apt-get install wrk")
    return binary


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int  # connect/read/write errors, timeouts and non-2xx answers
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> int:
        return max(0, self.requests - self.errors)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def run_wrk(
    url: str,
    *,
    sessions_file: Path,
    project: str,
    mode: str,
    seconds: float,
    concurrency: int,
    cpus: Iterable[int] | None,
    path: str = "/v1/realtime/token",
) -> LoadResult:
    """One closed-loop run: `concurrency` keep-alive connections, each sending as soon as answered."""
    argv = [
        wrk_binary(), "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
        "-s", str(SCRIPT), url + path,
    ]
    env = {
        **os.environ,
        "BENCH_SESSIONS": str(sessions_file),
        "BENCH_PROJECT": project,
        "BENCH_MODE": mode,
        "BENCH_PATH": path,
    }
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    if cpus is not None:
        os.sched_setaffinity(process.pid, set(cpus))
    output, _ = process.communicate(timeout=seconds + 60)
    text = output.decode(errors="replace")
    line = next((line for line in text.splitlines() if line.startswith(_MARK)), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{text}")
    raw = json.loads(line[len(_MARK):])
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return LoadResult(
        requests=raw["requests"],
        errors=errors,
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )
