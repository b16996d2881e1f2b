"""The Appwrite emulator in a lean mode, for load: the same routes, handlers and checks (so the same
answers and tokens), without the test-only request recorder, fault injection and access log.

    python -m bench.lean_emulator --port P      (EMULATOR_* variables as for `token-exchange emulator`)

--max-body-bytes raises aiohttp's own cap on request bodies (1 MiB), which Appwrite does not share:
the relay benchmark publishes events of several MiB through the control API. --tls-port (with
--certfile and --keyfile) serves the same emulator over HTTPS as well: the service's upstream is
then wss://, as Appwrite Cloud's is, while the benchmark's own calls stay on --port.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl

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


async def serve_plain_and_tls(app: web.Application, host: str, port: int, tls_port: int, tls: ssl.SSLContext) -> None:
    """One app (so one emulator state) on two ports: web.run_app takes one SSL context for all of its sites."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await web.TCPSite(runner, host, tls_port, ssl_context=tls).start()
        await asyncio.Event().wait()  # until SIGTERM ends the process
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--tls-port", type=int, help="also serve HTTPS here (with --certfile and --keyfile)")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    app = create_lean_app(EmulatorConfig.from_env(), args.max_body_bytes)
    if args.tls_port is None:
        web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
        return
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.certfile, args.keyfile)
    asyncio.run(serve_plain_and_tls(app, args.host, args.port, args.tls_port, tls))


if __name__ == "__main__":
    main()
