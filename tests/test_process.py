"""The real command line: `serve` drains on SIGTERM, and `demo` prints commands that work."""

from __future__ import annotations

import asyncio
import re
import shlex
import signal

import aiohttp
import pytest

from tests.support.processes import free_port, running

PROJECT = "procproject"


async def _emulator_and_service(drain: str, timeout: str):  # type: ignore[no-untyped-def]
    emulator_port, service_port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    emulator = running(
        "emulator", "--port", str(emulator_port),
        env={"EMULATOR_PROJECT_ID": PROJECT},
        ready_url=f"{emulator_url}/v1/health/version",
    )
    service = running(
        "serve",
        env={
            "APPWRITE_ENDPOINT": f"{emulator_url}/v1",
            "APPWRITE_PROJECT_ID": PROJECT,
            "HOST": "127.0.0.1",
            "PORT": str(service_port),
            "DRAIN_TIMEOUT_SECONDS": drain,
            "UPSTREAM_TIMEOUT_SECONDS": timeout,
        },
        ready_url=f"http://127.0.0.1:{service_port}/livez",
    )
    return emulator, service, emulator_url, f"http://127.0.0.1:{service_port}"


async def _session(http: aiohttp.ClientSession, emulator_url: str) -> str:
    async with http.post(f"{emulator_url}/_emulator/users", json={"email": "p@example.com", "password": "password-1"}) as r:
        user_id = (await r.json())["userId"]
    async with http.post(f"{emulator_url}/_emulator/sessions", json={"userId": user_id}) as r:
        return str((await r.json())["secret"])


async def _slow_exchange(
    http: aiohttp.ClientSession, emulator_url: str, service_url: str, fault: dict[str, object]
) -> asyncio.Task[aiohttp.ClientResponse]:
    """An exchange that is in flight (Appwrite slowed by `fault`) when this returns."""
    cookie = await _session(http, emulator_url)
    async with http.post(f"{emulator_url}/_emulator/faults", json=fault) as r:
        assert r.status < 300
    task = asyncio.create_task(
        http.post(f"{service_url}/v1/realtime/token", headers={"X-CSRF": "1", "Cookie": f"a_session_{PROJECT}={cookie}"})
    )
    # In flight once Appwrite has it (the emulator records a call as it arrives, before any fault).
    # Asked on a session of its own: `http` may have a single connection, which the exchange holds.
    async with aiohttp.ClientSession() as control:
        for _ in range(200):
            async with control.get(f"{emulator_url}/_emulator/requests", params={"path": "/v1/account/jwts"}) as r:
                if await r.json():
                    return task
            await asyncio.sleep(0.05)
    raise AssertionError("the exchange never reached Appwrite")


async def test_sigterm_lets_in_flight_exchanges_finish() -> None:
    emulator, service, emulator_url, service_url = await _emulator_and_service(drain="10", timeout="5")
    async with emulator, service as process, aiohttp.ClientSession() as http:
        in_flight = await _slow_exchange(http, emulator_url, service_url, {"kind": "latency", "ms": 1500})
        process.send_signal(signal.SIGTERM)
        response = await in_flight
        assert response.status == 200
        assert "jwt" in await response.json()
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0


async def test_drain_tells_keep_alive_clients_to_reconnect() -> None:
    """Item 9 of issue 11: the answer in flight at SIGTERM came without `Connection: close`, so the
    client sent its next request into a connection the server was closing, and lost it."""
    emulator, service, emulator_url, service_url = await _emulator_and_service(drain="10", timeout="5")
    connector = aiohttp.TCPConnector(limit=1)  # one keep-alive connection, reused while it may be
    async with emulator, service as process, aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{service_url}/livez") as warm:
            assert warm.status == 200 and "Connection" not in warm.headers
        in_flight = await _slow_exchange(http, emulator_url, service_url, {"kind": "latency", "ms": 1500})
        process.send_signal(signal.SIGTERM)
        response = await in_flight
        assert response.status == 200
        assert "jwt" in await response.json()
        assert response.headers.get("Connection", "").lower() == "close"
        # The next request is not sent into the closing connection: it needs a new one, which this
        # process no longer accepts, so it fails before anything is sent and can go elsewhere.
        with pytest.raises(aiohttp.ClientConnectorError):
            await http.post(f"{service_url}/v1/realtime/token", headers={"X-CSRF": "1"})
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0


async def test_drain_is_bounded() -> None:
    emulator, service, emulator_url, service_url = await _emulator_and_service(drain="1", timeout="30")
    async with emulator, service as process, aiohttp.ClientSession() as http:
        stuck = await _slow_exchange(http, emulator_url, service_url, {"kind": "hang"})
        started = asyncio.get_running_loop().time()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=10)
        assert asyncio.get_running_loop().time() - started < 5
        stuck.cancel()


async def test_a_large_cookie_header_still_gets_a_problem_answer() -> None:
    emulator, service, _, service_url = await _emulator_and_service(drain="1", timeout="1")
    async with emulator, service, aiohttp.ClientSession() as http:
        crowded = "; ".join(f"analytics_{i}={'v' * 500}" for i in range(24))
        async with http.post(
            f"{service_url}/v1/realtime/token", headers={"X-CSRF": "1", "Cookie": crowded}
        ) as response:
            assert response.status == 401
            assert response.content_type == "application/problem+json"
            assert (await response.json(content_type=None))["code"] == "session_missing"


async def test_demo_prints_commands_that_show_200_401_403() -> None:
    port, emulator_port = free_port(), free_port()
    async with running(
        "demo", "--port", str(port), "--emulator-port", str(emulator_port),
        ready_url=f"http://127.0.0.1:{port}/livez",
    ) as process:
        assert process.stdout is not None
        printed = ""
        while "Press Ctrl+C" not in printed:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=10)
            assert line, "demo exited early"
            printed += line.decode()
        commands = [line.strip() for line in printed.splitlines() if line.strip().startswith("curl ")]
        assert len(commands) == 3
        statuses = []
        async with aiohttp.ClientSession() as http:
            for command in commands:
                statuses.append(await _run_curl(http, command))
        assert statuses == [200, 401, 403]


async def _run_curl(http: aiohttp.ClientSession, command: str) -> int:
    """Run a printed `curl -i -X POST URL -H .. --cookie ..` line with aiohttp."""
    words = shlex.split(command)
    url = next(word for word in words if word.startswith("http"))
    headers = {}
    for flag, value in zip(words, words[1:], strict=False):
        if flag == "-H":
            name, _, header_value = value.partition(":")
            headers[name.strip()] = header_value.strip()
        if flag == "--cookie":
            headers["Cookie"] = value
    assert re.search(r"-X POST", command)
    async with http.post(url, headers=headers) as response:
        return response.status
