"""Command line: `token-exchange serve | demo | emulator`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from service.app import create_app
from service.emulator.config import MODES
from service.http_server import serve
from service.log_config import AccessLogger, configure_logging
from service.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="token-exchange", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service, configured from the environment")
    demo = commands.add_parser("demo", help="run the emulator with a demo user plus the service")
    demo.add_argument("--port", type=int, default=8080, help="the service's port (default 8080)")
    demo.add_argument("--emulator-port", type=int, default=8081, help="the emulator's port (default 8081)")
    demo.add_argument("--mode", choices=MODES, default="cloud", help="Appwrite to emulate (emulator README)")
    demo.add_argument(
        "--site-only",
        action="store_true",
        help="only the emulator and the demo app; run `token-exchange serve` beside it (DEMO_* variables: see README)",
    )
    emulator = commands.add_parser("emulator", help="run the Appwrite emulator alone")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)

    if args.command == "serve":
        return _serve()
    if args.command == "demo":
        from service.demo import run_demo

        configure_logging(os.environ.get("LOG_LEVEL", "warning"), os.environ.get("LOG_FORMAT", "console"))
        return asyncio.run(run_demo(args.port, args.emulator_port, args.mode, site_only=args.site_only))
    return _emulator(args.host, args.port)


def _serve() -> int:
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        sys.stderr.write(f"token-exchange: configuration error: {error}\n")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    # Not web.run_app: its runner cannot take the bounded HTTP protocol (service/http_server.py).
    try:
        _run(serve(create_app(settings), settings))
    except SettingsError as error:
        # Found at start: REDIS_URL names a Redis that is unusable (service/state.py).
        sys.stderr.write(f"token-exchange: configuration error: {error}\n")
        return 2
    return 0


def _run(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop where it is installed (a dependency everywhere but Windows): the same asyncio API,
    with less of the loop's own CPU per request."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _emulator(host: str, port: int) -> int:
    from service.emulator import EmulatorConfig, create_emulator_app

    try:
        config = EmulatorConfig.from_env()
    except ValueError as error:
        sys.stderr.write(f"token-exchange emulator: configuration error: {error}\n")
        return 2
    configure_logging(os.environ.get("LOG_LEVEL", "info"), os.environ.get("LOG_FORMAT", "console"))
    web.run_app(create_emulator_app(config), host=host, port=port, access_log_class=AccessLogger)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
