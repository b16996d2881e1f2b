"""Tracing, end to end: `token-exchange serve` as a real process with the standard OTEL_* variables,
exporting over OTLP/HTTP to a receiver this test runs (an aiohttp endpoint decoding the protobuf
ExportTraceServiceRequest), in front of the emulator, which records the `traceparent` it got."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import appwrite_token_exchange
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from appwrite_token_exchange.settings import Settings, SettingsError
from appwrite_token_exchange.state.redis_store import RedisState
from appwrite_token_exchange.state.traced_redis import TracedRedisState
from multidict import CIMultiDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tests.support.helpers import upstream_requests
from tests.support.processes import free_port, running
from tests.support.redis_server import RedisServer, redis_server
from tests.support.service import COOKIE, JWT_SECRET, PROJECT, Emulator

SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
HASH_KEY = "tracing-test-hash-key-0123456789"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
# Two tracestate lines are one list (W3C Trace Context): kept, in order, when the caller is trusted.
CALLER_STATE = ("rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE")
ORIGIN = "https://app.example.com"


@dataclass
class ExportedSpan:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    links: list[tuple[str, str]]  # (trace id, span id) of each linked span
    scope: tuple[str, str]  # the instrumentation scope: name, version
    trace_state: str = ""


def _values(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        kind = pair.value.WhichOneof("value")
        out[pair.key] = getattr(pair.value, kind) if kind else None
    return out


class Receiver:
    """An OTLP/HTTP traces endpoint: every span it was sent, decoded."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        self.posts = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.posts += 1
        assert request.content_type == "application/x-protobuf"
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource_spans in export.resource_spans:
            resource = _values(resource_spans.resource.attributes)
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append(ExportedSpan(
                        span.name, span.kind, span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                        _values(span.attributes), resource,
                        [(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        (scope.scope.name, scope.scope.version), span.trace_state,
                    ))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def named(self, name: str) -> list[ExportedSpan]:
        return [span for span in self.spans if span.name == name]


@pytest.fixture
async def receiver(aiohttp_server: Any) -> AsyncIterator[tuple[Receiver, TestServer]]:
    collector = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", collector.handle)
    yield collector, await aiohttp_server(app)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@dataclass
class Service:
    url: str
    process: asyncio.subprocess.Process
    stdout: str = ""

    async def stop(self) -> None:
        """SIGTERM: the process drains, flushes its spans and exits; its log is kept."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(self.process.communicate(), 30)
        assert self.process.returncode == 0
        self.stdout = out.decode()

    def log_events(self, name: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("event") == name]


@pytest.fixture
def serve(emulator: Emulator) -> Any:
    @contextlib.asynccontextmanager
    async def start(**env: str) -> AsyncIterator[Service]:
        port = free_port()
        base = {
            "APPWRITE_ENDPOINT": emulator.endpoint, "APPWRITE_PROJECT_ID": PROJECT, "APPWRITE_JWT_SECRET": JWT_SECRET,
            "HOST": "127.0.0.1", "PORT": str(port), "ALLOWED_ORIGINS": ORIGIN, "DRAIN_TIMEOUT_SECONDS": "0",
            "LOG_FORMAT": "json",
        }
        # Only what this test sets: an OTEL_* variable of the machine running the suite must not leak in.
        clean = {name: "" for name in os.environ if name.startswith("OTEL_")}
        async with running("serve", env={**clean, **base, **env}, ready_url=f"http://127.0.0.1:{port}/livez") as process:
            yield Service(f"http://127.0.0.1:{port}", process)

    return start


def traceparent(recorded: dict[str, Any]) -> tuple[str, str]:
    """The trace and parent span ids of the `traceparent` Appwrite received; it must say sampled."""
    version, trace_id, span_id, flags = recorded["headers"]["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1
    return trace_id, span_id


def caller_headers(**more: str) -> CIMultiDict[str]:
    """A caller's sampled `traceparent` and its `tracestate` (two lines)."""
    headers = CIMultiDict(more)
    headers["traceparent"] = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    for line in CALLER_STATE:
        headers.add("tracestate", line)
    return headers


def _secrets_absent(spans: list[ExportedSpan], *secrets: str) -> None:
    for span in spans:
        text = json.dumps([span.name, span.attributes, span.resource], default=str)
        for secret in secrets:
            assert secret not in text, (span.name, "carries a secret")
        assert "?" not in str(span.attributes.get("url.full", "")), "a URL with its query"


async def test_an_exchange_is_one_trace_from_the_caller_through_appwrite_and_redis(
    serve: Any, emulator: Emulator, receiver: tuple[Receiver, TestServer], redis: RedisServer
) -> None:
    collector, endpoint = receiver
    _, session_id, cookie = emulator.signed_in_user()
    async with serve(
        OTEL_EXPORTER_OTLP_ENDPOINT=str(endpoint.make_url("")).rstrip("/"), OTEL_SERVICE_NAME="rtx-under-test",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test", REDIS_URL=redis.url, STATE_HASH_KEY=HASH_KEY,
        TRACE_TRUST_INCOMING="proxies", TRUSTED_PROXIES="127.0.0.1/32",  # the test is the mesh in front
    ) as service, aiohttp.ClientSession() as http:
        async with http.post(f"{service.url}/v1/realtime/token",
                             headers=caller_headers(**{"X-CSRF": "1", "Cookie": f"{COOKIE}={cookie}"})) as response:
            assert response.status == 200
            token = (await response.json())["jwt"]
            request_id = response.headers["X-Request-ID"]
        await service.stop()

    [route] = collector.named("POST /v1/realtime/token")
    assert route.kind == SERVER
    assert (route.trace_id, route.parent_id) == (CALLER_TRACE, CALLER_SPAN)  # the caller's trace goes on
    assert route.trace_state == ",".join(CALLER_STATE) and route.links == []
    assert route.attributes["http.response.status_code"] == 200
    assert route.attributes["http.route"] == "/v1/realtime/token"
    assert route.attributes["http.request.method"] == "POST"
    assert route.resource["service.name"] == "rtx-under-test"
    # The scope names the instrumenting package and its version, as OpenTelemetry asks.
    assert route.scope == ("appwrite_token_exchange", appwrite_token_exchange.__version__)
    assert route.resource["deployment.environment"] == "test"

    [call] = collector.named("POST /account/jwts")
    assert call.kind == CLIENT
    assert (call.trace_id, call.parent_id) == (CALLER_TRACE, route.span_id)
    assert call.attributes["http.response.status_code"] == 201  # Appwrite creates the JWT
    assert call.attributes["server.address"] == "127.0.0.1"
    assert call.attributes["url.full"] == f"{emulator.endpoint}/account/jwts"

    # Appwrite saw the client span as its parent, and the id the service logged and answered with.
    [sent] = await upstream_requests(emulator)
    assert traceparent(sent) == (CALLER_TRACE, call.span_id)
    assert sent["headers"]["tracestate"] == ",".join(CALLER_STATE)
    assert sent["headers"]["X-Request-ID"] == request_id
    [issued] = service.log_events("token.issued")
    assert issued["request_id"] == request_id

    redis_spans = [span for span in collector.spans if span.name.startswith("redis ")]
    assert redis_spans, "no span for the Redis calls"
    exchange_redis = [span for span in redis_spans if span.trace_id == CALLER_TRACE]
    assert exchange_redis and all(span.parent_id == route.span_id for span in exchange_redis)
    for span in exchange_redis:
        assert span.kind == CLIENT
        assert span.attributes["db.system.name"] == "redis"
        assert span.attributes["server.port"] == redis.port
    _secrets_absent(collector.spans, cookie, token, session_id, HASH_KEY, JWT_SECRET)


async def test_an_untrusted_callers_trace_context_is_only_linked(
    serve: Any, emulator: Emulator, receiver: tuple[Receiver, TestServer]
) -> None:
    """By default a caller's `traceparent` picks neither the trace id nor, through the default
    parent-based sampler, whether the trace is kept: the service starts its own trace, linked to the
    caller's span, and sends Appwrite its own trace context, without the caller's `tracestate`."""
    collector, endpoint = receiver
    cookie = emulator.signed_in_user()[2]
    async with serve(OTEL_EXPORTER_OTLP_ENDPOINT=str(endpoint.make_url("")).rstrip("/")) as service:
        async with aiohttp.ClientSession() as http, http.post(
            f"{service.url}/v1/realtime/token",
            headers=caller_headers(**{"X-CSRF": "1", "Cookie": f"{COOKIE}={cookie}"}),
        ) as response:
            assert response.status == 200
        await service.stop()

    [route] = collector.named("POST /v1/realtime/token")
    assert route.trace_id != CALLER_TRACE and route.parent_id == ""
    assert route.links == [(CALLER_TRACE, CALLER_SPAN)]
    assert route.trace_state == ""
    assert all(span.trace_id != CALLER_TRACE and span.trace_state == "" for span in collector.spans)
    [call] = collector.named("POST /account/jwts")
    [sent] = await upstream_requests(emulator)
    assert traceparent(sent) == (route.trace_id, call.span_id)
    assert "tracestate" not in {name.lower() for name in sent["headers"]}


@pytest.mark.parametrize(
    ("trust", "trusted"),
    [
        ({}, False),  # the default: TRACE_TRUST_INCOMING=none
        ({"TRACE_TRUST_INCOMING": "proxies", "TRUSTED_PROXIES": "10.0.0.0/8"}, False),  # the peer is no proxy
        ({"TRACE_TRUST_INCOMING": "proxies", "TRUSTED_PROXIES": "127.0.0.1/32"}, True),
        ({"TRACE_TRUST_INCOMING": "all"}, True),
    ],
    ids=["none", "proxies-untrusted-peer", "proxies-trusted-peer", "all"],
)
async def test_only_a_trusted_caller_decides_sampling_and_the_trace_id(
    serve: Any, receiver: tuple[Receiver, TestServer], trust: dict[str, str], trusted: bool
) -> None:
    """Issue 26 #6: with a 1 % sampler, 40 of 40 requests carrying a sampled `traceparent` were kept,
    under the caller's trace id. Now only a trusted sender (a mesh or proxy in front) decides."""
    collector, endpoint = receiver
    async with serve(OTEL_EXPORTER_OTLP_ENDPOINT=str(endpoint.make_url("")).rstrip("/"),
                     OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.01",
                     RATE_LIMIT_IP="1000/minute", **trust) as service:
        async with aiohttp.ClientSession() as http:
            for _ in range(40):  # refused (no cookie), and spanned all the same
                async with http.post(f"{service.url}/v1/realtime/token",
                                     headers=caller_headers(**{"X-CSRF": "1"})) as response:
                    assert response.status == 401
        await service.stop()

    routes = collector.named("POST /v1/realtime/token")
    if trusted:  # the sampled flag is obeyed and the trace goes on, tracestate and all
        assert len(routes) == 40
        assert {(span.trace_id, span.parent_id, span.trace_state) for span in routes} == {
            (CALLER_TRACE, CALLER_SPAN, ",".join(CALLER_STATE))}
    else:  # the service's own 1 % (about 0.4 of 40 kept; more than 10, a chance under 1e-12)
        assert len(routes) <= 10
        assert all(span.trace_id != CALLER_TRACE and span.parent_id == "" and span.trace_state == ""
                   for span in collector.spans)


@contextlib.asynccontextmanager
async def relayed_socket(service: Service, cookie: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A page's relayed socket to the account channel, signed in with `cookie`."""
    async with aiohttp.ClientSession() as http, http.ws_connect(
        f"{service.url}/v1/realtime?project={PROJECT}&channels[]=account",
        headers={"Origin": ORIGIN, "Cookie": f"{COOKIE}={cookie}"},
    ) as socket:
        yield socket


async def test_the_relay_handshake_is_spanned_and_its_upstream_socket_carries_the_trace(
    serve: Any, emulator: Emulator, receiver: tuple[Receiver, TestServer]
) -> None:
    collector, endpoint = receiver
    _, session_id, cookie = emulator.signed_in_user()
    async with serve(OTEL_TRACES_EXPORTER="otlp",
                     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=str(endpoint.make_url("/v1/traces"))) as service:
        async with relayed_socket(service, cookie) as socket:
            request_id = socket._response.headers["X-Request-ID"]
            await socket.close()
        await service.stop()

    [route] = collector.named("GET /v1/realtime")
    assert route.kind == SERVER
    assert route.parent_id == ""  # no traceparent came in: a new trace
    assert route.attributes["http.response.status_code"] == 101
    [account] = collector.named("GET /account")
    [upstream] = collector.named("GET /realtime (WebSocket)")
    for child in (account, upstream):
        assert child.kind == CLIENT
        assert (child.trace_id, child.parent_id) == (route.trace_id, route.span_id)
    assert upstream.attributes["url.template"] == "/realtime"
    assert "url.full" not in upstream.attributes  # its query names the project and channels

    [handshake] = await upstream_requests(emulator, "/v1/realtime")
    assert traceparent(handshake) == (route.trace_id, upstream.span_id)
    assert handshake["headers"]["X-Request-ID"] == request_id
    [checked] = await upstream_requests(emulator, "/v1/account")
    assert traceparent(checked) == (route.trace_id, account.span_id)
    assert checked["headers"]["X-Request-ID"] == request_id
    _secrets_absent(collector.spans, cookie, session_id, JWT_SECRET)


async def test_a_relayed_sockets_session_recheck_is_a_trace_linked_to_its_handshake(
    serve: Any, emulator: Emulator, receiver: tuple[Receiver, TestServer]
) -> None:
    collector, endpoint = receiver
    _, session_id, cookie = emulator.signed_in_user()
    async with serve(OTEL_TRACES_EXPORTER="otlp", RELAY_REVALIDATE_SECONDS="1",
                     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=str(endpoint.make_url("/v1/traces"))) as service:
        async with relayed_socket(service, cookie) as socket:
            for _ in range(50):  # bounded: the first re-check comes after 1 s
                await asyncio.sleep(0.1)
                if len(await upstream_requests(emulator, "/v1/account")) >= 2:
                    break
            await socket.close()
        await service.stop()

    [route] = collector.named("GET /v1/realtime")
    [recheck, *_] = collector.named("relay revalidate")
    # A trace of its own (the handshake's ended long before), linked to the handshake's span.
    assert recheck.parent_id == "" and recheck.trace_id != route.trace_id
    assert recheck.links == [(route.trace_id, route.span_id)]
    [account] = [span for span in collector.named("GET /account") if span.trace_id == recheck.trace_id]
    assert account.parent_id == recheck.span_id
    checked = (await upstream_requests(emulator, "/v1/account"))[1]
    assert traceparent(checked) == (recheck.trace_id, account.span_id)
    _secrets_absent(collector.spans, cookie, session_id, JWT_SECRET)


async def test_refusals_are_spanned_with_their_status_and_code(
    serve: Any, emulator: Emulator, receiver: tuple[Receiver, TestServer]
) -> None:
    collector, endpoint = receiver
    _, session_id, cookie = emulator.signed_in_user()
    emulator.state.delete_session(session_id)  # signed out: Appwrite answers 401
    async with serve(OTEL_EXPORTER_OTLP_ENDPOINT=str(endpoint.make_url("")).rstrip("/")) as service:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{service.url}/v1/realtime/token", headers={"X-CSRF": "1"}) as response:
                assert response.status == 401  # no cookie: refused before any Appwrite call
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{service.url}/v1/realtime?project={PROJECT}&channels[]=account",
                                      headers={"Origin": ORIGIN, "Cookie": f"{COOKIE}={cookie}"})
            assert refused.value.status == 401
        await service.stop()

    [token_route] = collector.named("POST /v1/realtime/token")
    assert token_route.attributes["http.response.status_code"] == 401
    assert not [span for span in collector.spans if span.trace_id == token_route.trace_id and span is not token_route]
    [relay_route] = collector.named("GET /v1/realtime")
    assert relay_route.attributes["http.response.status_code"] == 401
    assert relay_route.attributes["error.type"] == "session_invalid"
    [account] = collector.named("GET /account")
    assert account.parent_id == relay_route.span_id
    assert account.attributes["http.response.status_code"] == 401
    assert account.attributes["error.type"] == "session_invalid"
    assert not collector.named("GET /realtime (WebSocket)")
    _secrets_absent(collector.spans, cookie, session_id)


@pytest.mark.parametrize("off", [{}, {"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}])
async def test_with_tracing_off_nothing_is_exported_and_no_traceparent_goes_out(
    serve: Any, emulator: Emulator, receiver: tuple[Receiver, TestServer], off: dict[str, str]
) -> None:
    collector, endpoint = receiver
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": str(endpoint.make_url("")).rstrip("/"), **off} if off else {}
    cookie = emulator.signed_in_user()[2]
    async with serve(**env) as service, aiohttp.ClientSession() as http:
        async with http.post(f"{service.url}/v1/realtime/token", headers={
            "X-CSRF": "1", "Cookie": f"{COOKIE}={cookie}", "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
        }) as response:
            assert response.status == 200
            request_id = response.headers["X-Request-ID"]
        await service.stop()
    assert collector.posts == 0
    [sent] = await upstream_requests(emulator)
    assert "traceparent" not in {name.lower() for name in sent["headers"]}
    assert sent["headers"]["X-Request-ID"] == request_id


def test_every_redis_state_call_has_its_span() -> None:
    """A call added to RedisState must be added to TracedRedisState too, or it goes untraced."""
    calls = {name for name, value in vars(RedisState).items()
             if inspect.iscoroutinefunction(value) and not name.startswith("_")}
    assert calls and calls <= set(vars(TracedRedisState))


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_HEADERS": "api-key"}, "OTEL_EXPORTER_OTLP_HEADERS"),
    ],
)
def test_a_bad_otel_variable_is_named(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"APPWRITE_ENDPOINT": "https://aw.example.com/v1", "APPWRITE_PROJECT_ID": "p", **env})
    assert raised.value.variable == variable


def test_otlp_settings_are_read_and_headers_kept_out_of_the_repr() -> None:
    settings = Settings.from_env({
        "APPWRITE_ENDPOINT": "https://aw.example.com/v1", "APPWRITE_PROJECT_ID": "p",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example.com:4318/",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cr%3Dt,tenant=a",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25",
    })
    assert settings.tracing is not None
    assert settings.tracing.endpoint == "https://collector.example.com:4318/v1/traces"
    assert dict(settings.tracing.headers) == {"x-api-key": "s3cr=t", "tenant": "a"}
    assert (settings.tracing.sampler, settings.tracing.sampler_ratio) == ("parentbased_traceidratio", 0.25)
    assert "s3cr" not in repr(settings)
