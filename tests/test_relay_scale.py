"""A pod-sized process at its own defaults: `token-exchange serve` told the shipped pod's memory limit
(as the manifests tell it) derives its socket cap and event budget, fills every socket the cap
allows, refuses the next, takes a large event to every page, and its peak memory stays under the
limit, plain and translated. The numbers at full size are the benchmark's (`python -m bench`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from appwrite_token_exchange.capacity import MemoryLimit, parse_size, plan

from tests.support.processes import free_port, running

PROJECT = "scaleproject"
POD_LIMIT = "256Mi"  # deploy/k8s/base/deployment.yaml's memory limit
USERS = 20
PAYLOAD_BYTES = 300_000
OPENING_AT_ONCE = 16

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.timeout(300)]


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water mark of resident memory (what a cgroup limit would have met)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def sessions(http: aiohttp.ClientSession, emulator_url: str) -> list[str]:
    cookies = []
    for n in range(USERS):
        async with http.post(f"{emulator_url}/_emulator/users", json={"email": f"u{n}@example.com", "password": "password-1"}) as response:
            user_id = (await response.json())["userId"]
        async with http.post(f"{emulator_url}/_emulator/sessions", json={"userId": user_id}) as response:
            cookies.append(str((await response.json())["secret"]))
    return cookies


async def open_page(http: aiohttp.ClientSession, url: str, cookie: str, translated: bool) -> Any:
    query = "" if translated else "&channels[]=account"
    ws = await http.ws_connect(f"{url}/v1/realtime?project={PROJECT}{query}",
                               headers={"Cookie": f"a_session_{PROJECT}={cookie}"}, timeout=aiohttp.ClientWSTimeout(ws_close=2))
    assert json.loads((await ws.receive(timeout=15)).data)["type"] == "connected"
    if translated:
        await ws.send_str(json.dumps({"type": "subscribe", "data": [{"subscriptionId": "s", "channels": ["account"]}]}))
        assert json.loads((await ws.receive(timeout=15)).data)["type"] == "response"
    return ws


async def outcome(ws: Any) -> str:
    message = await ws.receive(timeout=60)
    if message.type == aiohttp.WSMsgType.TEXT:
        return "event" if len(message.data) > PAYLOAD_BYTES else f"frame {message.data[:40]}"
    return f"closed {ws.close_code}"


@pytest.mark.parametrize("translated", [False, True], ids=["plain", "translated"])
async def test_a_pod_sized_process_holds_its_default_caps_under_its_limit(translated: bool) -> None:
    limit = parse_size(POD_LIMIT)
    assert limit is not None
    cap = plan(MemoryLimit(limit, "CONTAINER_MEMORY_LIMIT"), None, None).max_sockets
    emulator_port, service_port = free_port(), free_port()
    emulator_url, url = f"http://127.0.0.1:{emulator_port}", f"http://127.0.0.1:{service_port}"
    env = {
        "APPWRITE_ENDPOINT": f"{emulator_url}/v1", "APPWRITE_PROJECT_ID": PROJECT, "HOST": "127.0.0.1",
        "PORT": str(service_port), "CONTAINER_MEMORY_LIMIT": POD_LIMIT, "LOG_LEVEL": "warning",
        # The emulator is one Python process holding every upstream socket too: slower than Appwrite.
        "UPSTREAM_TIMEOUT_SECONDS": "15",
        "APPWRITE_REALTIME_CHANNELS_IN_URL": "yes" if translated else "no",
        # One test client stands in for a crowd: its per-caller limits are lifted, no cap of the pod's.
        "RATE_LIMIT_IP": "off", "RATE_LIMIT_SESSION": "off", "RATE_LIMIT_USER": "off",
        "RELAY_MAX_SOCKETS_PER_IP": "1000000", "RELAY_MAX_SOCKETS_PER_SESSION": "1000000",
        "RELAY_MAX_SOCKETS_PER_USER": "1000000",
    }
    async with (
        # A crowd comes from many IPs; Appwrite's 128 connects a minute per IP would refuse one client.
        running("emulator", "--port", str(emulator_port),
                env={"EMULATOR_PROJECT_ID": PROJECT, "EMULATOR_REALTIME_CONNECT_LIMIT": "0"},
                ready_url=f"{emulator_url}/v1/health/version"),
        running("serve", env=env, ready_url=f"{url}/livez") as service,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        async with http.get(f"{url}/readyz") as response:
            relay = (await response.json())["checks"]["relay"]
        assert relay["maxSockets"] == cap and relay["memoryLimitBytes"] == limit
        assert relay["derived"] == ["RELAY_MAX_BYTES_IN_FLIGHT", "RELAY_MAX_SOCKETS"]
        cookies = await sessions(http, emulator_url)
        gate = asyncio.Semaphore(OPENING_AT_ONCE)

        async def bounded(n: int) -> Any:
            async with gate:
                return await open_page(http, url, cookies[n % USERS], translated)

        pages = await asyncio.gather(*(bounded(n) for n in range(cap)))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await open_page(http, url, cookies[0], translated)
        assert refused.value.status == 503
        # One large event for every page at once: more than the budget can hold together.
        body = {"channels": ["account"], "roles": ["any"], "payload": {"blob": "x" * PAYLOAD_BYTES}}
        async with http.post(f"{emulator_url}/_emulator/realtime/publish", json=body) as response:
            assert (await response.json())["delivered"] == cap
        outcomes = await asyncio.gather(*(outcome(ws) for ws in pages))
        counted = {kind: outcomes.count(kind) for kind in set(outcomes)}
        assert set(counted) <= {"event", "closed 1013"}, counted
        assert counted.get("event", 0) > 0
        peak = peak_rss_bytes(service.pid)
        print(f"\n{'translated' if translated else 'plain'}: {cap} sockets, outcomes {counted}, "
              f"peak RSS {peak / 2**20:.1f} MiB of {limit / 2**20:.0f} MiB")
        assert peak < limit
        await asyncio.gather(*(ws.close() for ws in pages), return_exceptions=True)
