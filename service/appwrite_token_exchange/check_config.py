"""The pre-flight check (`token-exchange check-config`): with the environment `serve` would read,
say what the service would do and whether what it depends on answers, without serving anything.

Every check goes through the code `serve` runs: the settings parser, the Redis start-up check
(state/store.py), the readiness probe of Appwrite's version, the version rule of the relay
(relay/translate.py) and, given a session to mint with, the exchange's own Appwrite call
with its signature check. No secret (session, token, instance key, Redis password, state key)
is ever part of the report: every detail is one of those modules' fixed texts or a setting that
is not secret.

Exit codes (the command line's): 0 everything checked passed (a skipped check passes);
1 a dependency is unreachable or a check failed; 2 the settings are invalid (the message and
code `serve` gives).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

from appwrite_token_exchange.access.session_cookie import decode_session_value, framework_decode
from appwrite_token_exchange.appwrite.claims import SignatureMismatch, read_claims
from appwrite_token_exchange.appwrite.client import (
    JWT_SECRET_MISMATCH,
    PROJECT_NOT_FOUND,
    AppwriteClient,
    UpstreamError,
    create_http_session,
    misconfiguration_details,
    probe_version,
    project_level_cause,
    read_capped,
)
from appwrite_token_exchange.env import EnvReader
from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.relay.event_rules import Rules, read_rules
from appwrite_token_exchange.relay.translate import needs_channels_in_url
from appwrite_token_exchange.settings import Settings, SettingsError
from appwrite_token_exchange.state.redis_store import RedisState
from appwrite_token_exchange.state.redis_url import RedisConfig, parse_redis_url
from appwrite_token_exchange.state.store import StateConfigError, check_redis, close_client, redis_client_for

# The session the check may mint a token with (a cookie value, as the browser sends it), or the
# file that holds it. Only for this command: `serve` never reads it.
CHECK_SESSION = "CHECK_SESSION"
# Redis' own socket timeouts (state/store.py) bound each call; this bounds the whole check,
# however many sentinels or cluster nodes REDIS_URL lists.
REDIS_CHECK_SECONDS = 10.0

Status = Literal["ok", "failed", "skipped"]
_NO_SESSION = "not checked: no session to mint a token with"
_PERIODS = {1: "second", 60: "minute", 3600: "hour"}


@dataclass(frozen=True)
class Outcome:
    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Report:
    """What serve would do (label, text), and each check's outcome, in order."""

    facts: tuple[tuple[str, str], ...]
    outcomes: tuple[Outcome, ...]

    @property
    def exit_code(self) -> int:
        return 1 if any(outcome.status == "failed" for outcome in self.outcomes) else 0


def check_session(env: Mapping[str, str]) -> str | None:
    """CHECK_SESSION, or the file CHECK_SESSION_FILE names, read as serve reads its secrets (before
    the event loop runs). Raises SettingsError naming the variable, never quoting the value."""
    return EnvReader(env).secret(CHECK_SESSION)


def check_event_rules(settings: Settings) -> Rules | None:
    """The rules of RELAY_EVENT_RULES_FILE, read and checked as serve reads them at start (before
    the event loop runs); None when it is not set. Raises SettingsError with serve's message: a
    file serve would refuse to start with is a configuration error here too."""
    return read_rules(settings.relay_event_rules_file) if settings.relay_event_rules_file else None


async def run_checks(settings: Settings, session: str | None, rules: Rules | None = None) -> Report:
    """Appwrite and Redis are checked at once; each call is bounded by the configured timeouts."""
    (appwrite, version), redis = await asyncio.gather(_check_appwrite(settings, session), _check_redis(settings))
    settings_ok = Outcome("settings", "ok", "valid (read from the environment as serve reads it)")
    return Report(_facts(settings, version, rules), (settings_ok, redis, *appwrite))


async def _check_appwrite(settings: Settings, session: str | None) -> tuple[list[Outcome], str | None]:
    endpoint, timeout = settings.appwrite_endpoint, settings.upstream_timeout_seconds
    # The service's own client session: its project header, its timeout, no cookie jar.
    async with create_http_session(settings) as http:
        version = await probe_version(http, endpoint, timeout)
        if version is None:
            unreachable = "not checked: Appwrite did not answer"
            return [
                Outcome("appwrite", "failed", f"no version from {endpoint}/health/version within {timeout:g} s "
                        "(UPSTREAM_TIMEOUT_SECONDS): unreachable, too slow, or not an Appwrite endpoint"),
                Outcome("project", "skipped", unreachable),
                Outcome("token mint", "skipped", unreachable),
                Outcome("jwt secret", "skipped", unreachable),
            ], None
        reachable = Outcome("appwrite", "ok", f"Appwrite {version} answers at {endpoint}")
        project = await _check_project(http, settings)
        if project.status == "failed":
            unusable = "not checked: the project is not usable"
            minting = [Outcome("token mint", "skipped", unusable), Outcome("jwt secret", "skipped", unusable)]
        else:
            minting = await _check_mint(http, settings, session)
        return [reachable, project, *minting], version


