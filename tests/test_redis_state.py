"""Shared state in a real redis-server: one limit across replicas, an outage, and the recovery."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Iterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.state.redis_store import RedisState
from appwrite_token_exchange.state.sliding_window import Check
from appwrite_token_exchange.state.store import redis_client

from tests.support.helpers import assert_problem
from tests.support.processes import free_port, running
from tests.support.redis_server import RedisServer, redis_server
from tests.support.service import exchange
from tests.test_hostile_sessions import respellings

HASH_KEY = "shared-deployment-key-0123456789"


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def test_two_replicas_enforce_one_limit(emulator, service_factory, redis) -> None:
    env = {"REDIS_URL": redis.url, "STATE_HASH_KEY": HASH_KEY, "RATE_LIMIT_SESSION": "3/minute"}
    replicas = [await service_factory(**env) for _ in range(2)]
    _, _, cookie = emulator.signed_in_user()
    statuses = [(await exchange(replicas[i % 2], cookie)).status for i in range(6)]
    assert statuses == [200, 200, 200, 429, 429, 429]


async def test_respellings_of_one_session_share_one_limit_across_replicas(emulator, service_factory, redis) -> None:
    env = {"REDIS_URL": redis.url, "STATE_HASH_KEY": HASH_KEY, "RATE_LIMIT_SESSION": "3/minute"}
    replicas = [await service_factory(**env) for _ in range(2)]
    _, _, cookie = emulator.signed_in_user()
    spellings = respellings(cookie, 6)
    statuses = [(await exchange(replicas[i % 2], spelling)).status for i, spelling in enumerate(spellings)]
    assert statuses == [200, 200, 200, 429, 429, 429]


async def test_forged_cookies_cost_the_named_user_nothing_across_replicas(emulator, service_factory, redis) -> None:
    env = {"REDIS_URL": redis.url, "STATE_HASH_KEY": HASH_KEY, "RATE_LIMIT_USER": "2/minute"}
    replicas = [await service_factory(**env) for _ in range(2)]
    victim, _, cookie = emulator.signed_in_user()
    for i in range(10):
        forged = base64.b64encode(json.dumps({"id": victim, "secret": secrets.token_hex(128)}).encode()).decode()
        assert (await exchange(replicas[i % 2], forged)).status == 401
    # A second session of the same user meets the user limit on its first exchange.
    second = emulator.state.create_session(victim)[1]
    statuses = [(await exchange(replicas[i % 2], value)).status for i, value in enumerate([cookie, cookie, second])]
    assert statuses == [200, 200, 429]


async def test_a_look_counts_nothing_in_redis(redis) -> None:
    client = redis_client(redis.url)
    try:
        state = RedisState(client)
        one, key = RateLimit(1, 60), "rtx:rl:user:look"
        for _ in range(3):
            [decision] = await state.hit([Check("user", key, one, count=False)])
            assert decision.allowed
        await state.add(Check("user", key, one))
        [decision] = await state.hit([Check("user", key, one, count=False)])
        assert not decision.allowed
        # A refused look beside a counting check: neither is counted.
        session = Check("session", "rtx:rl:session:look", one)
        assert [d.allowed for d in await state.hit([session, Check("user", key, one, count=False)])] == [True, False]
        assert (await state.hit([session]))[0].allowed
    finally:
        await client.aclose()


async def test_no_secret_becomes_a_redis_key(emulator, service_factory, redis) -> None:
    service = await service_factory(REDIS_URL=redis.url, STATE_HASH_KEY=HASH_KEY)
    user_id, session_id, cookie = emulator.signed_in_user()
    assert (await exchange(service, cookie)).status == 200
    _, dead_session, dead_cookie = emulator.signed_in_user("dead@example.com")
    emulator.state.delete_session(dead_session)
    assert (await exchange(service, dead_cookie)).status == 401
    client = await asyncio.to_thread(aioredis.Redis, port=redis.port)
    try:
        keys = [key.decode() async for key in client.scan_iter("*")]
    finally:
        await client.aclose()
    assert any(key.startswith("rtx:rl:session:") for key in keys), keys
    assert any(key.startswith("rtx:cache:invalid:") for key in keys), keys
    assert any(key.startswith("rtx:cache:user:") for key in keys)
    for key in keys:
        for secret in (cookie, dead_cookie, user_id, session_id, "127.0.0.1"):
            assert secret not in key


async def test_redis_outage_falls_back_and_recovers(emulator, service_factory, redis, logs) -> None:
    service = await service_factory(REDIS_URL=redis.url, STATE_HASH_KEY=HASH_KEY, RATE_LIMIT_SESSION="off")
    _, _, cookie = emulator.signed_in_user()
    assert (await exchange(service, cookie)).status == 200
    assert (await (await service.get("/readyz")).json())["checks"]["state"]["status"] == "ok"

    await asyncio.to_thread(redis.stop)
    for _ in range(5):
        assert (await exchange(service, cookie)).status == 200
    ready = await (await service.get("/readyz")).json()
    assert ready["status"] == "degraded"
    assert ready["checks"]["state"] == {"status": "degraded", "backend": "redis", "fallback": "memory"}
    assert "token_exchange_state_backend_fallback 1.0" in await (await service.get("/metrics")).text()
    assert len(logs.events("state.redis_unavailable")) == 1

    await asyncio.to_thread(redis.start)
    await asyncio.sleep(1.1)
    assert (await exchange(service, cookie)).status == 200
    assert (await (await service.get("/readyz")).json())["checks"]["state"]["status"] == "ok"
    assert "token_exchange_state_backend_fallback 0.0" in await (await service.get("/metrics")).text()
    assert len(logs.events("state.redis_recovered")) == 1


async def test_limits_still_hold_during_an_outage(emulator, service_factory, redis) -> None:
    service = await service_factory(REDIS_URL=redis.url, STATE_HASH_KEY=HASH_KEY, RATE_LIMIT_SESSION="2/minute")
    _, _, cookie = emulator.signed_in_user()
    await asyncio.to_thread(redis.stop)
    statuses = [(await exchange(service, cookie)).status for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_two_service_processes_share_one_limit(redis) -> None:
    project = "sharedproject"
    emulator_port = free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    ports = [free_port(), free_port()]
    env = {
        "APPWRITE_ENDPOINT": f"{emulator_url}/v1",
        "APPWRITE_PROJECT_ID": project,
        "HOST": "127.0.0.1",
        "REDIS_URL": redis.url,
        "STATE_HASH_KEY": HASH_KEY,
        "RATE_LIMIT_SESSION": "4/minute",
        "LOG_LEVEL": "warning",
    }
    async with (
        running("emulator", "--port", str(emulator_port), env={"EMULATOR_PROJECT_ID": project},
                ready_url=f"{emulator_url}/v1/health/version"),
        running("serve", env={**env, "PORT": str(ports[0])}, ready_url=f"http://127.0.0.1:{ports[0]}/livez"),
        running("serve", env={**env, "PORT": str(ports[1])}, ready_url=f"http://127.0.0.1:{ports[1]}/livez"),
        aiohttp.ClientSession() as http,
    ):
        async with http.post(f"{emulator_url}/_emulator/users", json={"email": "s@example.com", "password": "pw-123456"}) as r:
            user_id = (await r.json())["userId"]
        async with http.post(f"{emulator_url}/_emulator/sessions", json={"userId": user_id}) as r:
            cookie = (await r.json())["secret"]
        statuses = []
        for i in range(8):
            async with http.post(
                f"http://127.0.0.1:{ports[i % 2]}/v1/realtime/token",
                headers={"X-CSRF": "1", "Cookie": f"a_session_{project}={cookie}"},
            ) as response:
                statuses.append(response.status)
                if response.status == 429:
                    await assert_problem(response, 429, "rate_limited")
        assert statuses == [200, 200, 200, 200, 429, 429, 429, 429]
