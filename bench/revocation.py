"""Sign-out at once, timed: one user's relayed sockets spread over two `serve` replicas on one Redis,
then the app's kick (`DELETE /internal/v1/users/{id}/sockets`) or Appwrite's webhook sent to one
replica; the time until the last socket on either replica has its close frame. The kick closes at
once; the webhook has each socket re-checked with Appwrite first (one call per socket)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from appwrite_token_exchange.revocation.webhook import signature

from bench.exchange import service_env
from bench.procs import PYTHON, Children, Cores, free_port, http_call, raise_open_files_limit, wait_http
from bench.relay import RELAY_LIMITS
from bench.upstream import PROJECT, create_sessions, start_emulator, start_redis

SECRET = "bench-revocation-secret-0123456789"  # noqa: S105 - a test value
KEY = "bench-webhook-key"
WEBHOOK_URL = "https://bench.example/v1/realtime/webhooks/appwrite"
ORIGIN = "https://bench.example"


@dataclass
class RevocationResult:
    sockets: int
    kick_ms: list[float] = field(default_factory=list)
    webhook_ms: list[float] = field(default_factory=list)

    def text(self) -> str:
        def shown(values: list[float]) -> str:
            return f"median {statistics.median(values):.1f} ms (min {min(values):.1f}, max {max(values):.1f})" \
                if values else "not measured"
        return (f"\nsign-out at once ({self.sockets:,} sockets of one user on 2 replicas, one Redis): "
                f"kick -> last socket closed {shown(self.kick_ms)}; "
                f"webhook -> last socket closed {shown(self.webhook_ms)}")

    def to_json(self) -> dict[str, object]:
        return {"sockets": self.sockets, "kick_ms": self.kick_ms, "webhook_ms": self.webhook_ms}


def revocation_bench(children: Children, cores: Cores, sockets: int, rounds: int,
                     log: Callable[[str], None]) -> RevocationResult:
    raise_open_files_limit(4 * sockets + 1024)
    emulator = start_emulator(children, cores.rest, lean=False, name="revocation-emulator")
    redis_child, redis_url = start_redis(children, cores.rest, children.workdir)
    assert emulator.port is not None
    ports = [free_port(), free_port()]
    for index, port in enumerate(ports):
        env = service_env(emulator.port, port, "warning", redis_url) | RELAY_LIMITS | {
            "REVOCATION_SECRET": SECRET, "APPWRITE_WEBHOOK_SIGNATURE_KEY": KEY, "APPWRITE_WEBHOOK_URL": WEBHOOK_URL,
            "ALLOWED_ORIGINS": ORIGIN, "RELAY_REVALIDATE_SECONDS": "3600",
        }
        child = children.start(f"revocation-service-{index}", [PYTHON, "-m", "appwrite_token_exchange", "serve"],
                               env=env, cpus=cores.sut, port=port)
        wait_http(child, "/livez")
    result = RevocationResult(sockets)
    try:
        for round_index in range(rounds):
            for kind in ("kick", "webhook"):
                [session] = create_sessions(emulator, 1, prefix=f"rev{round_index}{kind}")
                took = asyncio.run(_one(ports, emulator.port, session.user_id, session.cookie, sockets, kind))
                (result.kick_ms if kind == "kick" else result.webhook_ms).append(took)
                log(f"  revocation round {round_index + 1}/{rounds} {kind}: last of {sockets} sockets closed "
                    f"in {took:.1f} ms")
    finally:
        children.stop(redis_child)
    return result


async def _one(ports: list[int], emulator_port: int, user_id: str, cookie: str, sockets: int, kind: str) -> float:
    # No connection cap: every socket holds its connection for the whole run.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        opened: list[aiohttp.ClientWebSocketResponse] = []
        # In batches under UPSTREAM_MAX_CONCURRENCY (64): each handshake asks Appwrite once.
        for batch in range(0, sockets, 32):
            opened += await asyncio.gather(*(
                http.ws_connect(f"ws://127.0.0.1:{ports[i % 2]}/v1/realtime?project={PROJECT}&channels[]=account",
                                headers={"Origin": ORIGIN, "Cookie": f"a_session_{PROJECT}={cookie}"})
                for i in range(batch, min(sockets, batch + 32))
            ))
        for ws in opened:
            assert json.loads((await ws.receive(timeout=30)).data)["type"] == "connected"
        closes = [asyncio.ensure_future(_closed_at(ws)) for ws in opened]
        if kind == "kick":
            started = time.perf_counter()
            async with http.delete(f"http://127.0.0.1:{ports[0]}/internal/v1/users/{user_id}/sockets",
                                   headers={"Authorization": f"Bearer {SECRET}"}) as response:
                assert response.status == 200, await response.text()
        else:
            status, _ = await asyncio.to_thread(http_call, emulator_port, "POST", f"/_emulator/users/{user_id}/block",
                                                {"blocked": True})
            assert status == 200, status
            body = json.dumps({"$id": user_id, "status": False}).encode()
            started = time.perf_counter()
            async with http.post(f"http://127.0.0.1:{ports[1]}/v1/realtime/webhooks/appwrite", data=body,
                                 headers={"X-Appwrite-Webhook-Events": f"users.{user_id}.update.status",
                                          "X-Appwrite-Webhook-Signature": signature(WEBHOOK_URL, body, KEY)}) as r:
                assert r.status == 200, await r.text()
        ended = await asyncio.gather(*closes)
        return 1000 * (max(ended) - started)


async def _closed_at(ws: aiohttp.ClientWebSocketResponse) -> float:
    message = await ws.receive(timeout=60)
    assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1008, message
    return time.perf_counter()

