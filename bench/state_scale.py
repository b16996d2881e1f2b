"""Memory state as the work grows: N distinct sessions, IPs and users through the service's own
AccessLimits (admission, then `issued`, as every successful exchange does), in a fresh process.

    python -m bench.state_scale N   -> one JSON line on stdout

The HTTP and Appwrite parts of an exchange do not grow with N, so only the state is driven here;
the limits are the benchmark's (on, 1-second windows, never refusing), MEMORY_STATE_MAX_ENTRIES is
sized so that nothing is evicted (4 entries per exchange: IP, session and user windows, the
session's user cache), and the question is what the tracked keys cost and whether it lasts.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time

from appwrite_token_exchange.access.fingerprints import Fingerprinter
from appwrite_token_exchange.access.limits import AccessLimits
from appwrite_token_exchange.observability.metrics import Metrics
from appwrite_token_exchange.settings import Settings
from appwrite_token_exchange.state.store import State

from bench.procs import rss_kib

ENTRIES_PER_EXCHANGE = 4
TIMED = 20_000  # exchanges timed at the end of the fill, when the state holds ~N keys already
WINDOW_SECONDS = 1


def settings(size: int) -> Settings:
    limit = "1000000000/second"
    return Settings.from_env({
        "APPWRITE_ENDPOINT": "http://127.0.0.1:9/v1", "APPWRITE_PROJECT_ID": "bench",
        "RATE_LIMIT_IP": limit, "RATE_LIMIT_SESSION": limit, "RATE_LIMIT_USER": limit,
        "MEMORY_STATE_MAX_ENTRIES": str(max(100, ENTRIES_PER_EXCHANGE * size + 2 * TIMED)),
    })


async def exchanges(limits: AccessLimits, fingerprinter: Fingerprinter, first: int, count: int) -> None:
    for n in range(first, first + count):
        ip = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" if n < 1 << 24 else f"fd00::{n:x}"
        session = fingerprinter.of_session(f"session-secret-{n:012d}")
        admission = await limits.admit(ip, session, f"user{n}")
        await limits.issued(admission, f"user{n}")


async def run(size: int) -> dict[str, object]:
    config = settings(size)
    state = State(None, on_fallback_change=lambda _: None, max_entries=config.memory_state_max_entries)
    sweeper = asyncio.create_task(state.sweep_forever())  # as the service runs it
    fingerprinter = Fingerprinter(b"bench-state-hash-key-0123456789!")
    limits = AccessLimits(config, state, Metrics(), fingerprinter)
    await exchanges(limits, fingerprinter, 0, 1000)  # code paths warm, before the baseline
    gc.collect()
    base = rss_kib_self()
    untimed = max(0, size - TIMED)
    await exchanges(limits, fingerprinter, 1000, untimed)
    started = time.process_time()
    await exchanges(limits, fingerprinter, 1000 + untimed, size - untimed)
    cpu_us = 1e6 * (time.process_time() - started) / max(1, size - untimed)
    gc.collect()
    full, entries = rss_kib_self(), state.memory_entries
    # Every window passes; the same traffic again from a few new callers, while the sweep (once a
    # second) gives the expired windows back. What stays is each session's learned user (a cache
    # entry with a day's ttl, SESSION_USER_TTL_SECONDS) and the new callers' entries.
    await asyncio.sleep(2 * WINDOW_SECONDS + 0.1)
    await exchanges(limits, fingerprinter, 1000 + size, 1000)
    still_held = 1000 + size + 1000  # the learned users
    for _ in range(600):  # at most a minute
        await asyncio.sleep(0.1)
        if state.memory_entries <= still_held:
            break
    await asyncio.sleep(1.5)  # one more sweep, which gives the emptied table back too
    gc.collect()
    after, entries_after = rss_kib_self(), state.memory_entries
    # A second burst of as many new callers: the memory given back is used again, not added to.
    await exchanges(limits, fingerprinter, 2000 + size, size)
    sweeper.cancel()
    gc.collect()
    refill = rss_kib_self()
    return {
        "size": size, "entries": entries, "base_rss_kib": base, "full_rss_kib": full, "after_rss_kib": after,
        "refill_rss_kib": refill,
        "entries_after": entries_after, "cpu_us_per_exchange": round(cpu_us, 2),
        "bytes_per_key": round(1024 * (full - base) / max(1, entries), 1),
        "max_entries": config.memory_state_max_entries,
    }


def rss_kib_self() -> int:
    return rss_kib(os.getpid())


def main() -> None:
    print(json.dumps(asyncio.run(run(int(sys.argv[1])))))


if __name__ == "__main__":
    main()
