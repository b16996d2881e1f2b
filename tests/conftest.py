"""Shared fixtures: the Appwrite emulator on a real port, the service in front of it, log capture,
and a guard that fails any test whose code blocks the event loop."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.emulator import EMULATOR_STATE, EmulatorConfig, create_emulator_app
from appwrite_token_exchange.observability.logs import configure_logging
from appwrite_token_exchange.settings import Settings
from blockbuster import blockbuster_ctx

from tests.contract import contract_middleware

JWT_SECRET = "test-instance-key-0123456789abcdef"
PROJECT = "testproject"
COOKIE = f"a_session_{PROJECT}"


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[None]:
    """Any blocking call (file, socket, sleep) made from the event loop fails the test."""
    with blockbuster_ctx(["service", "tests"]):
        yield


@dataclass
class Emulator:
    server: TestServer
    app: web.Application

    @property
    def endpoint(self) -> str:
        return str(self.server.make_url("/v1"))

    @property
    def state(self) -> Any:
        return self.app[EMULATOR_STATE]

    def signed_in_user(self, email: str = "ada@example.com", **user: Any) -> tuple[str, str, str]:
        """A new user with a live session: (user id, session id, cookie value)."""
        created = self.state.create_user(email, "password-123", **user)
        session_id, cookie_value = self.state.create_session(created.id)
        return created.id, session_id, cookie_value


@pytest.fixture
async def emulator_factory(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> Callable[..., Awaitable[Emulator]]:
    async def start(**config: Any) -> Emulator:
        config.setdefault("project_id", PROJECT)
        config.setdefault("jwt_secret", JWT_SECRET)
        app = create_emulator_app(EmulatorConfig(**config))
        return Emulator(await aiohttp_server(app), app)

    return start


@pytest.fixture
async def emulator(emulator_factory: Callable[..., Awaitable[Emulator]]) -> Emulator:
    return await emulator_factory()


def service_settings(emulator: Emulator, **env: str) -> Settings:
    base = {
        "APPWRITE_ENDPOINT": emulator.endpoint,
        "APPWRITE_PROJECT_ID": PROJECT,
        "APPWRITE_JWT_SECRET": JWT_SECRET,
        "UPSTREAM_TIMEOUT_SECONDS": "1",
        "ALLOWED_ORIGINS": "https://app.example.com",
    }
    base.update(env)
    return Settings.from_env({k: v for k, v in base.items() if v != ""})


ServiceFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def contract_failures() -> Iterator[list[str]]:
    """Every answer of the service in a test must match openapi.yaml (tests/contract.py)."""
    failures: list[str] = []
    yield failures
    assert not failures, "answers outside openapi.yaml:\n" + "\n".join(failures)


@pytest.fixture
async def service_factory(
    emulator: Emulator,
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    contract_failures: list[str],
) -> ServiceFactory:
    """A running service in front of the emulator (or `upstream`); keyword arguments are environment
    overrides. Every answer it gives is checked against openapi.yaml."""

    async def start(upstream: Emulator | None = None, **env: str) -> TestClient[web.Request, web.Application]:
        app = create_app(service_settings(upstream or emulator, **env))
        # Outermost, so it sees the final answer exactly as a client does.
        app.middlewares.insert(0, contract_middleware(contract_failures))
        return await aiohttp_client(app)

    return start


@pytest.fixture
async def service(service_factory: ServiceFactory) -> TestClient[web.Request, web.Application]:
    return await service_factory()


class LogLines:
    """Every line the service logged during the test, parsed from the real JSON renderer."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.text.splitlines() if line.strip()]
        return [line for line in lines if name is None or line.get("event") == name]


@pytest.fixture(autouse=True)
def logs() -> Iterator[LogLines]:
    stream = io.StringIO()
    configure_logging("debug", "json", stream, cache_loggers=False)
    yield LogLines(stream)


async def exchange(
    client: TestClient[web.Request, web.Application],
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """POST the token route the way the browser helper does."""
    sent = {"X-CSRF": "1"}
    if cookie is not None:
        sent["Cookie"] = f"{COOKIE}={cookie}"
    sent.update(headers or {})
    return await client.post("/v1/realtime/token", headers={k: v for k, v in sent.items() if v != ""}, **kwargs)


@pytest.fixture
async def session_cookie(emulator: Emulator) -> AsyncIterator[str]:
    yield emulator.signed_in_user()[2]
