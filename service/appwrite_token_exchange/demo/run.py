"""`token-exchange demo`: the emulator with a demo user, plus the service and a demo page in front of it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.demo.site import DemoSite, setup_demo
from appwrite_token_exchange.edge.http_server import service_runner
from appwrite_token_exchange.emulator import EMULATOR_STATE, EmulatorConfig, create_emulator_app
from appwrite_token_exchange.emulator.keys import REALTIME
from appwrite_token_exchange.settings import Settings

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - a local demo user of a local emulator
# What the relay withholds from the demo's public events (one redacted field), unless
# RELAY_EVENT_RULES_FILE names another file.
DEMO_EVENT_RULES = Path(__file__).with_name("static") / "event-rules.json"
# Service settings the demo takes from the environment (the rest it sets itself), so a person or a
# test can see short tokens, quick relay re-checks or a channel allowlist at work.
TUNABLE_SETTINGS = (
    "TOKEN_TTL_SECONDS",
    "RELAY_REVALIDATE_SECONDS",
    "RELAY_CHANNELS_ALLOW",
    "RELAY_EVENT_RULES_FILE",
    "RELAY_MAX_SOCKETS",
    "RATE_LIMIT_IP",
    "RATE_LIMIT_SESSION",
    "RATE_LIMIT_USER",
    "INVALID_SESSION_CACHE_SECONDS",
    "UPSTREAM_TIMEOUT_SECONDS",
    "DRAIN_TIMEOUT_SECONDS",
    # The webhook route, for a contract run that reaches it (tools/contract/schemathesis.sh).
    "APPWRITE_WEBHOOK_SIGNATURE_KEY",
    "APPWRITE_WEBHOOK_URL",
)
PUBLISH_VARIABLE = "DEMO_PUBLISH_SECONDS"
# With --site-only the demo plays the app and Appwrite of a real deployment, and the service runs
# on its own (`token-exchange serve`) behind the same proxy; these say where the browser finds each.
SITE_VARIABLES = {
    "DEMO_PUBLIC_ORIGIN": "public_origin",
    "DEMO_APPWRITE_PUBLIC_ENDPOINT": "browser_appwrite_endpoint",
    "DEMO_TOKEN_URL": "token_url",
    "DEMO_RELAY_ENDPOINT": "relay_endpoint",
    "DEMO_COOKIE_DOMAIN": "cookie_domain",
}


def demo_settings(host: str, port: int, emulator_port: int, config: EmulatorConfig, env: Mapping[str, str],
                  revocation_secret: str = "") -> Settings:
    tuned = {name: env[name] for name in TUNABLE_SETTINGS if env.get(name)}
    return Settings.from_env(
        {
            "RELAY_EVENT_RULES_FILE": str(DEMO_EVENT_RULES),
            **tuned,
            # The demo site's "Sign out everywhere" calls the service's internal kick with it.
            "REVOCATION_SECRET": revocation_secret,
            "APPWRITE_ENDPOINT": f"http://{host}:{emulator_port}/v1",
            "APPWRITE_PROJECT_ID": config.project_id,
            "APPWRITE_JWT_SECRET": config.jwt_secret,
            # The demo page's own origins, and any the user adds (an app whose dev proxy
            # rewrites Host, like Next.js's, reaches the service cross-origin).
            "ALLOWED_ORIGINS": ",".join(filter(None, (f"http://{host}:{port},http://localhost:{port}",
                                                       env.get("ALLOWED_ORIGINS", "").strip()))),
        }
    )


def site_overrides(env: Mapping[str, str]) -> dict[str, str]:
    """DemoSite fields from SITE_VARIABLES; ValueError names a variable that is not what it must be."""
    overrides = {}
    for variable, name in SITE_VARIABLES.items():
        value = env.get(variable, "").strip()
        if not value:
            continue
        if variable != "DEMO_COOKIE_DOMAIN" and not re.match(r"^(https?|wss?)://[^/?#]+(/[^?#]*)?$", value):
            raise ValueError(f"{variable}: {value!r} is not an absolute http(s) or ws(s) URL")
        overrides[name] = value.rstrip("/")
    return overrides


def register_demo_platforms(emulator: web.Application, host: str, public_origin: str | None) -> list[str]:
    """The page's hosts as Web platforms of the emulated project: where it is served, and
    (behind a proxy, DEMO_PUBLIC_ORIGIN) the host the browser sees."""
    hostnames = [host, "localhost"]
    if public_origin:
        hostnames.append(urlsplit(public_origin).hostname or "")
    platforms = emulator[REALTIME].platforms
    for hostname in filter(None, hostnames):
        platforms[hostname.lower()] = None
    return list(platforms)


async def run_demo(port: int, emulator_port: int, mode: str, *, site_only: bool = False) -> int:
    host = "127.0.0.1"
    env = os.environ
    config = EmulatorConfig(mode=mode)  # type: ignore[arg-type]
    emulator = create_emulator_app(config)
    state = emulator[EMULATOR_STATE]
    user = state.create_user(DEMO_EMAIL, DEMO_PASSWORD, name="Demo User")
    _, cookie_value = state.create_session(user.id)

    try:
        # The internal kick's secret: the environment's, else one for this run.
        revocation_secret = "" if site_only else env.get("REVOCATION_SECRET") or secrets.token_urlsafe(24)
        settings = demo_settings(host, port, emulator_port, config, env, revocation_secret)
        publish_seconds = float(env.get(PUBLISH_VARIABLE) or 2.0)
        overrides = site_overrides(env)
    except ValueError as error:  # SettingsError names the variable; float() names the bad value
        sys.stderr.write(f"token-exchange demo: configuration error: {error}\n")
        return 2
    # Appwrite refuses a Realtime handshake from an origin that is not one of the project's Web
    # platforms; the page opens Realtime itself on the JWT route, so its hosts are registered.
    register_demo_platforms(emulator, host, overrides.get("public_origin"))
    # The page alone, or the page on the service's own origin (the default, one process for all).
    service = web.Application() if site_only else create_app(settings)
    setup_demo(
        service,
        DemoSite(
            appwrite_endpoint=settings.appwrite_endpoint,
            project_id=config.project_id,
            api_key=config.api_key,
            cookie_name=settings.session_cookie_name,
            mode=mode,
            user_id=user.id,
            email=DEMO_EMAIL,
            password=DEMO_PASSWORD,
            token_ttl_seconds=settings.token_ttl_seconds,
            relay_revalidate_seconds=settings.relay_revalidate_seconds,
            relay_channels_allow=settings.relay_channels_allow,
            publish_interval_seconds=publish_seconds,
            revocation_url=None if site_only else f"http://{host}:{port}",
            revocation_secret=revocation_secret or None,
            **overrides,
        ),
    )
    # The service (and with --site-only the page alone) is served as `token-exchange serve` serves it.
    runners = [web.AppRunner(emulator, access_log=None), service_runner(service, settings)]
    for runner in runners:
        await runner.setup()
    await web.TCPSite(runners[0], host, emulator_port).start()
    await web.TCPSite(runners[1], host, port).start()

    if site_only:
        sys.stdout.write(
            f"Appwrite emulator ({mode}) on http://{host}:{emulator_port}/v1, the demo app on http://{host}:{port}\n"
            f"(no token service in this process: run `token-exchange serve` beside it).\nPress Ctrl+C to stop.\n"
        )
    else:
        _print_try_it(host, port, emulator_port, mode, settings, cookie_value)
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


def _print_try_it(host: str, port: int, emulator_port: int, mode: str, settings: Settings, cookie_value: str) -> None:
    url = f"http://{host}:{port}/v1/realtime/token"
    cookie = f"{settings.session_cookie_name}={cookie_value}"
    sys.stdout.write(
        f"""
Appwrite emulator ({mode}) on http://{host}:{emulator_port}/v1, token service on http://{host}:{port}
Demo user {DEMO_EMAIL} / {DEMO_PASSWORD} is signed in; its session cookie is below.

In a browser: http://{host}:{port}/ (sign in, watch live events; add ?via=relay for the relay)

200, a fresh short-lived JWT:
  curl -i -X POST {url} -H 'X-CSRF: 1' --cookie '{cookie}'

401 session_missing (no cookie):
  curl -i -X POST {url} -H 'X-CSRF: 1'

403 csrf_header_missing (no X-CSRF header):
  curl -i -X POST {url} --cookie '{cookie}'

Press Ctrl+C to stop.
"""
    )
