"""`token-exchange demo`: the emulator with a demo user, plus the service in front of it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from aiohttp import web

from service.app import create_app
from service.emulator import EMULATOR_STATE, EmulatorConfig, create_emulator_app
from service.log_config import AccessLogger
from service.settings import Settings

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - a local demo user of a local emulator


async def run_demo(port: int, emulator_port: int, mode: str) -> int:
    host = "127.0.0.1"
    config = EmulatorConfig(mode=mode)  # type: ignore[arg-type]
    emulator = create_emulator_app(config)
    state = emulator[EMULATOR_STATE]
    user = state.create_user(DEMO_EMAIL, DEMO_PASSWORD, name="Demo User")
    _, cookie_value = state.create_session(user.id)

    settings = Settings.from_env(
        {
            "APPWRITE_ENDPOINT": f"http://{host}:{emulator_port}/v1",
            "APPWRITE_PROJECT_ID": config.project_id,
            "APPWRITE_JWT_SECRET": config.jwt_secret,
            "ALLOWED_ORIGINS": f"http://{host}:{port},http://localhost:{port}",
        }
    )
    runners = [
        web.AppRunner(emulator, access_log=None),
        web.AppRunner(create_app(settings), access_log_class=AccessLogger),
    ]
    for runner in runners:
        await runner.setup()
    await web.TCPSite(runners[0], host, emulator_port).start()
    await web.TCPSite(runners[1], host, port, shutdown_timeout=settings.drain_timeout_seconds).start()

    url = f"http://{host}:{port}/v1/realtime/token"
    cookie = f"{settings.session_cookie_name}={cookie_value}"
    sys.stdout.write(
        f"""
Appwrite emulator ({mode}) on http://{host}:{emulator_port}/v1, token service on http://{host}:{port}
Demo user {DEMO_EMAIL} / {DEMO_PASSWORD} is signed in; its session cookie is below.

200, a fresh short-lived JWT:
  curl -i -X POST {url} -H 'X-CSRF: 1' --cookie '{cookie}'

401 session_missing (no cookie):
  curl -i -X POST {url} -H 'X-CSRF: 1'

403 csrf_header_missing (no X-CSRF header):
  curl -i -X POST {url} --cookie '{cookie}'

Press Ctrl+C to stop.
"""
    )
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for runner in reversed(runners):
        with contextlib.suppress(Exception):
            await runner.cleanup()
    return 0
