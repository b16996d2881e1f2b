"""Shared fixtures: the Appwrite emulator on a real port, the service in front of it, log capture,
and a guard that fails any test whose code blocks the event loop. The hooks below mark the tests
that need a Redis server and check that a test starting a child process is marked with its kind
(tests/support/kinds.py)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.edge.http_server import service_runner
from appwrite_token_exchange.emulator import EmulatorConfig, create_emulator_app
from appwrite_token_exchange.observability.logs import configure_logging
from blockbuster import blockbuster_ctx

from tests.support.contract import contract_middleware
from tests.support.kinds import ChildProcessCheck, mark_tests
from tests.support.service import (
    JWT_SECRET,
    PROJECT,
    Emulator,
    LogLines,
    ServedFactory,
    ServiceFactory,
    service_settings,
)

CHILD_PROCESSES = pytest.StashKey[ChildProcessCheck]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[CHILD_PROCESSES] = ChildProcessCheck()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tests(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Setup, call and teardown of `item`, watched by the child-process check."""
    check = item.config.stash[CHILD_PROCESSES]
    check.current = item
    try:
        return (yield)
    finally:
        check.current = None


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[None]:
    """Any blocking call (file, socket, sleep) made from the event loop fails the test."""
    with blockbuster_ctx(["service", "tests"]) as blockbuster:
        # Settings read the cgroup's memory limit once, at start (a sysfs file, never on a request).
        for call in ("io.TextIOWrapper.read", "io.BufferedReader.read"):
            blockbuster.functions[call].can_block_in("appwrite_token_exchange/capacity.py", "container_memory_limit")
        yield


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


@pytest.fixture
def contract_failures() -> Iterator[list[str]]:
    """Every answer of the service in a test must match openapi.yaml (tests/support/contract.py)."""
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
    overrides (`prepare`: called with the app before it serves). Every answer it gives is checked
    against openapi.yaml."""

    async def start(
        upstream: Emulator | None = None, prepare: Callable[[web.Application], None] | None = None, **env: str
    ) -> TestClient[web.Request, web.Application]:
        app = create_app(service_settings(upstream or emulator, **env))
        if prepare is not None:
            prepare(app)
        # Outermost, so it sees the final answer exactly as a client does.
        app.middlewares.insert(0, contract_middleware(contract_failures))
        return await aiohttp_client(app)

    return start


@pytest.fixture
async def bounded(emulator: Emulator) -> AsyncIterator[ServedFactory]:
    """Start the service as `token-exchange serve` runs it, on a real socket (keyword arguments:
    environment; `outermost`: a middleware outside all of the app's own; `prepare`: called with the
    app before it is served); the port."""
    runners: list[web.AppRunner] = []

    async def start(outermost: Any = None, prepare: Callable[[web.Application], None] | None = None, **env: str) -> int:
        settings = service_settings(emulator, **env)
        app = create_app(settings)
        if outermost is not None:
            app.middlewares.insert(0, outermost)
        if prepare is not None:
            prepare(app)
        runner = service_runner(app, settings)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return site.port

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def service(service_factory: ServiceFactory) -> TestClient[web.Request, web.Application]:
    return await service_factory()


@pytest.fixture(autouse=True)
def logs() -> Iterator[LogLines]:
    stream = io.StringIO()
    configure_logging("debug", "json", stream, cache_loggers=False)
    yield LogLines(stream)


@pytest.fixture
async def session_cookie(emulator: Emulator) -> AsyncIterator[str]:
    yield emulator.signed_in_user()[2]
