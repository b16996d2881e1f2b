"""The application factory: every route, middleware and long-lived resource of the service."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from appwrite_token_exchange.access.fingerprints import Fingerprinter
from appwrite_token_exchange.access.limits import AccessLimits
from appwrite_token_exchange.appwrite.client import AppwriteClient, create_http_session, create_relay_session
from appwrite_token_exchange.appwrite.guard import UpstreamGuard
from appwrite_token_exchange.appwrite.version import AppwriteVersion
from appwrite_token_exchange.edge.connection_limits import ConnectionLimits
from appwrite_token_exchange.edge.health import Readiness, livez
from appwrite_token_exchange.edge.middlewares import request_context, server_header
from appwrite_token_exchange.exchange import issue_token
from appwrite_token_exchange.keys import (
    ACCESS_LIMITS,
    APPWRITE,
    APPWRITE_VERSION,
    CONNECTION_LIMITS,
    FINGERPRINTER,
    HTTP,
    LIFECYCLE,
    LOGGED_ONCE,
    METRICS,
    READINESS_CHECKS,
    RELAY_BUDGET,
    RELAY_HTTP,
    RELAY_SLOTS,
    RELAY_URL_CHANNELS,
    RELAYS,
    REVOKER,
    SETTINGS,
    STATE,
    TRACING,
    UPSTREAM_GUARD,
)
from appwrite_token_exchange.lifecycle import Lifecycle
from appwrite_token_exchange.observability.log_once import LogOnce
from appwrite_token_exchange.observability.metrics import Metrics
from appwrite_token_exchange.observability.tracing import Tracer, create_tracing, tracing_middleware
from appwrite_token_exchange.paths import (
    INTERNAL_SESSION_SOCKETS_PATH,
    INTERNAL_USER_SOCKETS_PATH,
    RELAY_PATH,
    TOKEN_PATH,
    WEBHOOK_PATH,
)
from appwrite_token_exchange.relay.budget import ByteBudget
from appwrite_token_exchange.relay.event_rules import watch_rules
from appwrite_token_exchange.relay.handler import relay
from appwrite_token_exchange.relay.pump import SHUTDOWN_SPREAD_SECONDS, Relay
from appwrite_token_exchange.relay.slots import RelaySlots
from appwrite_token_exchange.relay.translate import UrlChannels
from appwrite_token_exchange.revocation.bus import RevocationBus
from appwrite_token_exchange.revocation.revoker import Revoker
from appwrite_token_exchange.revocation.routes import appwrite_webhook, revoke_session, revoke_user
from appwrite_token_exchange.settings import Settings
from appwrite_token_exchange.state.redis_store import RedisState
from appwrite_token_exchange.state.redis_url import RedisConfig, parse_redis_url
from appwrite_token_exchange.state.store import State, StateConfigError, check_redis, close_client, redis_client_for

# The exchange takes no body; anything bigger than a small JSON object is refused with 413.
# (What a request's header lines may cost is bounded below the app: edge/http_server.py.)
MAX_BODY_BYTES = 1024


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    metrics.set_relay_limit(settings.relay_max_sockets)
    tracing = create_tracing(settings.tracing)
    # The route's span sits outside request_context, so it ends with the answer's final status.
    spans = [tracing_middleware(tracing, frozenset({RELAY_PATH}))] if tracing.enabled else []
    app = web.Application(
        middlewares=[metrics.middleware(), *spans, request_context], client_max_size=MAX_BODY_BYTES
    )
    app[SETTINGS] = settings
    app[TRACING] = tracing
    app[METRICS] = metrics
    app[LIFECYCLE] = Lifecycle()
    # Without a shared deployment key, a per-process random one still keeps fingerprints keyed.
    app[FINGERPRINTER] = Fingerprinter(settings.state_hash_key or secrets.token_bytes(32))
    app[UPSTREAM_GUARD] = UpstreamGuard(
        settings.upstream_max_concurrency,
        settings.circuit_failure_threshold,
        settings.circuit_cooldown_seconds,
        on_state_change=metrics.set_circuit,
    )
    app[READINESS_CHECKS] = {
        "circuit": app[UPSTREAM_GUARD].readiness,
        "relay": lambda: _relay_capacity(app),
        "edge": lambda: _edge_capacity(app),
    }
    edge = app[CONNECTION_LIMITS] = ConnectionLimits.from_settings(settings)
    edge.on_refused = metrics.edge_refused
    metrics.watch_edge(lambda: edge.connections, settings.max_connections,
                       lambda: edge.request_bytes, settings.max_request_bytes_in_flight)
    app[RELAYS] = set()
    app[LIFECYCLE].on_drain.append(lambda: _close_relays(app))
    relays: set[Relay] = app[RELAYS]
    app[REVOKER] = Revoker(relays, metrics, lambda fingerprint: app[ACCESS_LIMITS].revoked(fingerprint))
    app[RELAY_SLOTS] = RelaySlots.from_settings(settings)
    app[RELAY_BUDGET] = ByteBudget(settings.relay_max_bytes_in_flight)
    app[APPWRITE_VERSION] = AppwriteVersion(settings.appwrite_endpoint)
    app[RELAY_URL_CHANNELS] = UrlChannels(settings, app[APPWRITE_VERSION])
    app[LOGGED_ONCE] = LogOnce()
    app.cleanup_ctx.append(watch_rules)  # before anything opens: a bad rules file stops the start
    # Tracing first, so it is flushed last. State next: when REDIS_URL is unusable at boot it
    # refuses to start before anything is open.
    app.cleanup_ctx.append(_tracing)
    app.cleanup_ctx.append(_state)
    app.cleanup_ctx.append(_http_client)
    app.on_response_prepare.append(server_header)
    app.on_startup.append(_announce)
    app.on_shutdown.append(_start_drain)
    app.router.add_post(TOKEN_PATH, issue_token)
    app.router.add_get(RELAY_PATH, relay, allow_head=False)
    if settings.webhook_signature_keys:
        app.router.add_post(WEBHOOK_PATH, appwrite_webhook)
    if settings.revocation_secrets:
        app.router.add_delete(INTERNAL_USER_SOCKETS_PATH, revoke_user)
        app.router.add_delete(INTERNAL_SESSION_SOCKETS_PATH, revoke_session)
    app.router.add_get("/livez", livez, allow_head=True)
    app.router.add_get("/readyz", Readiness().handle, allow_head=True)
    app.router.add_get("/metrics", metrics.handler)
    return app


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with create_http_session(settings) as http, create_relay_session(settings) as relay_http:
        app[HTTP] = http
        app[RELAY_HTTP] = relay_http
        app[APPWRITE] = AppwriteClient(http, settings, tracing=app[TRACING])
        yield


async def _tracing(app: web.Application) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await app[TRACING].shutdown()  # sends what is still queued


async def _state(app: web.Application) -> AsyncIterator[None]:
    settings, metrics = app[SETTINGS], app[METRICS]
    config = parse_redis_url(settings.redis_url) if settings.redis_url else None
    client = redis_client_for(config) if config else None
    redis_state = _redis_state(client, config, app[TRACING]) if client and config else None
    state = State(
        redis_state,
        on_fallback_change=metrics.set_fallback,
        max_entries=settings.memory_state_max_entries,
        kind=config.kind if config else "redis",
        on_error=metrics.state_error,
    )
    if client is not None and redis_state is not None and config is not None:
        try:
            # Configured and unusable at boot (wrong topology, credentials, unreachable): refuse to
            # start rather than run with per-replica limits nobody asked for.
            await check_redis(redis_state, config.kind)
        except StateConfigError as error:
            structlog.get_logger(logger_name="state").error("state.redis_unusable", cause=error.cause,
                                                            problem=str(error))
            await close_client(client)
            raise
    metrics.set_backend(state.backend)
    app[STATE] = state
    app[ACCESS_LIMITS] = AccessLimits(settings, state, metrics, app[FINGERPRINTER])
    app[READINESS_CHECKS]["state"] = state.readiness
    background = [asyncio.create_task(state.sweep_forever(), name="memory-state-sweep")]
    if client is not None:
        # Revocations reach every replica through the same Redis (revocation/bus.py).
        bus = app[REVOKER].bus = RevocationBus(client, app[REVOKER].deliver)
        app[READINESS_CHECKS]["revocation"] = bus.readiness
        background.append(asyncio.create_task(bus.listen_forever(), name="revocation-bus"))
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if client is not None:
            await close_client(client)


def _redis_state(client: object, config: RedisConfig, tracing: Tracer) -> RedisState:
    if tracing.enabled:
        from appwrite_token_exchange.state.traced_redis import TracedRedisState

        return TracedRedisState(client, config, tracing)
    return RedisState(client, cluster=config.kind == "redis-cluster")


async def _announce(app: web.Application) -> None:
    """One line that says what this process serves; no secret is part of it."""
    settings = app[SETTINGS]
    structlog.get_logger(logger_name="service").info(
        "service.started",
        appwrite_endpoint=settings.appwrite_endpoint,
        project_id=settings.project_id,
        token_ttl_seconds=settings.token_ttl_seconds,
        state_backend=app[STATE].backend,
        allowed_origins=sorted(settings.allowed_origins),
        jwt_signature_checked=bool(settings.appwrite_jwt_secrets),
        # Which sign-out routes serve (README, "Sign-out at once"); never their keys.
        revocation={"webhook": bool(settings.webhook_signature_keys), "kick": bool(settings.revocation_secrets)},
        tracing="on" if settings.tracing else "off",
        relay_capacity=settings.capacity.to_json() if settings.capacity else None,
        edge_capacity=settings.capacity.edge.to_json() if settings.capacity else None,
    )


def _close_relays(app: web.Application) -> None:
    relays: set[Relay] = app[RELAYS]
    for relayed in list(relays):
        relayed.stop_within(SHUTDOWN_SPREAD_SECONDS)


def _relay_capacity(app: web.Application) -> dict[str, object]:
    """What the relay holds against what it may (RELAY_MAX_SOCKETS, RELAY_MAX_BYTES_IN_FLIGHT)."""
    capacity = app[SETTINGS].capacity
    return {
        "status": "ok",
        "sockets": app[RELAY_SLOTS].open,
        "bytesInFlight": app[RELAY_BUDGET].used,
        **(capacity.to_json() if capacity else {}),
    }


def _edge_capacity(app: web.Application) -> dict[str, object]:
    """What the crowd at the edge holds against what it may (MAX_CONNECTIONS, MAX_REQUEST_BYTES_IN_FLIGHT)."""
    edge, capacity = app[CONNECTION_LIMITS], app[SETTINGS].capacity
    return {
        "status": "ok",
        "connections": edge.connections,
        "requestBytesInFlight": edge.request_bytes,
        **(capacity.edge.to_json() if capacity else {}),
    }


async def _start_drain(app: web.Application) -> None:
    log = structlog.get_logger(logger_name="service")
    log.info("service.draining", timeout_seconds=app[SETTINGS].drain_timeout_seconds)
    app[LIFECYCLE].start_drain()
