"""Typed keys for application and request state, declared once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import aiohttp

    from appwrite_token_exchange.access.fingerprints import Fingerprinter
    from appwrite_token_exchange.access.limits import AccessLimits
    from appwrite_token_exchange.appwrite.client import AppwriteClient
    from appwrite_token_exchange.appwrite.guard import UpstreamGuard
    from appwrite_token_exchange.appwrite.version import AppwriteVersion
    from appwrite_token_exchange.edge.connection_limits import ConnectionLimits
    from appwrite_token_exchange.lifecycle import Lifecycle
    from appwrite_token_exchange.observability.log_once import LogOnce
    from appwrite_token_exchange.observability.metrics import Metrics
    from appwrite_token_exchange.observability.tracing import Tracer
    from appwrite_token_exchange.relay.budget import ByteBudget
    from appwrite_token_exchange.relay.event_rules import EventRules
    from appwrite_token_exchange.relay.pump import Relay
    from appwrite_token_exchange.relay.slots import RelaySlots
    from appwrite_token_exchange.relay.translate import UrlChannels
    from appwrite_token_exchange.revocation.revoker import Revoker
    from appwrite_token_exchange.settings import Settings
    from appwrite_token_exchange.state.store import State

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")
RELAY_HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("relay_http")
APPWRITE: web.AppKey[AppwriteClient] = web.AppKey("appwrite")
FINGERPRINTER: web.AppKey[Fingerprinter] = web.AppKey("fingerprinter")
LIFECYCLE: web.AppKey[Lifecycle] = web.AppKey("lifecycle")
TRACING: web.AppKey[Tracer] = web.AppKey("tracing")  # NO_TRACING when off

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
CLIENT_IP: web.RequestKey[str] = web.RequestKey("client_ip")
# The scheme the caller used, read with CLIENT_IP from the same trusted proxies.
CLIENT_SCHEME: web.RequestKey[str] = web.RequestKey("client_scheme")
# The relay handshake's span (an OpenTelemetry Span, None when not traced), for the socket's later
# session re-checks to link to.
HANDSHAKE_SPAN: web.RequestKey[object] = web.RequestKey("relay_handshake_span")

# Named readiness checks that other parts (state, circuit breaker) register; each returns a dict
# with a "status" of "ok" or something else, which makes /readyz say "degraded".
READINESS_CHECKS: web.AppKey[dict[str, Callable[[], dict[str, object]]]] = web.AppKey("readiness")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
STATE: web.AppKey[State] = web.AppKey("state")
ACCESS_LIMITS: web.AppKey[AccessLimits] = web.AppKey("access_limits")
UPSTREAM_GUARD: web.AppKey[UpstreamGuard] = web.AppKey("upstream_guard")
RELAYS: web.AppKey[set[Relay]] = web.AppKey("relays")
REVOKER: web.AppKey[Revoker] = web.AppKey("revoker")
# Relayed-socket slots: the process cap and each client IP's, session's and user's share.
RELAY_SLOTS: web.AppKey[RelaySlots] = web.AppKey("relay_slots")
RELAY_BUDGET: web.AppKey[ByteBudget] = web.AppKey("relay_budget")
# The event rules in force (RELAY_EVENT_RULES_FILE), read by each relayed event.
EVENT_RULES: web.AppKey[EventRules] = web.AppKey("event_rules")
# What the crowd at the edge holds against its caps (connections, requests in flight).
CONNECTION_LIMITS: web.AppKey[ConnectionLimits] = web.AppKey("connection_limits")
# Whether the relay puts a page's channels into the upstream URL (servers 1.8.x and 1.9.0).
RELAY_URL_CHANNELS: web.AppKey[UrlChannels] = web.AppKey("relay_url_channels")
APPWRITE_VERSION: web.AppKey[AppwriteVersion] = web.AppKey("appwrite_version")
# Configuration warnings already logged by this process (each is logged once, not per request).
LOGGED_ONCE: web.AppKey[LogOnce] = web.AppKey("logged_once")