async def _check_project(http: aiohttp.ClientSession, settings: Settings) -> Outcome:
    """Appwrite answers every API route naming an unknown project in X-Appwrite-Project with 404
    `project_not_found` before anything else (app/controllers/shared/api.php), the public version
    route included: a 200 there proves the project exists, without a session."""
    project = settings.project_id
    try:
        async with asyncio.timeout(settings.upstream_timeout_seconds):
            async with http.get(f"{settings.appwrite_endpoint}/health/version", allow_redirects=False) as response:
                status, raw = response.status, await read_capped(response)
    except (TimeoutError, aiohttp.ClientError, OSError):
        return Outcome("project", "failed", "Appwrite did not answer when asked with the project's id")
    if status == 200:
        return Outcome("project", "ok", f"'{project}' is a project on this Appwrite")
    if raw is not None and project_level_cause(status, raw) == PROJECT_NOT_FOUND:
        return Outcome("project", "failed", misconfiguration_details(settings)[PROJECT_NOT_FOUND])
    return Outcome("project", "failed", f"Appwrite answered {status} when asked with the project '{project}'")


async def _check_mint(http: aiohttp.ClientSession, settings: Settings, session: str | None) -> list[Outcome]:
    """A token minted exactly as the exchange mints one (appwrite/client.py), its signature
    checked with APPWRITE_JWT_SECRET there as on every exchange."""
    keys = settings.appwrite_jwt_secrets
    if session is None:
        return [Outcome("token mint", "skipped", f"{_NO_SESSION} (set {CHECK_SESSION} or {CHECK_SESSION}_FILE)"),
                Outcome("jwt secret", "skipped", _NO_SESSION)]
    # Read as the exchange reads the cookie (access/session_cookie.py): what Appwrite could not
    # decode is refused without asking it.
    decoded = framework_decode(session)
    readable = None if "\r" in decoded or "\n" in decoded else decode_session_value(decoded)
    if readable is None:
        return [Outcome("token mint", "failed", f"{CHECK_SESSION} is not a session value Appwrite could read "
                        "(a session cookie's value: base64 of {\"id\", \"secret\"})"),
                Outcome("jwt secret", "skipped", "not checked: no token was minted")]
    try:
        minted = await AppwriteClient(http, settings).create_jwt(readable.value)
    except UpstreamError as error:
        if error.cause == JWT_SECRET_MISMATCH:
            return [Outcome("token mint", "ok", "Appwrite minted a token for the session"),
                    Outcome("jwt secret", "failed", error.detail)]
        return [Outcome("token mint", "failed", f"Appwrite minted no token: {error.detail} ({error.code})"),
                Outcome("jwt secret", "skipped", "not checked: no token was minted")]
    lifetime = minted.claims.expires_in(time.time())
    mint = Outcome("token mint", "ok", f"Appwrite minted a token for the session, valid for {lifetime} s "
                   f"(TOKEN_TTL_SECONDS={settings.token_ttl_seconds})")
    if not keys:
        return [mint, Outcome("jwt secret", "skipped", "APPWRITE_JWT_SECRET is not set: serve checks no signature")]
    which = next((n for n, key in enumerate(keys, 1) if _verifies(minted.jwt, key)), 0)
    return [mint, Outcome("jwt secret", "ok", f"the token's signature verifies with key {which} of {len(keys)} "
                          "in APPWRITE_JWT_SECRET")]


def _verifies(token: str, key: str) -> bool:
    try:
        read_claims(token, key)
    except SignatureMismatch:
        return False
    return True


async def _check_redis(settings: Settings) -> Outcome:
    if settings.redis_url is None:
        return Outcome("redis", "skipped", "REDIS_URL is not set: limits and caches stay in each process's memory")
    config = parse_redis_url(settings.redis_url)
    client = redis_client_for(config)
    try:
        async with asyncio.timeout(REDIS_CHECK_SECONDS):
            # serve's start-up check: reachable, credentials, topology, scripts and cache.
            await check_redis(RedisState(client, cluster=config.kind == "redis-cluster"), config.kind)
    except StateConfigError as error:
        return Outcome("redis", "failed", f"{error} (serve refuses to start)")
    except TimeoutError:
        return Outcome("redis", "failed", f"REDIS_URL: Redis did not finish the check within {REDIS_CHECK_SECONDS:g} s "
                       "(serve refuses to start)")
    finally:
        await close_client(client)
    return Outcome("redis", "ok", f"{_describe_redis(config)}: answers, accepts the credentials, runs the scripts")


