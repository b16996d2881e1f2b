"""Liveness and readiness, as a Kubernetes probe sees them."""

from __future__ import annotations


async def test_livez_is_cheap_and_alive(service) -> None:
    response = await service.get("/livez")
    assert response.status == 200
    assert (await response.json()) == {"status": "alive"}


async def test_readyz_says_what_it_checked(service) -> None:
    response = await service.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ready"
    assert body["checks"]["http_client"] == "ok"
    assert body["checks"]["lifecycle"] == "serving"
    assert body["checks"]["appwrite"]["status"] == "ok"
    assert body["checks"]["appwrite"]["version"]


async def test_appwrite_down_degrades_but_stays_ready(service_factory) -> None:
    service = await service_factory(APPWRITE_ENDPOINT="http://127.0.0.1:9/v1")
    response = await service.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["appwrite"] == {"status": "unreachable"}


async def test_draining_is_not_ready(service) -> None:
    from appwrite_token_exchange.keys import LIFECYCLE

    service.app[LIFECYCLE].start_drain()
    response = await service.get("/readyz")
    assert response.status == 503
    assert (await response.json())["checks"]["lifecycle"] == "draining"
