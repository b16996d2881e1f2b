"""The crowd at the edge against a pod-sized process: `token-exchange serve` told the shipped pod's
memory limit, and 2,500 connections that each send 56 KiB of headers and then nothing, opened as
fast as they go, from one IP and from 100. Before the caps it went from 54 to 340 MiB (the pod's
limit is 256Mi); now its peak stays far under the limit, every refused connection is told why, and
/livez from another address keeps answering: refused (503 `server_busy`) at most while the crowd's
requests are younger than STALLED_SECONDS (none of them may yet be closed to make room), far from
the kubelet's three failed probes ten seconds apart."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from appwrite_token_exchange.edge.connection_limits import STALLED_SECONDS

from tests.support.processes import free_port, open_files_at_least, output_read, peak_rss_bytes, running

POD_LIMIT = "256Mi"  # deploy/k8s/base/deployment.yaml's memory limit
MIB = 1024 * 1024
CROWD = 2_500
HEADER_LINE = b"X-Fill: " + b"a" * 8_000 + b"\r\n"
STALLED = b"POST /v1/realtime/token HTTP/1.1\r\nHost: 127.0.0.1\r\n" + HEADER_LINE * 7  # 56 KiB, never ended
PROBE_SOURCE = "127.0.0.2"

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.timeout(180)]


@dataclass
class Seen:
    refusals: Counter[str] = field(default_factory=Counter)
    livez: list[int | str] = field(default_factory=list)
    livez_at: list[float] = field(default_factory=list)

    def longest_refusal_seconds(self) -> float:
        """From a probe that was not answered 200 to the next that was, the longest such span."""
        longest, since = 0.0, None
        for status, at in zip(self.livez, self.livez_at, strict=True):
            if status != 200 and since is None:
                since = at
            elif status == 200 and since is not None:
                longest, since = max(longest, at - since), None
        return longest if since is None else float("inf")


async def stalled_connection(port: int, source: str, seen: Seen, held: list[asyncio.StreamWriter]) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    except OSError as error:
        seen.refusals[type(error).__name__] += 1
        return
    held.append(writer)
    with contextlib.suppress(ConnectionError):
        writer.write(STALLED)
    with contextlib.suppress(TimeoutError, ConnectionError):
        answer = await asyncio.wait_for(reader.read(), 3)
        body = answer.partition(b"\r\n\r\n")[2]
        seen.refusals[json.loads(body)["code"] if body else "closed"] += 1


def probe(port: int, seen: Seen, stop: threading.Event) -> None:
    """GET /livez from another address every 100 ms on a new connection, with the kubelet's 2 s
    timeout; in a thread of its own, so that what it measures is the server, not this test's loop."""
    while not stop.is_set():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2, source_address=(PROBE_SOURCE, 0))
        try:
            connection.request("GET", "/livez")
            seen.livez.append(connection.getresponse().status)
        except OSError as error:
            seen.livez.append(type(error).__name__)
        finally:
            connection.close()
            seen.livez_at.append(time.monotonic())
        stop.wait(0.1)


@pytest.mark.parametrize("sources", [1, 100], ids=["one IP", "100 IPs"])
async def test_a_crowd_of_stalled_requests_stays_under_the_pod_limit(sources: int) -> None:
    port = free_port()
    env = {
        "APPWRITE_ENDPOINT": f"http://127.0.0.1:{free_port()}/v1",  # nothing here reaches Appwrite
        "APPWRITE_PROJECT_ID": "crowd",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "CONTAINER_MEMORY_LIMIT": POD_LIMIT,
        "LOG_LEVEL": "info",  # the refusal lines are part of what the crowd costs
    }
    with open_files_at_least(2 * CROWD + 1024):
        async with running("serve", env=env, ready_url=f"http://127.0.0.1:{port}/livez") as service, \
                output_read(service=service):
            seen, stop, held = Seen(), threading.Event(), []
            prober = asyncio.create_task(asyncio.to_thread(probe, port, seen, stop))
            crowd = [stalled_connection(port, f"127.0.1.{n % sources + 1}", seen, held) for n in range(CROWD)]
            await asyncio.gather(*crowd)
            stop.set()
            await prober
            peak = await asyncio.to_thread(peak_rss_bytes, service.pid)
            for writer in held:
                writer.close()
    figures = f"peak RSS {peak / MIB:.1f} MiB; refusals {dict(seen.refusals)}; livez {Counter(seen.livez)}"
    print(figures)  # the numbers for the note (pytest -s)
    assert peak < 160 * MIB, figures  # 256Mi is the limit; without the caps the crowd took 340 MiB
    assert seen.livez and set(seen.livez) <= {200, 503} and seen.livez[-1] == 200, figures
    # A probe refused only while no stalled request is old enough to make room (plus a loaded
    # machine's scheduling); the kubelet restarts a pod after 3 failed probes 10 s apart.
    assert seen.longest_refusal_seconds() < 2 * STALLED_SECONDS + 1, figures
    expected = {"too_many_requests_in_flight", "too_many_connections"} if sources == 1 else {"server_busy"}
    assert set(seen.refusals) - {"closed"} <= expected and seen.refusals.keys() & expected, figures
