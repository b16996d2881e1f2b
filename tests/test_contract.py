"""openapi.yaml against the code: the document is valid, its problem codes are problems.py's, every
documented answer is one the running service gives, and the contract middleware can fail."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.problems import PROBLEMS
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from tests.support.contract import CONTRACT, SPEC_PATH, contract_middleware
from tests.support.helpers import assert_problem, inject_fault, upstream_requests
from tests.support.service import COOKIE, Emulator, exchange, service_settings

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[..., Awaitable[Client]]
ORIGIN = "https://app.example.com"


class Checked:
    """The service in front of the emulator, with the contract middleware outermost."""

    def __init__(self, emulator: Emulator, aiohttp_client: AiohttpClient) -> None:
        self.failures: list[str] = []
        self._emulator = emulator
        self._aiohttp_client = aiohttp_client

    async def start(self, *outer: Any, **env: str) -> Client:
        app = create_app(service_settings(self._emulator, **env))
        app.middlewares.insert(0, contract_middleware(self.failures))
        for middleware in reversed(outer):
            app.middlewares.insert(0, middleware)
        return await self._aiohttp_client(app)


@pytest.fixture
async def checked(emulator: Emulator, aiohttp_client: AiohttpClient) -> Any:
    harness = Checked(emulator, aiohttp_client)
    yield harness
    assert harness.failures == [], "answers outside openapi.yaml:\n" + "\n".join(harness.failures)


# -- the document -------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_spec_is_valid_openapi_3_1() -> None:
    spec, _ = read_from_filename(str(SPEC_PATH))
    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_the_problem_codes_are_exactly_those_of_problems_py() -> None:
    assert CONTRACT.spec["components"]["schemas"]["ProblemCode"]["enum"] == list(PROBLEMS)


def _schema(node: dict[str, Any]) -> dict[str, Any]:
    return CONTRACT.resolve(node)


def _narrowed(schema: dict[str, Any]) -> list[tuple[int, list[str]]]:
    """(status, codes) pairs a problem schema allows, through its oneOf and allOf."""
    schema = _schema(schema)
    if "oneOf" in schema:
        return [pair for option in schema["oneOf"] for pair in _narrowed(option)]
    status, codes = None, None
    for part in schema.get("allOf", []):
        properties = _schema(part).get("properties", {})
        status = properties.get("status", {}).get("enum", [status])[0]
        codes = properties.get("code", {}).get("enum", codes)
    assert status is not None and codes is not None, f"not a narrowed problem schema: {schema}"
    return [(status, codes)]


def _problem_responses() -> list[tuple[str, int, dict[str, Any]]]:
    found = []
    for path, item in CONTRACT.spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                content = _schema(response).get("content", {})
                if "application/problem+json" in content:
                    found.append((f"{method.upper()} {path}", int(status), content["application/problem+json"]))
    for status, response in CONTRACT.spec["x-unrouted"]["responses"].items():
        found.append(("unrouted", int(status), _schema(response)["content"]["application/problem+json"]))
    return found


def test_every_documented_problem_code_comes_with_its_status_and_every_code_is_documented() -> None:
    used: set[str] = set()
    for where, status, media in _problem_responses():
        for schema_status, codes in _narrowed(media["schema"]):
            assert schema_status == status, f"{where} {status}: schema says status {schema_status}"
            for code in codes:
                assert PROBLEMS[code].status == status, f"{where}: {code} is {PROBLEMS[code].status}, not {status}"
                used.add(code)
        for name, example in media.get("examples", {}).items():
            value = example["value"]
            assert value["code"] == name and value["status"] == status, f"{where}: example {name}"
            assert value["title"] == PROBLEMS[name].title, f"{where}: example {name} has another title"
    assert used == set(PROBLEMS), f"codes no response documents: {set(PROBLEMS) - used}"


def test_every_error_is_problem_json_with_a_request_id() -> None:
    for path, item in CONTRACT.spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                response = _schema(response)
                where = f"{method.upper()} {path} {status}"
                assert response["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/XRequestId"}, where
                # /readyz's 503 is its readiness report, for load balancers, not an error.
                if int(status) >= 400 and method != "head" and (path, status) != ("/readyz", "503"):
                    assert list(response["content"]) == ["application/problem+json"], where
                    assert response["headers"]["Cache-Control"] == {
                        "$ref": "#/components/headers/CacheControlNoStore"
                    }, where


def test_operation_ids_suit_generated_clients() -> None:
    ids = [op["operationId"] for item in CONTRACT.spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert all(op_id.isidentifier() and op_id[0].islower() for op_id in ids)
    assert "createRealtimeToken" in ids


# -- the service keeps it -----------------------------------------------------------------------


async def test_a_token_and_every_refusal_before_appwrite(checked: Checked, session_cookie: str) -> None:
    client = await checked.start()
    issued = await exchange(client, session_cookie, headers={"Origin": ORIGIN, "X-Request-ID": "req-1"})
    assert issued.status == 200
    assert len(issued.headers["X-Request-ID"]) == 32  # the service's own, never the caller's
    assert (await exchange(client)).status == 401
    assert (await exchange(client, "not a session")).status == 401
    assert (await exchange(client, session_cookie, headers={"X-CSRF": ""})).status == 403
    assert (await exchange(client, session_cookie, headers={"Origin": "https://evil.example"})).status == 403
    assert (await exchange(client, session_cookie, data=b"x" * 5000)).status == 413
    assert checked.failures == []


async def test_odd_but_well_formed_requests(checked: Checked, session_cookie: str) -> None:
    client = await checked.start()
    replaced = await exchange(client, session_cookie, headers={"X-Request-ID": "x" * 200})
    assert replaced.status == 200 and replaced.headers["X-Request-ID"] != "x" * 200
    assert (await exchange(client, session_cookie, headers={"Sec-Fetch-Site": "cross-site"})).status == 403
    assert (await exchange(client, session_cookie, headers={"Origin": "null"})).status == 403
    assert (await exchange(client, session_cookie, headers={"X-CSRF": "true"})).status == 403
    quoted = await client.post("/v1/realtime/token", headers={"X-CSRF": "1", "Cookie": f'{COOKIE}="abc'})
    assert quoted.status == 401
    assert (await client.options("/v1/realtime/token", headers={"Access-Control-Request-Method": "POST"})).status == 403
    assert (await client.head("/v1/realtime/token")).status == 405
    assert (await client.head("/nowhere")).status == 404


async def test_session_refusals_from_appwrite(checked: Checked, emulator: Emulator) -> None:
    client = await checked.start()
    _, session_id, cookie = emulator.signed_in_user("gone@example.com")
    emulator.state.delete_session(session_id)
    assert (await exchange(client, cookie)).status == 401  # Appwrite refuses it
    assert (await exchange(client, cookie)).status == 401  # remembered: Appwrite is not asked
    blocked_id, _, blocked_cookie = emulator.signed_in_user("blocked@example.com")
    emulator.state.block_user(blocked_id)
    assert (await exchange(client, blocked_cookie)).status == 403
    mfa_id = emulator.state.create_user("mfa@example.com", "password-123", mfa=True).id
    _, mfa_cookie = emulator.state.create_session(mfa_id)
    assert (await exchange(client, mfa_cookie)).status == 401


async def test_rate_limits(checked: Checked, session_cookie: str) -> None:
    client = await checked.start(RATE_LIMIT_SESSION="1/minute")
    assert (await exchange(client, session_cookie)).status == 200
    refused = await exchange(client, session_cookie)
    assert refused.status == 429
    assert (await refused.json(content_type=None))["scope"] == "session"


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"kind": "status", "status": 503}, 503, "upstream_unavailable"),
        ({"kind": "drop"}, 503, "upstream_unavailable"),
        ({"kind": "rate_limit"}, 429, "upstream_rate_limited"),
        ({"kind": "garbage"}, 502, "upstream_bad_response"),
        ({"kind": "no_jwt"}, 502, "upstream_bad_response"),
        ({"kind": "status", "status": 404}, 502, "upstream_bad_response"),
        ({"kind": "latency", "ms": 3000}, 504, "upstream_timeout"),
    ],
)
async def test_upstream_failures(
    checked: Checked, emulator: Emulator, session_cookie: str, fault: dict[str, Any], status: int, code: str
) -> None:
    client = await checked.start(UPSTREAM_TIMEOUT_SECONDS="0.3")
    await inject_fault(emulator, **fault)
    await assert_problem(await exchange(client, session_cookie), status, code)


async def test_circuit_open(checked: Checked, emulator: Emulator, session_cookie: str) -> None:
    client = await checked.start(CIRCUIT_FAILURE_THRESHOLD="1")
    await inject_fault(emulator, kind="status", status=500)
    await assert_problem(await exchange(client, session_cookie), 503, "upstream_unavailable")
    called = [len(await upstream_requests(emulator, path)) for path in ("/v1/account/jwts", "/v1/account")]
    assert called[0] == 1
    refused = await exchange(client, session_cookie)
    await assert_problem(refused, 503, "upstream_unavailable")
    assert int(refused.headers["Retry-After"]) >= 1
    # The circuit is open: Appwrite was not called again.
    assert [len(await upstream_requests(emulator, path)) for path in ("/v1/account/jwts", "/v1/account")] == called


async def test_saturated(checked: Checked, emulator: Emulator, session_cookie: str) -> None:
    client = await checked.start(UPSTREAM_MAX_CONCURRENCY="1")
    await inject_fault(emulator, kind="latency", ms=300)
    answers = await asyncio.gather(exchange(client, session_cookie), exchange(client, session_cookie))
    assert sorted(answer.status for answer in answers) == [200, 503]
    await assert_problem(next(a for a in answers if a.status == 503), 503, "upstream_saturated")


async def test_preflight_on_any_path(checked: Checked) -> None:
    client = await checked.start()
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-csrf"}
    assert (await client.options("/v1/realtime/token", headers=preflight)).status == 204
    assert (await client.options("/livez", headers=preflight)).status == 204
    assert (await client.options("/nowhere", headers=preflight)).status == 204
    refused = {**preflight, "Origin": "https://evil.example"}
    assert (await client.options("/v1/realtime/token", headers=refused)).status == 403
    assert (await client.options("/v1/realtime/token")).status == 405  # not a preflight


async def test_unrouted_answers(checked: Checked) -> None:
    client = await checked.start()
    assert (await client.get("/nowhere")).status == 404
    assert (await client.post("/v1/realtime/token/")).status == 404
    assert (await client.get("/v1/realtime/token")).status == 405
    assert (await client.delete("/livez")).status == 405
    assert (await client.put("/metrics")).status == 405
    assert (await client.head("/v1/realtime")).status == 405


async def test_probes_and_metrics(checked: Checked, emulator: Emulator) -> None:
    client = await checked.start()
    assert (await client.get("/livez")).status == 200
    assert (await client.head("/livez")).status == 200
    assert (await client.get("/readyz")).status == 200
    assert (await client.head("/readyz")).status == 200
    assert (await client.get("/metrics", headers={"Origin": ORIGIN})).status == 200
    assert (await client.head("/metrics")).status == 200
    await inject_fault(emulator, kind="status", status=500, path="*")
    degraded = await client.get("/readyz")
    assert degraded.status == 200


async def test_draining(checked: Checked, session_cookie: str) -> None:
    client = await checked.start()
    await client.app.shutdown()  # on_shutdown starts the drain
    draining = await client.get("/readyz")
    assert draining.status == 503
    assert (await draining.json())["status"] == "unready"
    assert (await client.head("/readyz")).status == 503
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/v1/realtime?channels[]=account", headers={"Cookie": f"{COOKIE}={session_cookie}"})
    assert refused.value.status == 503  # service_draining


async def _relay_refusal(client: Client, headers: dict[str, str], query: str = "channels[]=account") -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(f"/v1/realtime?project=testproject&{query}", headers=headers)
    return refused.value.status


async def test_relay_refusals_before_the_upgrade(checked: Checked, emulator: Emulator, session_cookie: str) -> None:
    client = await checked.start(RELAY_CHANNELS_ALLOW="account*")
    cookie = {"Cookie": f"{COOKIE}={session_cookie}"}
    await assert_problem(await client.get("/v1/realtime"), 400, "bad_request")  # not an upgrade
    assert await _relay_refusal(client, {}) == 401
    assert await _relay_refusal(client, {**cookie, "Origin": "https://evil.example"}) == 403
    assert await _relay_refusal(client, cookie, "channels[]=files") == 403
    blocked_id, _, blocked_cookie = emulator.signed_in_user("blocked@example.com")
    emulator.state.block_user(blocked_id)
    assert await _relay_refusal(client, {"Cookie": f"{COOKIE}={blocked_cookie}"}) == 403
    await inject_fault(emulator, kind="status", status=503, path="/v1/account")
    assert await _relay_refusal(client, cookie) == 503


async def test_relayed_socket(checked: Checked, session_cookie: str) -> None:
    relay_answered = asyncio.Event()

    @web.middleware
    async def note_answers(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            if request.path == "/v1/realtime":
                relay_answered.set()

    client = await checked.start(note_answers)
    socket = await client.ws_connect(
        "/v1/realtime?project=testproject&channels[]=account", headers={"Cookie": f"{COOKIE}={session_cookie}"}
    )
    await socket.close()
    # The 101 is checked when the relay's handler returns, once both sockets are closed.
    await asyncio.wait_for(relay_answered.wait(), 5)


# -- the check can fail -------------------------------------------------------------------------


def _tiny_app(failures: list[str], handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.Application:
    app = web.Application(middlewares=[contract_middleware(failures)])
    app.router.add_get("/livez", handler)
    return app


_GOOD_HEADERS = {
    "Cache-Control": "no-store",
    "X-Request-ID": "4bf92f3577b34da6a3ce929d0e0e4736",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Origin",
}


async def _undocumented_status(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "alive"}, status=418, headers=_GOOD_HEADERS)


async def _missing_request_id(request: web.Request) -> web.StreamResponse:
    headers = {k: v for k, v in _GOOD_HEADERS.items() if k != "X-Request-ID"}
    return web.json_response({"status": "alive"}, headers=headers)


async def _body_off_schema(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "alive", "uptime": 3}, headers=_GOOD_HEADERS)


async def _wrong_content_type(request: web.Request) -> web.StreamResponse:
    return web.Response(text='{"status": "alive"}', content_type="text/html", headers=_GOOD_HEADERS)


async def _bad_header_value(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "alive"}, headers={**_GOOD_HEADERS, "Cache-Control": "max-age=60"})


async def _problem_not_per_contract(request: web.Request) -> web.StreamResponse:
    body = b'{"type": "about:blank", "title": "x", "status": 500, "detail": "x", "code": "oops"}'
    return web.Response(body=body, status=500, content_type="application/problem+json", headers=_GOOD_HEADERS)


async def _escaping_exception(request: web.Request) -> web.StreamResponse:
    raise RuntimeError("a bug")


async def _conforming(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "alive"}, headers=_GOOD_HEADERS)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (_undocumented_status, "418"),
        (_missing_request_id, "X-Request-ID"),
        (_body_off_schema, "uptime"),
        (_wrong_content_type, "text/html"),
        (_bad_header_value, "Cache-Control"),
        (_problem_not_per_contract, "code"),
        (_escaping_exception, "RuntimeError"),
    ],
)
async def test_the_middleware_catches_answers_outside_the_spec(
    aiohttp_client: AiohttpClient, handler: Callable[[web.Request], Awaitable[web.StreamResponse]], expected: str
) -> None:
    failures: list[str] = []
    client = await aiohttp_client(_tiny_app(failures, handler))
    await client.get("/livez")
    assert len(failures) == 1, failures
    assert failures[0].startswith("GET /livez") and expected in failures[0], failures[0]


async def test_the_middleware_passes_a_conforming_answer_and_checks_unrouted_ones(
    aiohttp_client: AiohttpClient,
) -> None:
    failures: list[str] = []
    client = await aiohttp_client(_tiny_app(failures, _conforming))
    assert (await client.get("/livez")).status == 200
    assert failures == []
    # A bare aiohttp 404 (text/plain, no X-Request-ID) is not the contract's problem+json 404.
    assert (await client.get("/nowhere")).status == 404
    assert len(failures) == 1, failures
    assert failures[0].startswith("GET /nowhere -> 404: ") and "text/plain" in failures[0], failures
