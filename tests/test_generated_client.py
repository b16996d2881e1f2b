"""A Python client generated from openapi.yaml (openapi-python-client) talks to the live service.

The client is generated once per test session into a temporary folder, with the settings in
tools/contract/openapi-python-client.yaml; a generator warning (a schema it had to drop) fails
the session. The service runs on a real loopback port in front of the emulator, with the
contract middleware outermost.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer
from appwrite_token_exchange.app import create_app

from tests.support.contract import SPEC_PATH, contract_middleware
from tests.support.service import COOKIE, Emulator, service_settings

# Every test uses the client openapi-python-client generates (the session fixture `generated`).
pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parent.parent
GENERATOR_CONFIG = ROOT / "tools" / "contract" / "openapi-python-client.yaml"
PACKAGE = "token_exchange_client"


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The generated client package; fails (never skips) when the generator is missing or warns."""
    try:
        importlib.import_module("openapi_python_client")
    except ImportError:
        pytest.fail(
            "openapi-python-client is not installed; run: scripts/install-python (or pip install -e '.[test]')",
            pytrace=False,
        )
    out = tmp_path_factory.mktemp("generated-client")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(SPEC_PATH),
            "--config",
            str(GENERATOR_CONFIG),
            "--meta",
            "none",
            "--output-path",
            str(out / PACKAGE),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"openapi-python-client failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    sys.path.insert(0, str(out))
    try:
        yield _Generated(importlib.import_module(PACKAGE))
    finally:
        sys.path.remove(str(out))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


class _Generated:
    """The generated modules the tests use, imported once."""

    def __init__(self, package: ModuleType) -> None:
        self.Client = package.Client
        self.token = importlib.import_module(f"{PACKAGE}.api.realtime.create_realtime_token")
        self.liveness = importlib.import_module(f"{PACKAGE}.api.operations.get_liveness")
        self.readiness = importlib.import_module(f"{PACKAGE}.api.operations.get_readiness")
        self.models = importlib.import_module(f"{PACKAGE}.models")


@pytest.fixture
def http_client() -> Iterator[httpx.AsyncClient]:
    # Built outside the event loop: httpx reads CA files when it makes a client.
    client = httpx.AsyncClient(timeout=5.0)
    yield client


@pytest.fixture
async def live_service(
    emulator: Emulator, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> Any:
    failures: list[str] = []

    async def start(**env: str) -> str:
        app = create_app(service_settings(emulator, **env))
        app.middlewares.insert(0, contract_middleware(failures))
        server = await aiohttp_server(app, host="127.0.0.1")
        return str(server.make_url("")).rstrip("/")

    yield start
    assert failures == [], "answers outside openapi.yaml:\n" + "\n".join(failures)


def _client(generated: Any, http_client: httpx.AsyncClient, base_url: str, cookie: str | None = None) -> Any:
    client = generated.Client(base_url=base_url, raise_on_unexpected_status=True)
    http_client.base_url = httpx.URL(base_url)
    http_client.cookies.clear()
    if cookie is not None:
        http_client.cookies.set(COOKIE, cookie)
    return client.set_async_httpx_client(http_client)


async def test_a_typed_token(
    generated: Any, http_client: httpx.AsyncClient, live_service: Any, emulator: Emulator
) -> None:
    user_id, _, cookie = emulator.signed_in_user()
    client = _client(generated, http_client, await live_service(), cookie)
    models = generated.models
    async with client:
        answer = await generated.token.asyncio_detailed(client=client, x_csrf=models.CreateRealtimeTokenXCSRF("1"))
    assert answer.status_code == 200
    token = answer.parsed
    assert isinstance(token, models.RealtimeToken)
    assert token.user_id == user_id
    assert isinstance(token.jwt, str) and token.jwt.count(".") == 2
    assert isinstance(token.expires_in, int) and 0 < token.expires_in <= 60
    assert answer.headers["Cache-Control"] == "no-store"


async def test_a_typed_problem_without_a_session(
    generated: Any, http_client: httpx.AsyncClient, live_service: Any
) -> None:
    client = _client(generated, http_client, await live_service())
    models = generated.models
    async with client:
        answer = await generated.token.asyncio_detailed(client=client, x_csrf=models.CreateRealtimeTokenXCSRF("1"))
    assert answer.status_code == 401
    problem = answer.parsed
    assert isinstance(problem, models.SessionProblem)
    assert problem.code is models.SessionProblemCode.SESSION_MISSING
    assert problem.status == models.SessionProblemStatus(401)
    assert problem.type_.endswith("/session_missing")
    assert answer.headers["X-Request-ID"]


async def test_a_typed_rate_limit_problem_with_its_scope(
    generated: Any, http_client: httpx.AsyncClient, live_service: Any, session_cookie: str
) -> None:
    client = _client(generated, http_client, await live_service(RATE_LIMIT_SESSION="1/minute"), session_cookie)
    models = generated.models
    async with client:
        first = await generated.token.asyncio_detailed(client=client, x_csrf=models.CreateRealtimeTokenXCSRF("1"))
        second = await generated.token.asyncio_detailed(client=client, x_csrf=models.CreateRealtimeTokenXCSRF("1"))
    assert isinstance(first.parsed, models.RealtimeToken)
    assert second.status_code == 429
    assert isinstance(second.parsed, models.RateLimitedProblem)
    assert second.parsed.scope is models.RateLimitScope.SESSION
    assert int(second.headers["Retry-After"]) >= 1


async def test_typed_probes(generated: Any, http_client: httpx.AsyncClient, live_service: Any) -> None:
    client = _client(generated, http_client, await live_service())
    models = generated.models
    async with client:
        alive = await generated.liveness.asyncio(client=client)
        ready = await generated.readiness.asyncio(client=client)
    assert isinstance(alive, models.Liveness)
    assert isinstance(ready, models.ReadinessServing)
    assert ready.status in (models.ReadinessServingStatus.READY, models.ReadinessServingStatus.DEGRADED)

