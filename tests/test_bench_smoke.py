"""The benchmark's smoke mode runs to the end and prints a row for every configuration.

No timing is asserted here: this machine's speed (and whatever else runs on it) is not the
service's business. Needs Debian's `wrk` and `redis-server`, like the benchmark itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# The benchmark (a child process) starts Redis servers and wrk itself.
pytestmark = [pytest.mark.subprocess, pytest.mark.redis, pytest.mark.tools]

ROOT = Path(__file__).resolve().parent.parent
ROWS = (
    "naive (SDK client per request, to_thread)",
    "floor (one pooled aiohttp call)",
    "service, memory state (LOG_LEVEL=info)",
    "service, Redis state (LOG_LEVEL=info)",
    "service, memory state, LOG_LEVEL=warning",
    "service, redis-cluster state (LOG_LEVEL=info)",
    "service, redis-sentinel state (LOG_LEVEL=info)",
    "Appwrite emulator alone",
)
# Every Redis topology answers an exchange in one round trip (a Cluster: one per slot, sent at once).
ROUND_TRIPS = {"redis": 1.0, "redis-cluster": 3.0, "redis-sentinel": 1.0}


@pytest.mark.timeout(400)
def test_smoke_run_prints_every_configuration(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "the benchmark needs wrk (apt-get install wrk)"
    assert shutil.which("redis-server"), "the benchmark needs redis-server (apt-get install redis-server)"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=380, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    header = next((line for line in out.splitlines() if line.startswith("configuration")), None)
    assert header is not None and "CPU µs/exch" in header and "p99 ms" in header, out
    for row in ROWS:
        assert any(line.startswith(row) for line in out.splitlines()), f"no row for {row!r}:\n{out}"
    assert "memory flatness:" in out
    assert "at 64 connections:" in out and "memory vs floor at 64 connections" in out
    assert "two replicas on one Redis" in out
    assert "maxmemory per 100k active users" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert {k: round(v, 1) for k, v in results["round_trips"].items()} == ROUND_TRIPS, out
    assert results["redis_footprint"]["keys"] > 0, out
    assert [size["size"] for size in results["state_sizes"]] == [1000, 2000], out
    assert "relay (open-files soft limit" in out
    assert "sign-out at once (20 sockets of one user on 2 replicas" in out
    assert len(results["revocation"]["kick_ms"]) == 1 and len(results["revocation"]["webhook_ms"]) == 1, out
    assert "event rules: cost per event" in out and "remove 3 fields" in out
    assert "targets (smoke run: not judged):" in out
    assert "bench: done" in out
    assert (tmp_path / "results.json").exists()