def _facts(settings: Settings, version: str | None, rules: Rules | None = None) -> tuple[tuple[str, str], ...]:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    origins = ", ".join(sorted(settings.allowed_origins)) or "none (same-origin pages only)"
    limits = ", ".join(
        f"{scope} {_rate(limit)}" for scope, limit in
        (("ip", settings.rate_limit_ip), ("session", settings.rate_limit_session), ("user", settings.rate_limit_user))
    )
    keys = len(settings.appwrite_jwt_secrets)
    signatures = f"checked with {keys} instance key(s)" if keys else "not checked (APPWRITE_JWT_SECRET unset)"
    state = _describe_redis(parse_redis_url(settings.redis_url)) if settings.redis_url else "memory (per process)"
    return (
        ("listen", f"{host}:{settings.port}"),
        ("appwrite", f"{settings.appwrite_endpoint}, project {settings.project_id}, "
                     f"version {version or 'unknown'}"),
        ("session cookie", settings.session_cookie_name),
        ("tokens", f"valid for {settings.token_ttl_seconds} s; cross-origin callers: {origins}"),
        ("jwt signatures", signatures),
        ("state", state),
        ("rate limits", limits),
        ("relay", _relay(settings, version)),
        ("event rules", f"{len(rules.rules)} rule(s) from {settings.relay_event_rules_file}, re-read when it changes"
                        if rules is not None else "none (RELAY_EVENT_RULES_FILE is not set): events pass unchanged"),
        ("tracing", _tracing(settings)),
    )


def _describe_redis(config: RedisConfig) -> str:
    """The topology and where; never the credentials."""
    where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in config.hosts) or "a unix socket"
    tls = " over TLS" if config.tls else ""
    if config.kind == "redis-sentinel":
        return f"redis-sentinel: master '{config.master_name}' db {config.db} via sentinels {where}{tls}"
    if config.kind == "redis-cluster":
        return f"redis-cluster: nodes {where}{tls}"
    return f"redis: {where} db {config.db}{tls}"


def _rate(limit: RateLimit | None) -> str:
    if limit is None:
        return "off"
    period = _PERIODS.get(limit.window_seconds)
    return f"{limit.limit}/{period}" if period else f"{limit.limit} per {limit.window_seconds} s"


def _relay(settings: Settings, version: str | None) -> str:
    """What relayed sockets do: the setting, or in `auto` the relay's version rule."""
    mode = settings.relay_channels_in_url
    if mode == "yes":
        return "puts the page's channels into the upstream URL (APPWRITE_REALTIME_CHANNELS_IN_URL=yes)"
    if mode == "no":
        return "passes the page's socket through unchanged (APPWRITE_REALTIME_CHANNELS_IN_URL=no)"
    if version is None:
        return "auto: Appwrite's version is unknown, so the relay would put channels into the upstream URL"
    if needs_channels_in_url(version):
        return f"auto: Appwrite {version} takes channels only in the URL, so the relay puts them there"
    return f"auto: Appwrite {version} reads subscribe frames, so sockets pass through unchanged"


def _tracing(settings: Settings) -> str:
    tracing = settings.tracing
    if tracing is None:
        return "off"
    # The endpoint without credentials or query: either could hold a key.
    parts = urlsplit(tracing.endpoint)
    where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    return f"on: OTLP/HTTP to {where}, sampler {tracing.sampler} (the collector is not checked)"


def render_text(report: Report, version: str) -> str:
    marks = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}
    failed = [outcome.name for outcome in report.outcomes if outcome.status == "failed"]
    lines = [f"token-exchange {version} check-config", "serve would:"]
    lines += [f"  {label:<15} {text}" for label, text in report.facts]
    lines.append("checks:")
    lines += [f"  {marks[o.status]:<8} {o.name:<11} {o.detail}" for o in report.outcomes]
    lines.append(f"result: FAILED ({', '.join(failed)})" if failed else "result: ok")
    return "\n".join(lines) + "\n"


def render_json(report: Report, version: str) -> str:
    return json.dumps({
        "version": version,
        "result": "failed" if report.exit_code else "ok",
        "exit_code": report.exit_code,
        "service": {label.replace(" ", "_"): text for label, text in report.facts},
        "checks": [{"name": o.name, "status": o.status, "detail": o.detail} for o in report.outcomes],
    }, indent=2) + "\n"


def render_settings_error_json(error: SettingsError, version: str) -> str:
    return json.dumps({
        "version": version,
        "result": "configuration_error",
        "exit_code": 2,
        "checks": [{"name": "settings", "status": "failed", "detail": str(error)}],
    }, indent=2) + "\n"
