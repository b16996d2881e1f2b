"""The Appwrite emulator in a lean mode, for load: the same routes, handlers and checks (so the same
answers and tokens), without the test-only request recorder, fault injection and access log.

    python -m bench.lean_emulator --port P      (EMULATOR_* variables as for `token-exchange emulator`)

--max-body-bytes raises aiohttp's own cap on request bodies (1 MiB), which Appwrite does not share:
the relay benchmark publishes events of several MiB through the control API.
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

DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # aiohttp's own default


def create_lean_app(config: EmulatorConfig, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> web.Application:
    full = create_emulator_app(config)
    app = web.Application(middlewares=[appwrite_errors, require_project], client_max_size=max_body_bytes)
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
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    args = parser.parse_args()
    web.run_app(
        create_lean_app(EmulatorConfig.from_env(), args.max_body_bytes), host=args.host, port=args.port,
        access_log=None, print=None,
    )


if __name__ == "__main__":
    main()
