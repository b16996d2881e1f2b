"""Fixtures for the emulator's own tests: a client on a fresh emulator with a clock tests can move."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from appwrite_token_exchange.emulator import EmulatorConfig, create_emulator_app

from tests.support.emulator_client import API_KEY, KEY, PROJECT, Emu, EmuFactory, FakeClock


@pytest.fixture
async def emu_factory(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
) -> EmuFactory:
    async def start(**config: Any) -> Emu:
        config.setdefault("project_id", PROJECT)
        config.setdefault("jwt_secret", KEY)
        config.setdefault("api_key", API_KEY)
        clock = FakeClock()
        app = create_emulator_app(EmulatorConfig(**config), clock=clock)
        return Emu(await aiohttp_client(app), app, clock)

    return start


@pytest.fixture
async def emu(emu_factory: EmuFactory) -> Emu:
    return await emu_factory()
