"""Command line: `token-exchange serve | check-config | demo | emulator`, and `--version`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine, Iterator
from importlib import metadata
from typing import Any, TypeVar

from aiohttp import web

from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.edge.http_server import serve
from appwrite_token_exchange.observability.logs import AccessLogger, configure_logging
from appwrite_token_exchange.process_memory import return_large_buffers
from appwrite_token_exchange.settings import Settings, SettingsError

T = TypeVar("T")
DISTRIBUTION = "appwrite-token-exchange"


def version() -> str:
    """The installed distribution's version; the package's own only when it is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        from appwrite_token_exchange import __version__

        return __version__


class _EmulatorModes:
    """The choices of `demo --mode`, imported from the emulator only when argparse checks a given
    --mode or prints the help, so that the other commands never import the emulator."""

    def __contains__(self, mode: object) -> bool:
        return mode in self._modes()

    def __iter__(self) -> Iterator[str]:
        return iter(self._modes())

    @staticmethod
    def _modes() -> tuple[str, ...]:
        from appwrite_token_exchange.emulator.config import MODES

        return MODES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="token-exchange", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service, configured from the environment")
    check = commands.add_parser(
        "check-config",
        help="check the environment serve would read, and Appwrite and Redis, without serving "
        "(exit 0 all passed, 1 a check failed, 2 invalid settings)",
        description="Reads the environment exactly as serve does and checks what can be checked without "
        "serving: the settings, Redis (REDIS_URL), Appwrite's version and the project, and, given a session in "
        "CHECK_SESSION (or CHECK_SESSION_FILE), a minted token against APPWRITE_JWT_SECRET. Exit codes: 0 every "
        "check passed or was skipped; 1 a dependency is unreachable or a check failed; 2 the settings are "
        "invalid (as serve). No secret is printed.",
    )
    check.add_argument("--json", action="store_true", help="print the report as one JSON document")
    demo = commands.add_parser("demo", help="run the emulator with a demo user plus the service")
    demo.add_argument("--port", type=int, default=8080, help="the service's port (default 8080)")
    demo.add_argument("--emulator-port", type=int, default=8081, help="the emulator's port (default 8081)")
    mode = demo.add_argument("--mode", default="cloud", help="Appwrite to emulate (emulator README)")
    # Set after add_argument, which formats the choices (and so would import them) at once.
    mode.choices = _EmulatorModes()
    demo.add_argument(
        "--site-only",
        action="store_true",
        help="only the emulator and the demo app; run `token-exchange serve` beside it (DEMO_* variables: see README)",
    )
    emulator = commands.add_parser("emulator", help="run the Appwrite emulator alone")
    emulator.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=8081)
    emulator.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than localhost or a loopback address: anyone who reaches the port can then use "
        "the control API (/_emulator/: create users, read recorded session headers, inject faults)",
    )
    args = parser.parse_args(argv)

    if args.command == "serve":
        return _serve()
    if args.command == "check-config":
        return _check_config(as_json=args.json)
    if args.command == "demo":
        from appwrite_token_exchange.demo.run import run_demo

        configure_logging(os.environ.get("LOG_LEVEL", "warning"), os.environ.get("LOG_FORMAT", "console"))
        return asyncio.run(run_demo(args.port, args.emulator_port, args.mode, site_only=args.site_only))
    return _emulator(args.host, args.port, allow_remote=args.allow_remote)


def _serve() -> int:
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        return _configuration_error(error)
    configure_logging(settings.log_level, settings.log_format)
    return_large_buffers()
    # Not web.run_app: its runner cannot take the bounded HTTP protocol (edge/http_server.py).
    try:
        _run(serve(create_app(settings), settings))
    except SettingsError as error:
        # Found at start: REDIS_URL names a Redis that is unusable (state/store.py).
        return _configuration_error(error)
    return 0


def _configuration_error(error: SettingsError) -> int:
    sys.stderr.write(f"token-exchange: configuration error: {error}\n")
    return 2


def _check_config(as_json: bool) -> int:
    from appwrite_token_exchange import check_config

    try:
        # Files (the *_FILE secrets) are read here, before the event loop runs, as serve reads them.
        settings = Settings.from_env(os.environ)
        session = check_config.check_session(os.environ)
        rules = check_config.check_event_rules(settings)
    except SettingsError as error:
        if as_json:
            sys.stdout.write(check_config.render_settings_error_json(error, version()))
        return _configuration_error(error)
    # The report says what the service's log lines would (an Appwrite misconfiguration, say): none
    # of them is printed beside it.
    configure_logging("critical", "console", sys.stderr)
    report = _run(check_config.run_checks(settings, session, rules))
    render = check_config.render_json if as_json else check_config.render_text
    sys.stdout.write(render(report, version()))
    return report.exit_code


def _run(main: Coroutine[Any, Any, T]) -> T:
    """On uvloop where it is installed (a dependency everywhere but Windows): the same asyncio API,
    with less of the loop's own CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _emulator(host: str, port: int, *, allow_remote: bool) -> int:
    from appwrite_token_exchange.emulator import EmulatorConfig, create_emulator_app
    from appwrite_token_exchange.emulator.guard import is_loopback_host

    try:
        config = EmulatorConfig.from_env()
    except ValueError as error:
        sys.stderr.write(f"token-exchange emulator: configuration error: {error}\n")
        return 2
    if not is_loopback_host(host):
        # The control API has no credential: binding beyond this machine hands the emulated
        # project, and every session header it recorded, to the network.
        if not allow_remote:
            sys.stderr.write(
                f"token-exchange emulator: --host {host} is not a loopback address; anyone who can reach it could "
                "use the control API (/_emulator/). Pass --allow-remote to bind it anyway.\n"
            )
            return 2
        sys.stderr.write(
            f"token-exchange emulator: warning: listening on {host}: the control API (/_emulator/) answers anyone "
            "who reaches this port with Host localhost, a loopback address or a name in EMULATOR_CONTROL_HOSTS.\n"
        )
    configure_logging(os.environ.get("LOG_LEVEL", "info"), os.environ.get("LOG_FORMAT", "console"))
    web.run_app(create_emulator_app(config), host=host, port=port, access_log_class=AccessLogger)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
