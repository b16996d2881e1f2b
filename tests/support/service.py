"""The service under test and the emulator in front of which it runs: the project, JWT secret and
cookie name they share, the `Emulator` handle, the settings the service fixtures build the app
from, `exchange` (a token request as the browser helper sends it) and `LogLines` (what the
service logged). The fixtures that start them are in tests/conftest.py."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from appwrite_token_exchange.emulator import EMULATOR_STATE
from appwrite_token_exchange.settings import Settings

JWT_SECRET = "test-instance-key-0123456789abcdef"
PROJECT = "testproject"
COOKIE = f"a_session_{PROJECT}"


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
# Starts the service as `serve` runs it and gives its port (the `bounded` fixture).
ServedFactory = Callable[..., Awaitable[int]]


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
