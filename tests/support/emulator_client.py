"""What the emulator's own tests (tests/emulator/) drive it with: their project and keys, a clock
that moves only when told, and `Emu`, a client on a fresh emulator with helpers for its
routes. The fixtures that start one are in tests/emulator/conftest.py."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from appwrite_token_exchange.emulator import EMULATOR_STATE, EmulatorConfig, EmulatorState, EmulatorUser

PROJECT = "emu-project"
KEY = "emulator-test-instance-key-0123456789"
API_KEY = "emulator-test-api-key"


class FakeClock:
    """Unix time that only moves when told to; starts one second into an hour so that every
    fixed window (60 s, 3600 s) has just begun and no test straddles a boundary by accident."""

    def __init__(self) -> None:
        self.now = float(int(time.time()) // 3600 * 3600 + 1)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Emu:
    client: TestClient[web.Request, web.Application]
    app: web.Application
    clock: FakeClock

    @property
    def state(self) -> EmulatorState:
        return self.app[EMULATOR_STATE]

    @property
    def config(self) -> EmulatorConfig:
        return self.state.config

    def signed_in(self, email: str = "ada@example.com", **user: Any) -> tuple[EmulatorUser, str, str]:
        """A new user with a live session: (user, session id, cookie value)."""
        created = self.state.create_user(email, "password-123", **user)
        session_id, cookie = self.state.create_session(created.id)
        return created, session_id, cookie

    def headers(self, session: str | None = None, **extra: str) -> dict[str, str]:
        sent = {"X-Appwrite-Project": PROJECT}
        if session is not None:
            sent["X-Appwrite-Session"] = session
        sent.update({name.replace("_", "-"): value for name, value in extra.items()})
        return sent

    async def mint(self, session: str | None, body: Any = None, **extra: str) -> Any:
        return await self.client.post(
            "/v1/account/jwts", json={} if body is None else body, headers=self.headers(session, **extra)
        )

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.client.request(method, f"/_emulator{path}", **kwargs)


EmuFactory = Callable[..., Awaitable[Emu]]
