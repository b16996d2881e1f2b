"""The benchmark's smoke mode runs to the end and prints a row for every configuration.

No timing is asserted here: this machine's speed (and whatever else runs on it) is not the
service's business. Needs Debian's `wrk` and `redis-server`, like the benchmark itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROWS = (
    "naive (SDK client per request, to_thread)",
    "floor (one pooled aiohttp call)",
    "service, memory state (LOG_LEVEL=info)",
    "service, Redis state (LOG_LEVEL=info)",
    "service, memory state, LOG_LEVEL=warning",
    "Appwrite emulator alone",
)


@pytest.mark.timeout(300)
def test_smoke_run_prints_every_configuration(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "the benchmark needs wrk (apt-get install wrk)"
    assert shutil.which("redis-server"), "the benchmark needs redis-server (apt-get install redis-server)"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    header = next((line for line in out.splitlines() if line.startswith("configuration")), None)
    assert header is not None and "CPU µs/exch" in header and "p99 ms" in header, out
    for row in ROWS:
        assert any(line.startswith(row) for line in out.splitlines()), f"no row for {row!r}:\n{out}"
    assert "memory flatness:" in out
    assert "relay (open-files soft limit" in out
    assert "targets (smoke run: not judged):" in out
    assert "bench: done" in out
    assert (tmp_path / "results.json").exists()
