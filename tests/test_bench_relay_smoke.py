"""The relay benchmark at population scale, smoke size (`python -m bench --only relay --smoke`):
every scenario runs to the end, every page is accounted for, and the rows are printed.

No figure is judged here (this machine's speed is not the service's business): only that what was
measured was measured on every page. Needs Debian's `wrk`, which `python -m bench` checks for first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.tools, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("floor", "plain", "translated")


@pytest.mark.timeout(200)
def test_relay_population_smoke_measures_every_page(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "the benchmark needs wrk (apt-get install wrk)"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "relay", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for row in ("relay at population scale", "KiB/socket", "the floor (target <= 1.20x)", "last page",
                "swap storm", "upstream connects the emulator saw", "large event", "peak (VmHWM)",
                "plan() gives RELAY_MAX_SOCKETS", "predicted RSS at"):
        assert row in out, f"no {row!r}:\n{out}"
    found = json.loads((tmp_path / "results.json").read_text())["relay_population"]
    sizes = found["sizes"]
    for key in SERVERS:
        server = found["populations"][key]
        assert server["opened"] == sizes["sockets"], server
        assert server["rss_after_kib"] > server["rss_before_kib"], server
        assert [run["received"] for run in server["fanouts"]] == [sizes["sockets"]] * sizes["fanouts"], server
    storm = found["populations"]["translated"]["storm"]
    assert storm["responses"] == sizes["storm_frames"] and storm["errors"] == 0, storm
    assert storm["connects"] >= 2, storm  # the storm page's first socket, and at least one reopen
    large = found["large_event"]
    assert large["pages"] == sizes["large_sockets"] and large["silent"] == 0, large
    assert large["received"] + sum(large["closes"].values()) == large["pages"], large
    assert found["pod"]["maxSockets"] > 0 and found["pod"]["memoryLimitSource"] == "deploy/k8s/base"
