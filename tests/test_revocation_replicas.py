"""Sign-out at once across replicas: two real `serve` processes on one real Redis (standalone, Cluster,
Sentinel), relayed sockets open on both, one revocation sent to one of them. Every socket of the
user, on both, closes long before the re-check timer (300 s) could: the revocation went through
Redis pub/sub. How long it took is printed (bench/revocation.py measures it at scale)."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import pytest
from appwrite_token_exchange.revocation.webhook import signature

from tests.test_redis_topologies import PROJECT, Run, redis_rig, redis_url, two_services

__all__ = ["redis_rig", "redis_url"]  # fixtures, used by name
SECRET = "revocation-secret-0123456789"
KEY = "whsec-replicas-0123456789"
URL = "https://rt.example.com/v1/realtime/webhooks/appwrite"
ORIGIN = "https://app.example.com"
ENV = {"REVOCATION_SECRET": SECRET, "APPWRITE_WEBHOOK_SIGNATURE_KEY": KEY, "APPWRITE_WEBHOOK_URL": URL,
       "ALLOWED_ORIGINS": ORIGIN, "RELAY_REVALIDATE_SECONDS": "300", "RATE_LIMIT_SESSION": "1000/minute"}
SOCKETS_PER_REPLICA = 5
pytestmark = [pytest.mark.timeout(120)]


async def open_sockets(run: Run, count: int) -> list[aiohttp.ClientWebSocketResponse]:
    sockets = []
    for i in range(count):
        port = run.ports[i % 2]
        ws = await run.http.ws_connect(f"ws://127.0.0.1:{port}/v1/realtime?project={PROJECT}&channels[]=account",
                                       headers={"Origin": ORIGIN, "Cookie": f"a_session_{PROJECT}={run.cookie}"})
        first = await asyncio.wait_for(ws.receive(), 5)
        assert json.loads(first.data)["type"] == "connected", first
        sockets.append(ws)
    return sockets


async def all_closed(sockets: list[aiohttp.ClientWebSocketResponse]) -> list[tuple[int, str, float]]:
    """Each socket's close code, reason and when it came (time.perf_counter)."""
    async def closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str, float]:
        message = await asyncio.wait_for(ws.receive(), 10)
        assert message.type == aiohttp.WSMsgType.CLOSE, message
        return int(message.data), str(message.extra), time.perf_counter()
    return list(await asyncio.gather(*(closed(ws) for ws in sockets)))


async def ids(run: Run) -> tuple[str, str]:
    """The user and session ids, as the token route's JWT names them."""
    _, body = await run.exchange(0)
    payload = body["jwt"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims["userId"], claims["sessionId"]


@pytest.mark.parametrize("redis_rig", ["redis-standalone", "redis-cluster", "redis-sentinel"], indirect=True)
async def test_the_apps_kick_closes_the_users_sockets_on_every_replica(redis_url: str) -> None:
    async with two_services(redis_url, **ENV) as run:
        user_id, _ = await ids(run)
        sockets = await open_sockets(run, 2 * SOCKETS_PER_REPLICA)
        started = time.perf_counter()
        async with run.http.delete(f"http://127.0.0.1:{run.ports[0]}/internal/v1/users/{user_id}/sockets",
                                   headers={"Authorization": f"Bearer {SECRET}"}) as response:
            assert response.status == 200, await response.text()
            answer = await response.json()
        assert answer["closedHere"] == SOCKETS_PER_REPLICA and answer["broadcast"] == "redis", answer
        closes = await all_closed(sockets)
        assert {(code, reason) for code, reason, _ in closes} == {(1008, "signed_out")}
        print(f"\n{redis_url.split(':')[0]}: internal kick -> last of {len(sockets)} sockets on 2 replicas closed "
              f"in {1000 * (max(at for *_, at in closes) - started):.1f} ms")
        # The session is answered 401 at once by both replicas (Appwrite still holds it).
        for replica in (0, 1):
            async with run.http.post(f"http://127.0.0.1:{run.ports[replica]}/v1/realtime/token",
                                     headers={"X-CSRF": "1", "Cookie": f"a_session_{PROJECT}={run.cookie}"}) as r:
                assert r.status == 401 and (await r.json())["code"] == "session_invalid"


@pytest.mark.parametrize("redis_rig", ["redis-standalone"], indirect=True)
async def test_appwrites_webhook_closes_ended_sessions_on_every_replica(redis_url: str) -> None:
    async with two_services(redis_url, **ENV) as run:
        user_id, session_id = await ids(run)
        sockets = await open_sockets(run, 2 * SOCKETS_PER_REPLICA)
        async with run.http.get(f"http://127.0.0.1:{run.ports[0]}/readyz") as response:
            assert (await response.json())["checks"]["revocation"]["subscribed"] is True
        async with run.http.delete(f"{run.emulator_url}/_emulator/sessions/{session_id}") as response:
            assert response.status == 204
        body = json.dumps({"$id": session_id, "userId": user_id}).encode()
        started = time.perf_counter()
        async with run.http.post(f"http://127.0.0.1:{run.ports[1]}/v1/realtime/webhooks/appwrite", data=body,
                                 headers={"X-Appwrite-Webhook-Events": "users.*.sessions.*.delete",
                                          "X-Appwrite-Webhook-Signature": signature(URL, body, KEY)}) as response:
            assert response.status == 200, await response.text()
        closes = await all_closed(sockets)
        assert {(code, reason) for code, reason, _ in closes} == {(1008, "session_ended")}
        print(f"\nwebhook -> last of {len(sockets)} sockets on 2 replicas closed "
              f"in {1000 * (max(at for *_, at in closes) - started):.1f} ms")
