"""OpenTelemetry tracing, off unless the standard OTEL_* variables turn it on (OTLP over HTTP).

Spans: the route (SERVER), each Appwrite call and the relay's upstream handshake (CLIENT,
`traceparent` forwarded), each Redis call. Attributes are chosen, never copied from requests: no
cookie, session, JWT, key, or URL with its query ever becomes one.

An incoming `traceparent` is the caller's text: continued, it would pick the trace id and, through a
parent-based sampler, force every trace it sends to be kept. So the route's span continues it (with
its `tracestate`) only from callers TRACE_TRUST_INCOMING trusts (none by default; a peer in
TRUSTED_PROXIES, such as a mesh that sets it itself; or all); anyone else's request starts a trace of
this service's own, sampled by this service's own sampler, with a link to the caller's span.

When tracing is off, `NO_TRACING` stands in: nothing of OpenTelemetry is imported, and each span
site costs one method call returning a shared no-op context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from appwrite_token_exchange import __version__
from appwrite_token_exchange.env import canonical_ip, in_networks
from appwrite_token_exchange.keys import SETTINGS
from appwrite_token_exchange.observability.tracing_config import TracingConfig
from appwrite_token_exchange.problems import ProblemError

if TYPE_CHECKING:
    from aiohttp import web
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span
    from opentelemetry.trace import Tracer as OtelTracer

# Routes polled by probes and scrapers: a span each would only bury the traces that matter.
_UNTRACED_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class Tracer(Protocol):
    """What every span site asks of tracing, on (Tracing) or off (NoTracing)."""

    enabled: bool

    def server_span(self, request: web.Request, route: str) -> contextlib.AbstractContextManager[Any]: ...

    def client_span(self, name: str, attributes: Mapping[str, str | int]) -> contextlib.AbstractContextManager[Any]: ...

    def follow_up_span(self, name: str, origin: Any) -> contextlib.AbstractContextManager[Any]: ...

    def inject(self, headers: dict[str, str]) -> None: ...

    async def shutdown(self) -> None: ...


class NoTracing:
    """Tracing off: every span site gets the same no-op context manager."""

    enabled = False
    _NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()

    def server_span(self, request: web.Request, route: str) -> contextlib.AbstractContextManager[Any]:
        return self._NOTHING

    def client_span(self, name: str, attributes: Mapping[str, str | int]) -> contextlib.AbstractContextManager[Any]:
        return self._NOTHING

    def follow_up_span(self, name: str, origin: Any) -> contextlib.AbstractContextManager[Any]:
        return self._NOTHING

    def inject(self, headers: dict[str, str]) -> None:
        return None

    async def shutdown(self) -> None:
        return None


NO_TRACING = NoTracing()


class Tracing(NoTracing):
    """Tracing on: an SDK tracer provider of this app's own (no process-global state, so tests and
    several apps in one process do not share one), exporting in batches from a worker thread."""

    enabled = True

    def __init__(self, config: TracingConfig) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        resource = Resource.create({**dict(config.resource), "service.name": config.service_name})
        self._provider: TracerProvider = TracerProvider(resource=resource, sampler=_sampler(config))
        exporter = OTLPSpanExporter(
            endpoint=config.endpoint, headers=dict(config.headers), timeout=config.timeout_seconds
        )
        # Spans are queued on the event loop and sent by the processor's own thread.
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        # The scope is the instrumenting package (its import name) and its version.
        self._tracer: OtelTracer = self._provider.get_tracer("appwrite_token_exchange", __version__)
        self._propagator = TraceContextTextMapPropagator()
        self._server, self._client = SpanKind.SERVER, SpanKind.CLIENT

    def _incoming(self, request: web.Request) -> tuple[Context, list[Any]]:
        """The route span's parent and links: the caller's trace context if its sender is trusted;
        else a new trace linked to the caller's span (its ids only: neither its sampled flag nor its
        `tracestate` comes along)."""
        from opentelemetry.context import Context
        from opentelemetry.trace import Link, SpanContext, get_current_span

        lines = request.headers.getall("traceparent", ())
        if len(lines) != 1:  # none, or several: W3C Trace Context treats several as invalid
            return Context(), []
        # Several tracestate lines are one list (W3C Trace Context, RFC 9110 section 5.3).
        carrier = {"traceparent": lines[0], "tracestate": ",".join(request.headers.getall("tracestate", ()))}
        remote = self._propagator.extract(carrier)
        if _trusted(request):
            return remote, []
        caller = get_current_span(remote).get_span_context()
        if not caller.is_valid:
            return Context(), []
        return Context(), [Link(SpanContext(caller.trace_id, caller.span_id, is_remote=True))]

    @contextlib.contextmanager
    def server_span(self, request: web.Request, route: str) -> Iterator[Span | None]:
        """The route's span: continuing a trusted caller's trace, else a trace of its own (module doc)."""
        if request.path in _UNTRACED_PATHS:
            yield None
            return
        parent, links = self._incoming(request)
        attributes: dict[str, str | int] = {
            "http.request.method": request.method,
            "http.route": route,
            "url.scheme": request.scheme,
            "url.path": route,
        }
        with self._tracer.start_as_current_span(
            f"{request.method} {route}", context=parent, kind=self._server, attributes=attributes, links=links,
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except ProblemError as error:
                _failed(span, error.status, error.code)
                raise
            except Exception as error:
                _failed(span, 500, type(error).__name__)
                raise

    @contextlib.contextmanager
    def client_span(self, name: str, attributes: Mapping[str, str | int]) -> Iterator[Span]:
        """A call out; `inject` inside it forwards this span as the callee's parent. A ProblemError
        leaving it marks it failed with the problem's code, nothing of its message."""
        with self._tracer.start_as_current_span(
            name, kind=self._client, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except ProblemError as error:
                _failed(span, None, error.code)
                raise
            except Exception as error:
                _failed(span, None, type(error).__name__)
                raise

    def follow_up_span(self, name: str, origin: Any) -> contextlib.AbstractContextManager[Any]:
        """Work done long after `origin` ended because of it (a relayed socket's session re-check,
        hours after its handshake): a trace of its own, linked to the origin, as OpenTelemetry
        advises for follow-ups that would make a parent's trace last for hours."""
        if origin is None:
            return self._NOTHING
        from opentelemetry.context import Context
        from opentelemetry.trace import Link

        return self._tracer.start_as_current_span(
            name, context=Context(), links=[Link(origin.get_span_context())],
            record_exception=False, set_status_on_exception=False,
        )

    def inject(self, headers: dict[str, str]) -> None:
        self._propagator.inject(headers)

    async def shutdown(self) -> None:
        # Flushing sends over HTTP and joins the worker thread: never on the event loop.
        await asyncio.to_thread(self._provider.shutdown)


def _trusted(request: web.Request) -> bool:
    """Whether TRACE_TRUST_INCOMING lets this request's sender choose its trace (ids and sampling)."""
    settings = request.app[SETTINGS]
    if settings.trace_trust_incoming == "all":
        return True
    if settings.trace_trust_incoming == "none":
        return False
    # `proxies`: the socket's peer, not any X-Forwarded-For entry, is who sent the header.
    peer = canonical_ip(request.remote)
    return peer is not None and in_networks(peer, settings.trusted_proxies)


def _failed(span: Span, status: int | None, error_type: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    if status is not None:
        span.set_attribute("http.response.status_code", status)
    span.set_attribute("error.type", error_type)
    if status is None or status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def set_response(span: Span | None, status: int) -> None:
    """The answer's status on a span; 5xx marks a server span failed (semantic conventions)."""
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR))


def _sampler(config: TracingConfig) -> Any:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased

    name = config.sampler.removeprefix("parentbased_")
    root = ALWAYS_ON if name == "always_on" else ALWAYS_OFF if name == "always_off" else TraceIdRatioBased(
        config.sampler_ratio
    )
    return ParentBased(root) if config.sampler.startswith("parentbased_") else root


def create_tracing(config: TracingConfig | None) -> Tracer:
    return Tracing(config) if config is not None else NO_TRACING


def tracing_middleware(tracing: Tracer, spanned_by_handler: frozenset[str]) -> Any:
    """The route's server span around every request but those whose handler spans itself (the
    relay spans only its handshake: a socket lives for hours). Installed only when tracing is on."""
    from aiohttp import web

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in spanned_by_handler:
            return await handler(request)  # type: ignore[no-any-return]
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        with tracing.server_span(request, route) as span:
            response: web.StreamResponse = await handler(request)
            set_response(span, response.status)
            return response

    return middleware
