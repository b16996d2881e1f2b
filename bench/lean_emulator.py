"""The Appwrite emulator in a lean mode, for load: the same routes, handlers and checks (so the same
answers and tokens), without the test-only request recorder, fault injection and access log.

    python -m bench.lean_emulator --port P      (EMULATOR_* variables as for `token-exchange emulator`)
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web
from appwrite_token_exchange.emulator import account, control
from appwrite_token_exchange.emulator.app import appwrite_errors, create_emulator_app, require_project
from appwrite_token_exchange.emulator.config import EmulatorConfig
from appwrite_token_exchange.emulator.keys import (
    EMULATOR_CONFIG,
    EMULATOR_STATE,
    FAULTS,
    REALTIME,
    RECORDER,
    SHUTTING_DOWN,
)
from appwrite_token_exchange.emulator.realtime.handler import realtime


def create_lean_app(config: EmulatorConfig) -> web.Application:
    full = create_emulator_app(config)
    app = web.Application(middlewares=[appwrite_errors, require_project])
    # The control API still works (users, sessions, publish); it reads these from the app.
    app[EMULATOR_CONFIG] = full[EMULATOR_CONFIG]
    app[EMULATOR_STATE] = full[EMULATOR_STATE]
    app[FAULTS] = full[FAULTS]
    app[RECORDER] = full[RECORDER]
    app[REALTIME] = full[REALTIME]
    app[SHUTTING_DOWN] = asyncio.Event()
    app.add_routes(account.routes)
    app.add_routes(control.routes)
    app.router.add_get("/v1/realtime", realtime)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(create_lean_app(EmulatorConfig.from_env()), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
