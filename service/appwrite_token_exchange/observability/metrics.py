"""Prometheus metrics. Labels hold only fixed vocabularies: route templates, codes, scopes.

Every name carries one prefix, PREFIX, so that the service's series never collide with another's in a
shared Prometheus (deploy/k8s/components/monitoring and deploy/grafana read them by these names)."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PREFIX = "token_exchange"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """One registry per application, so tests and embedded apps never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r, ns = self.registry, PREFIX
        self.exchanges = Counter(
            "token_requests", "Token requests (POST /v1/realtime/token) by outcome code.", ["code"],
            namespace=ns, registry=r,
        )
        self.request_seconds = Histogram(
            "http_request_duration_seconds", "Request latency by route.", ["route", "method"],
            buckets=_LATENCY_BUCKETS, namespace=ns, registry=r,
        )
        self.in_flight = Gauge("http_requests_in_flight", "Requests being handled now.", namespace=ns, registry=r)
        # Every answer by status, whatever its route: a 500 (a bug) or a relay handshake refused
        # (429 too_many_sockets, 503 relay_full) shows here even where no outcome code is counted.
        self.responses = Counter(
            "http_responses", "Responses by route and HTTP status.", ["route", "status"], namespace=ns, registry=r
        )
        self.upstream_seconds = Histogram(
            "upstream_request_duration_seconds", "Appwrite call latency.", buckets=_LATENCY_BUCKETS,
            namespace=ns, registry=r,
        )
        self.upstream_responses = Counter(
            "upstream_responses", "Appwrite answers by HTTP status (or 'error' when none came).", ["status"],
            namespace=ns, registry=r,
        )
        self.ratelimit = Counter(
            "ratelimit_decisions", "Rate limit decisions by scope.", ["scope", "decision"], namespace=ns, registry=r
        )
        self.state_fallback = Gauge(
            "state_backend_fallback", "1 while Redis is unreachable and state falls back to memory.",
            namespace=ns, registry=r,
        )
        self.state_backend = Gauge(
            "state_backend_info", "1 for the state backend this process uses (memory, redis, redis-sentinel, "
            "redis-cluster).", ["backend"], namespace=ns, registry=r
        )
        self.state_errors = Counter(
            "state_backend_error", "Redis answers that say its configuration is wrong, by cause (the call was "
            "served from memory; see /readyz).", ["cause"], namespace=ns, registry=r
        )
        self.circuit = Gauge(
            "circuit_state", "Upstream circuit breaker: 0 closed, 1 half-open, 2 open.", namespace=ns, registry=r
        )
        self.relay_open = Gauge("relay_open_sockets", "Relayed Realtime sockets open now.", namespace=ns, registry=r)
        # The configured cap, so an alert can compare the open sockets with it on any deployment.
        self.relay_max = Gauge(
            "relay_max_sockets", "Relayed sockets this process accepts (RELAY_MAX_SOCKETS).", namespace=ns, registry=r
        )
        self.relay_frames = Counter(
            "relay_frames", "Relayed frames by direction.", ["direction"], namespace=ns, registry=r
        )
        self.relay_bytes = Counter(
            "relay_bytes", "Relayed bytes by direction.", ["direction"], namespace=ns, registry=r
        )
        self.relay_closes = Counter(
            "relay_closes", "Relayed sockets closed, by reason.", ["reason"], namespace=ns, registry=r
        )
        # The event rules in force (RELAY_EVENT_RULES_FILE) and the new versions refused: a failure
        # means the file on disk is not what the relay applies.
        self.event_rules = Gauge(
            "relay_event_rules", "Event rules the relay applies now (RELAY_EVENT_RULES_FILE).", namespace=ns, registry=r
        )
        self.event_rules_failed = Counter(
            "relay_event_rules_reload_failures", "New versions of the event rules file refused as invalid (the old "
            "rules stay).", namespace=ns, registry=r,
        )
        # The HTTP edge's crowd against its caps (edge/connection_limits.py).
        self.connections_open = Gauge(
            "http_connections_open", "Client connections open now, relayed sockets included.", namespace=ns, registry=r
        )
        self.connections_max = Gauge(
            "http_max_connections", "Connections this process accepts (MAX_CONNECTIONS).", namespace=ns, registry=r
        )
        self.request_bytes = Gauge(
            "http_request_bytes_in_flight", "Bytes counted for the requests in flight (MAX_REQUEST_BYTES_IN_FLIGHT).",
            namespace=ns, registry=r,
        )
        self.request_bytes_max = Gauge(
            "http_max_request_bytes_in_flight", "The cap on http_request_bytes_in_flight.", namespace=ns, registry=r
        )
        self.edge_refusals = Counter(
            "http_edge_refusals", "Connections and requests refused at the caps, by problem code.", ["code"],
            namespace=ns, registry=r,
        )
        # Sign-outs made to take effect at once (revocation/): what was asked, and what was refused.
        self.revocations = Counter(
            "revocations", "Revocations received, by source (webhook, internal, broadcast) and action (closed, "
            "rechecked, ignored).", ["source", "action"], namespace=ns, registry=r,
        )
        self.revocation_refusals = Counter(
            "revocation_refusals", "Revocation requests refused, by reason (signature, replayed, unauthorized, "
            "malformed).", ["reason"], namespace=ns, registry=r,
        )
        # Hot-path label children, looked up once (the label sets are small and fixed).
        self._exchange_children: dict[str, Counter] = {}
        self._latency_children: dict[tuple[str, str], Histogram] = {}
        self._response_children: dict[tuple[str, int], Counter] = {}
        self._decision_children: dict[tuple[str, bool], Counter] = {}
        self._upstream_children: dict[int | None, Counter] = {}

    def exchange(self, code: str) -> None:
        """Count one exchange outcome; label children are looked up once per code."""
        child = self._exchange_children.get(code)
        if child is None:
            child = self._exchange_children[code] = self.exchanges.labels(code)
        child.inc()

    def ratelimit_decision(self, scope: str, allowed: bool) -> None:
        child = self._decision_children.get((scope, allowed))
        if child is None:
            child = self._decision_children[(scope, allowed)] = self.ratelimit.labels(
                scope, "allow" if allowed else "deny"
            )
        child.inc()

    def upstream_response(self, status: int | None) -> None:
        """One Appwrite answer by status; None when no answer came."""
        child = self._upstream_children.get(status)
        if child is None:
            child = self._upstream_children[status] = self.upstream_responses.labels(str(status) if status else "error")
        child.inc()

    def set_relay_limit(self, max_sockets: int) -> None:
        self.relay_max.set(max_sockets)

    def watch_edge(
        self, connections: Callable[[], float], max_connections: int, request_bytes: Callable[[], float], max_bytes: int
    ) -> None:
        self.connections_open.set_function(connections)
        self.connections_max.set(max_connections)
        self.request_bytes.set_function(request_bytes)
        self.request_bytes_max.set(max_bytes)

    def edge_refused(self, code: str) -> None:
        self.edge_refusals.labels(code).inc()

    def set_circuit(self, state: int) -> None:
        """The circuit breaker's state as its gauge value (0 closed, 1 half-open, 2 open)."""
        self.circuit.set(state)

    def set_fallback(self, active: bool) -> None:
        self.state_fallback.set(1 if active else 0)

    def set_backend(self, backend: str) -> None:
        self.state_backend.labels(backend).set(1)

    def state_error(self, cause: str) -> None:
        self.state_errors.labels(cause).inc()

    def middleware(self) -> web.middleware:  # type: ignore[valid-type]
        @web.middleware
        async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
            route = request.match_info.route.resource
            # The route template, never the raw path: unknown paths all count as one label.
            label = route.canonical if route is not None else "unmatched"
            started = time.perf_counter()
            self.in_flight.inc()
            try:
                response = await handler(request)
                self._count_response(label, response.status)
                return response
            except web.HTTPException as answer:  # a redirect: the only answer raised past request_context
                self._count_response(label, answer.status)
                raise
            finally:
                self.in_flight.dec()
                method = request.method if request.method in _METHODS else "OTHER"
                child = self._latency_children.get((label, method))
                if child is None:
                    child = self._latency_children[(label, method)] = self.request_seconds.labels(label, method)
                child.observe(time.perf_counter() - started)

        return measure

    def _count_response(self, route: str, status: int) -> None:
        child = self._response_children.get((route, status))
        if child is None:
            child = self._response_children[(route, status)] = self.responses.labels(route, str(status))
        child.inc()

    async def handler(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
        )
