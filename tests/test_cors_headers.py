"""CORS as a browser reads it: every raw header line of every route's answer, counted.

A browser refuses an answer whose `Access-Control-Allow-Origin` has two values, and a client
library that folds repeated headers into one would hide exactly that. So these tests speak HTTP/1.1
over a plain socket and read the header block line by line: every route the app serves (taken
from its router, so a new route is covered without touching this file), plus unknown paths and
wrong methods; preflight and actual requests; allowed, refused, same-origin and no Origin.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from tests.support.service import COOKIE, ServiceFactory

ALLOWED = "https://app.example.com"
REFUSED = "https://evil.example.com"
SIBLING = "https://app.example.com.evil.example"
# Headers a response may legitimately repeat; none of ours does.
REPEATABLE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RawAnswer:
    status: int
    lines: list[tuple[str, str]]  # (lower-case name, value), in the order sent

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.lines if key == name.lower()]

    def repeated(self) -> list[str]:
        names = [key for key, _ in self.lines]
        return sorted({name for name in names if names.count(name) > 1 and name not in REPEATABLE})


async def raw_request(host: str, port: int, method: str, path: str, headers: dict[str, str]) -> RawAnswer:
    """One request on its own connection; the status and every header line exactly as sent."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        body = b"{}" if method == "POST" else b""
        if body:
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    finally:
        writer.close()
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = []
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            parsed.append((name.strip().lower(), value.strip()))
    return RawAnswer(int(status_line.split()[1]), parsed)


def requests_for_every_route(app_routes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each (method, path) the router serves, plus a wrong method on each path and an unknown path."""
    requests = [(method, path) for method, path in app_routes if method != "HEAD"]
    for path in sorted({path for _, path in app_routes}):
        served = {method for method, p in app_routes if p == path}
        requests.append(("PUT" if "PUT" not in served else "DELETE", path))
    requests += [("GET", "/nowhere"), ("POST", "/v1/realtime/token/")]
    return requests


@pytest.fixture
async def raw_service(service_factory: ServiceFactory, session_cookie: str):  # type: ignore[no-untyped-def]
    client = await service_factory(ALLOWED_ORIGINS=ALLOWED)
    routes = [
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None and route.method != "*"
    ]
    assert ("POST", "/v1/realtime/token") in routes and ("GET", "/v1/realtime") in routes

    async def send(method: str, path: str, headers: dict[str, str]) -> RawAnswer:
        sent = {"X-CSRF": "1", "Cookie": f"{COOKIE}={session_cookie}", **headers}
        return await raw_request(client.server.host, client.server.port, method, path, sent)

    return requests_for_every_route(routes), send


def assert_one_cors_grant(answer: RawAnswer, origin: str, where: str) -> None:
    assert answer.repeated() == [], f"{where}: repeated header lines {answer.repeated()}: {answer.lines}"
    assert answer.values("Access-Control-Allow-Origin") == [origin], where
    assert answer.values("Access-Control-Allow-Credentials") == ["true"], where
    assert len(answer.values("Access-Control-Expose-Headers")) == 1, where
    assert_vary_origin_once(answer, where)


def assert_no_cors_grant(answer: RawAnswer, where: str) -> None:
    assert answer.repeated() == [], f"{where}: repeated header lines {answer.repeated()}: {answer.lines}"
    granted = [key for key, _ in answer.lines if key.startswith("access-control-allow")]
    assert granted == [], f"{where}: {granted}"
    assert_vary_origin_once(answer, where)


def assert_vary_origin_once(answer: RawAnswer, where: str) -> None:
    tokens = [token.strip().lower() for value in answer.values("Vary") for token in value.split(",")]
    assert tokens.count("origin") == 1, f"{where}: Vary {answer.values('Vary')}"


@pytest.mark.slow
async def test_actual_requests_carry_each_cors_header_once_on_every_route(raw_service) -> None:
    requests, send = raw_service
    for method, path in requests:
        for origin in (ALLOWED, REFUSED, SIBLING, None):
            headers = {"Origin": origin} if origin else {}
            answer = await send(method, path, headers)
            where = f"{method} {path} Origin={origin} -> {answer.status}"
            assert answer.status < 500, where
            if origin == ALLOWED:
                assert_one_cors_grant(answer, ALLOWED, where)
            else:
                assert_no_cors_grant(answer, where)


@pytest.mark.slow
async def test_preflights_grant_once_for_allowed_origins_and_nothing_for_others(raw_service) -> None:
    requests, send = raw_service
    for _, path in requests:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-csrf"}
        allowed = await send("OPTIONS", path, {**preflight, "Origin": ALLOWED})
        where = f"preflight {path} from {ALLOWED} -> {allowed.status}"
        assert allowed.status == 204, where
        assert_one_cors_grant(allowed, ALLOWED, where)
        for name in ("Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age"):
            assert len(allowed.values(name)) == 1, f"{where}: {name}"
        assert "x-csrf" in allowed.values("Access-Control-Allow-Headers")[0].lower()
        for origin in (REFUSED, SIBLING, "null", None):
            headers = {**preflight, **({"Origin": origin} if origin else {})}
            refused = await send("OPTIONS", path, headers)
            where = f"preflight {path} from {origin} -> {refused.status}"
            assert refused.status == 403, where
            assert refused.values("Content-Type") == ["application/problem+json"], where
            assert_no_cors_grant(refused, where)


async def test_the_issue_reproduction_answers_one_allow_origin_line(service_factory: ServiceFactory) -> None:
    """The report: ALLOWED_ORIGINS=http://localhost:5000 and a preflight asking for x-csrf."""
    client = await service_factory(ALLOWED_ORIGINS="http://localhost:5000")
    answer = await raw_request(
        client.server.host,
        client.server.port,
        "OPTIONS",
        "/v1/realtime/token",
        {
            "Origin": "http://localhost:5000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-csrf",
        },
    )
    assert answer.status == 204
    assert answer.values("Access-Control-Allow-Origin") == ["http://localhost:5000"]
    assert answer.repeated() == []
