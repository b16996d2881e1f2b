"""Memory state with many distinct callers: one fresh process per size (bench/state_scale.py)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from bench.procs import PYTHON, Cores


@dataclass(frozen=True)
class StateSize:
    size: int
    entries: int
    base_rss_kib: int
    full_rss_kib: int
    after_rss_kib: int
    cpu_us: float
    bytes_per_key: float
    max_entries: int
    entries_after: int
    refill_rss_kib: int

    @property
    def reclaimed_ratio(self) -> float:
        """RSS once every window has passed, over RSS before the keys came (1.0: all given back)."""
        return self.after_rss_kib / max(1, self.base_rss_kib)

    @property
    def refill_ratio(self) -> float:
        """RSS after a second burst of as many new callers, over RSS after the first plus what the
        entries still held from it (the learned users, a day's ttl) take: 1.0 when every expired
        entry's memory was used again."""
        still_held_kib = self.entries_after * self.bytes_per_key / 1024
        return self.refill_rss_kib / max(1.0, self.full_rss_kib + still_held_kib)

    def to_json(self) -> dict[str, object]:
        return {"size": self.size, "entries": self.entries, "base_rss_mib": round(self.base_rss_kib / 1024, 1),
                "full_rss_mib": round(self.full_rss_kib / 1024, 1),
                "after_rss_mib": round(self.after_rss_kib / 1024, 1),
                "cpu_us_per_exchange": self.cpu_us, "bytes_per_key": self.bytes_per_key,
                "max_entries": self.max_entries, "reclaimed_ratio": round(self.reclaimed_ratio, 3),
                "entries_after": self.entries_after, "refill_rss_mib": round(self.refill_rss_kib / 1024, 1),
                "refill_ratio": round(self.refill_ratio, 3)}


def state_sizes(sizes: list[int], cores: Cores, log: Callable[[str], None]) -> list[StateSize]:
    found = []
    for size in sizes:
        log(f"state: {size:,} distinct sessions, IPs and users in the memory state")
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [PYTHON, "-m", "bench.state_scale", str(size)], stdout=subprocess.PIPE, text=True
        )
        os.sched_setaffinity(process.pid, set(cores.sut))
        out, _ = process.communicate(timeout=1800)
        if process.returncode != 0:
            raise RuntimeError(f"bench.state_scale {size} failed ({process.returncode})")
        raw = json.loads(out.strip().splitlines()[-1])
        found.append(StateSize(raw["size"], raw["entries"], raw["base_rss_kib"], raw["full_rss_kib"],
                               raw["after_rss_kib"], raw["cpu_us_per_exchange"], raw["bytes_per_key"],
                               raw["max_entries"], raw["entries_after"], raw["refill_rss_kib"]))
    return found


def state_text(sizes: list[StateSize]) -> str:
    lines = ["memory state (admission + issued through AccessLimits, one fresh process per size):"]
    for s in sizes:
        lines.append(
            f"  {s.size:>9,} sessions+IPs: {s.entries:>9,} keys, RSS {s.base_rss_kib / 1024:.0f} -> "
            f"{s.full_rss_kib / 1024:.0f} MiB ({s.bytes_per_key:.0f} B per key), CPU {s.cpu_us:.1f} µs/exch, "
            f"after the windows pass {s.entries_after:,} keys (the learned users) and "
            f"{s.after_rss_kib / 1024:.0f} MiB ({s.reclaimed_ratio:.2f}x of before), after as many new callers "
            f"again {s.refill_rss_kib / 1024:.0f} MiB ({s.refill_ratio:.2f}x of the first burst and the users held; "
            f"MEMORY_STATE_MAX_ENTRIES={s.max_entries:,})"
        )
    return "\n".join(lines)
