"""Small helpers the tests share: talking to the emulator's control API and reading problems."""

from __future__ import annotations

from typing import Any

import aiohttp
from appwrite_token_exchange.problems import PROBLEM_CONTENT_TYPE

from tests.support.service import Emulator


async def inject_fault(emulator: Emulator, kind: str, **options: Any) -> None:
    async with aiohttp.ClientSession() as http:
        url = emulator.server.make_url("/_emulator/faults")
        async with http.post(url, json={"kind": kind, **options}) as response:
            assert response.status in (200, 201, 204), await response.text()


async def upstream_requests(emulator: Emulator, path: str = "/v1/account/jwts") -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        url = emulator.server.make_url("/_emulator/requests")
        async with http.get(url, params={"path": path}) as response:
            assert response.status == 200
            body = await response.json()
    return body if isinstance(body, list) else body["requests"]


async def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is RFC 9457 problem+json with our stable code, and leaks nothing internal."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body = await response.json(content_type=None)
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith(code)
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in text
    assert response.headers.get("X-Request-ID")
    return dict(body)
