"""The HTTP server under the app: aiohttp's, with a bound on what a request costs before a handler runs.

aiohttp bounds each header line (`max_field_size`, `max_line_size`) and the number of header lines
(`max_headers`), but not their total, and it has no deadline for a request to arrive: a connection
that sends 120 lines of 32 KB and then one byte of a promised body holds ~8 MB of parsed headers for
as long as it likes (issue 11: 40 such connections took the service from 47 to 343 MB). Its parse
errors are answered by `RequestHandler.handle_error`, a text/plain page that echoes request bytes.
None of this reaches an application middleware, so the bounds live in the HTTP protocol itself:

- `BoundedRequestHandler` is aiohttp's `RequestHandler` with every byte of an HTTP/1 request passing
  through `_feed` on its way into aiohttp's parser (C or Python). That is the one place that sees a
  request's bytes as they arrive and the messages the parser makes of them. It counts the bytes of
  each request's header block (431 `headers_too_large` past `MAX_REQUEST_HEADER_BYTES`), and runs a
  deadline from a request's first byte until its body is complete (`REQUEST_READ_TIMEOUT_SECONDS`,
  then 408 `request_timeout`). Both refusals travel aiohttp's own path for parse errors (an
  `HttpProcessingError` from the parser), so queueing, pipelining and closing stay aiohttp's.
  A body that stops arriving fails the handler's `await request.read()` with `request_timeout`.
- It holds the crowd to the caps of edge/connection_limits.py: a connection past them is answered
  at accept and closed, a request past them is refused like the two above (503 `server_busy`, 429
  `too_many_connections` / `too_many_requests_in_flight`, with `Retry-After`).
- `handle_error` answers every error aiohttp raises itself as problem+json, with an `X-Request-ID`,
  the app's `Server` (no version) and nothing of the request in it (a bad header line may be the
  Cookie header).
- aiohttp closes a connection after the current answer when asked to (`close()`, e.g. at SIGTERM)
  without saying so in that answer; `finish_response` adds `Connection: close` then, so a keep-alive
  client does not send its next request into a closing socket.

A connection with nothing in flight keeps aiohttp's keep-alive timeout and is closed silently,
except after a read that may have carried part of a next request (after a request with a body, or
a fragment behind a complete request): the parser may hold bytes no request will ever complete, so
such a connection is closed silently once it has been idle for the read timeout.
aiohttp offers no public hook for any of this: the parser is swapped for a wrapper on the protocol's
`_parser` attribute, and the runner's `_make_server` builds this protocol's server from the one
aiohttp made. So pyproject.toml allows only the aiohttp minor this was reviewed on, each internal
relied on has a test named after it (tests/test_aiohttp_internals.py), and tests/test_hostile_http.py
runs once with aiohttp's C parser and once with its Python parser (`AIOHTTP_NO_EXTENSIONS=1`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.http_parser import HttpParser
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import _ErrInfo

from appwrite_token_exchange.edge.connection_limits import (
    MAX_LINGERING,
    QUICK_REQUEST_BYTES,
    RETRY_AFTER_SECONDS,
    ConnectionLimits,
)
from appwrite_token_exchange.edge.middlewares import REQUEST_ID_HEADER, SERVER, new_request_id
from appwrite_token_exchange.keys import CONNECTION_LIMITS
from appwrite_token_exchange.observability.logs import AccessLogger
from appwrite_token_exchange.problems import (
    PROBLEM_CONTENT_TYPE,
    PROBLEMS,
    ProblemError,
    problem_body,
    problem_response,
)
from appwrite_token_exchange.settings import Settings

# aiohttp refuses header lines over 8190 bytes by default. Sites with many cookies send bigger Cookie
# headers; let those reach the service's own checks. The whole header block is bounded separately.
MAX_HEADER_BYTES = 32 * 1024
# aiohttp's run_app default (a bare AppRunner would keep idle connections for an hour).
KEEPALIVE_TIMEOUT_SECONDS = 75.0
# After refusing a request, how long to take (and drop) what the client is still sending, so that
# closing does not reset the connection before the client has read the refusal.
LINGER_SECONDS = 2.0

_END_OF_HEADERS = b"\r\n\r\n"
_NOTHING: tuple[Sequence[Any], bool, bytes] = ((), False, b"")
_log = structlog.get_logger(logger_name="service")


@dataclass(frozen=True)
class RequestLimits:
    read_timeout_seconds: float
    max_header_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        return cls(settings.request_read_timeout_seconds, settings.max_request_header_bytes)


class Refusal(HttpProcessingError):
    """A bound of this module, raised by `_refuse` (the parser's own errors are not these)."""


class RequestTimeout(Refusal):
    code = 408


class HeadersTooLarge(Refusal):
    code = 431


class OverCap(Refusal):
    """A request past one of the edge's caps (edge/connection_limits.py)."""

    def __init__(self, problem: str) -> None:
        super().__init__(code=PROBLEMS[problem].status, message=_CAP_DETAILS[problem])
        self.problem = problem


_CAP_DETAILS = {
    "server_busy": "This replica holds as many connections and requests as its memory allows; retry shortly.",
    "too_many_connections": "This client IP holds as many connections to this replica as it may.",
    "too_many_requests_in_flight": "This client IP has as many requests in flight on this replica as it may.",
}


class _Phase(enum.Enum):
    IDLE = "no request has started"
    HEADERS = "a request's header block is arriving"
    BODY = "a request's body is arriving"
    # A request ended inside a read that may have carried the start of the next one (a body, or a
    # pipelined request): the parser may hold part of a request no byte will ever complete.
    MAYBE = "the next request may have started"
    OFF = "not HTTP/1 requests any more (upgraded or refused)"


class _Metered:
    """aiohttp's parser as the protocol sees it, with every feed passing through the protocol."""

    __slots__ = ("_feed", "_parser", "_upgraded")

    def __init__(self, parser: Any, feed: Callable[[Any, bytes], Any], upgraded: Callable[[bool], None]) -> None:
        self._parser = parser
        self._feed = feed
        self._upgraded = upgraded

    def feed_data(self, data: bytes) -> Any:
        return self._feed(self._parser, data)

    def set_upgraded(self, value: bool) -> None:
        self._parser.set_upgraded(value)
        self._upgraded(value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


class BoundedRequestHandler(web.RequestHandler):
    """One client connection: aiohttp's protocol with the bounds described in the module docstring."""

    # aiohttp's protocol has slots; without these a __dict__ (about 500 bytes) is added to every
    # connection, a relayed socket's for hours.
    __slots__ = ("_answers", "_body", "_client", "_closing", "_connected", "_deadline", "_edge", "_header_bytes",
                 "_held_bytes", "_in_flight", "_last_bytes", "_last_read", "_limits", "_linger", "_lingering",
                 "_peer_done", "_phase", "_refusal", "_requests")

    def __init__(self, manager: web.Server, *, limits: RequestLimits, edge: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._edge = edge
        self._client: str | None = None  # the per-client key of the peer (None: a trusted proxy)
        self._connected = False  # counted as a connection
        self._in_flight = False  # holding a request slot
        self._held_bytes = 0  # bytes counted against the edge's budget
        self._last_read = 0
        self._lingering: asyncio.TimerHandle | None = None  # refused at accept, closing soon
        self._phase = _Phase.IDLE
        self._header_bytes = 0
        self._last_bytes = b""  # the end of what arrived last, to find an end of headers split in two
        self._body: StreamReader | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._refusal: Refusal | None = None
        # Requests the parser has handed over, and answers finished: equal when nothing is in flight.
        self._requests = 0
        self._answers = 0
        self._closing = False
        self._linger = False
        self._peer_done: asyncio.Event | None = None
        self._parser = cast("HttpParser[Any]", _Metered(self._parser, self._feed, self._on_upgraded))

    # -- reading: the header bytes and the deadline ---------------------------------------------

    def _feed(self, parser: Any, data: bytes) -> Any:
        if self._phase is _Phase.OFF:
            return _NOTHING
        try:
            if self._refusal is not None:
                self._refuse(self._refusal)
            if data:
                self._admit(data)
            messages, upgraded, tail = parser.feed_data(data)
        except HttpProcessingError as error:
            if not isinstance(error, Refusal):  # the parser's own: _refuse did this for ours
                self._stop()
                self._requests += 1
            # Handed to aiohttp as the parser's error message, as aiohttp itself does, but without
            # the traceback: its frames hold the refused bytes (a header block, twice) until the
            # refusal is answered, and a burst of refusals held 110 MiB.
            error.__traceback__ = None
            return [(_ErrInfo(status=400, exc=error, message=error.message), EMPTY_PAYLOAD)], False, b""
        self._requests += len(messages)
        if upgraded:
            self._stop()
            self._request_done()  # a socket now: the relay counts it
        elif messages:
            self._header_bytes = 0
            self._on_request_received(messages[-1][1])
        return messages, upgraded, tail

    def _admit(self, data: bytes) -> None:
        """Count what `data` adds to the request in flight; raise a refusal past a bound."""
        quick = False
        if self._phase in (_Phase.IDLE, _Phase.MAYBE):
            quick = len(data) <= QUICK_REQUEST_BYTES and _END_OF_HEADERS in data
            self._start_request(quick=quick)
        self._count_bytes_in_flight(len(data), quick=quick)
        if self._phase is _Phase.HEADERS:
            self._count_header_bytes(data)
        self._last_bytes = (self._last_bytes + data)[-len(_END_OF_HEADERS) :]

    def _start_request(self, *, quick: bool) -> None:
        self._phase = _Phase.HEADERS
        self._header_bytes = 0
        self._last_bytes = b""
        self._arm(self._limits.read_timeout_seconds)
        self._edge.arriving(self, self._evict)
        if not self._in_flight:  # a pipelined request rides on the slot of the one before it
            self._over_cap(self._edge.start_request(self._client, quick=quick))
            self._in_flight = True

    def _count_bytes_in_flight(self, count: int, *, quick: bool) -> None:
        self._over_cap(self._edge.take_bytes(count, quick=quick))
        self._held_bytes += count
        self._last_read = count

    def _over_cap(self, problem: str | None) -> None:
        if problem is not None:
            self._edge.on_refused(problem)
            self._refuse(OverCap(problem))

    def _request_done(self) -> None:
        """Nothing in flight any more: the slot and the bytes given back, except, when the last read
        may have carried the start of a next request, that read's bytes (the parser may hold them)."""
        keep = self._last_read if self._phase is _Phase.MAYBE else 0
        if self._in_flight:
            self._in_flight = False
            self._edge.end_request(self._client)
        self._edge.give_bytes(self._held_bytes - keep)
        self._held_bytes = keep
        if self._connected and self._phase in (_Phase.IDLE, _Phase.MAYBE):
            self._edge.idle(self, self._evict)

    def _evict(self) -> None:
        """Closed to make room at the connection cap (idle, or its request stalled): given back now."""
        self._let_go()
        self.force_close()

    def _let_go(self) -> None:
        """Everything this connection holds against the edge's caps, given back (once)."""
        if not self._connected:
            return
        self._connected = False
        self._edge.settled(self)
        self._request_done()
        self._edge.give_bytes(self._held_bytes)
        self._held_bytes = 0
        self._edge.disconnect(self._client)

    def _count_header_bytes(self, data: bytes) -> None:
        """Bytes of this request's header block in `data` (up to its end, if that is in `data`)."""
        seen = self._last_bytes + data
        # Only an end that takes at least one new byte: the one in _last_bytes was counted before.
        end = seen.find(_END_OF_HEADERS, max(0, len(self._last_bytes) - len(_END_OF_HEADERS) + 1))
        counted = len(data) if end < 0 else end + len(_END_OF_HEADERS) - len(self._last_bytes)
        if self._header_bytes + counted > self._limits.max_header_bytes:
            limit = self._limits.max_header_bytes
            self._refuse(HeadersTooLarge(message=f"The request's header lines exceed {limit} bytes together."))
        self._header_bytes += counted

    def _on_request_received(self, body: StreamReader) -> None:
        """The last request the parser made has its headers; it is complete with its body."""
        if body.is_eof():
            self._request_complete(ends_here=body is EMPTY_PAYLOAD)
        else:
            self._phase = _Phase.BODY
            self._body = body

            def body_complete() -> None:
                if self._body is body:
                    self._request_complete(ends_here=False)

            body.on_eof(body_complete)

    def _request_complete(self, *, ends_here: bool) -> None:
        self._body = None
        self._edge.settled(self)
        # A header block ends the read: nothing of a next request is waiting in the parser.
        if ends_here and self._last_bytes == _END_OF_HEADERS:
            self._phase = _Phase.IDLE
            self._disarm()
        else:
            self._phase = _Phase.MAYBE
            self._arm(self._limits.read_timeout_seconds)

    def _on_upgraded(self, upgraded: bool) -> None:
        # aiohttp takes back an upgrade the handler declined and parses what followed as HTTP again.
        if not upgraded and self._phase is _Phase.OFF and self._refusal is None:
            self._phase = _Phase.MAYBE
            self._arm(self._limits.read_timeout_seconds)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = asyncio.get_running_loop().call_later(seconds, self._on_deadline)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _stop(self) -> None:
        self._phase = _Phase.OFF
        self._body = None
        self._disarm()
        self._edge.settled(self)

    def _refuse(self, refusal: Refusal) -> None:
        """Raise a refusal; `_feed` hands it to aiohttp as the parser's error, answered by handle_error."""
        self._refusal = None
        self._stop()
        self._requests += 1
        raise refusal

    def _on_deadline(self) -> None:
        self._deadline = None
        timeout = self._limits.read_timeout_seconds
        in_flight = self._requests > self._answers
        if self._phase is _Phase.HEADERS:
            self._refusal = RequestTimeout(message=f"The request did not arrive within {timeout:g} seconds.")
            self.data_received(b"")  # aiohttp feeds the parser, which raises the refusal
        elif self._phase is _Phase.BODY and self._body is not None:
            body = self._body
            self._stop()
            if not in_flight:  # answered already, without reading the body: nothing more to say
                self.force_close()
                return
            body.set_exception(
                ProblemError("request_timeout", f"The request's body did not arrive within {timeout:g} seconds.")
            )
            body.feed_eof()
            self.close()
        elif self._phase is _Phase.MAYBE:
            if in_flight:
                self._arm(timeout)
            else:  # an idle connection, or a fragment of a request that never came: close quietly
                self.force_close()

    # -- answering --------------------------------------------------------------------------------

    # -- connections: counted, or refused at accept -----------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else None
        self._client = self._edge.client_key(address)
        problem = self._edge.connect(self._client)
        if problem is None:
            self._connected = True
            super().connection_made(transport)
            # A new connection must send its first byte within the read deadline, or be closed.
            self._phase = _Phase.MAYBE
            self._arm(self._limits.read_timeout_seconds)
            self._edge.idle(self, self._evict)
        else:
            self._refuse_connection(cast(asyncio.Transport, transport), problem, address)

    def _refuse_connection(self, transport: asyncio.Transport, problem: str, address: str | None) -> None:
        """Answer before reading anything, then close: aiohttp never starts on this connection."""
        self._close = True  # aiohttp's own flag: what arrives is dropped unread
        self._phase = _Phase.OFF
        self._edge.on_refused(problem)
        _log.info("http.refused", code=problem, client_ip=self._client or address)
        transport.write(_refusal_bytes(problem))
        if self._edge.lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._edge.lingering += 1
        self._lingering = asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    def close(self) -> None:
        self._closing = True
        super().close()

    def eof_received(self) -> None:
        super().eof_received()
        self._peer_is_done()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop()
        self._peer_is_done()
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None
            self._edge.lingering -= 1
        self._let_go()
        super().connection_lost(exc)

    def _peer_is_done(self) -> None:
        if self._peer_done is not None:
            self._peer_done.set()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if self._closing and isinstance(resp, web.StreamResponse) and not resp.prepared:
            resp.force_close()
        try:
            finished = await super().finish_response(request, resp, start_time)
        finally:
            self._answers += 1
            if self._in_flight and self._answers >= self._requests and self._phase not in (_Phase.HEADERS, _Phase.BODY):
                self._request_done()
        if self._linger:
            await self._linger_before_closing()
        elif request.content.exception() is not None and not request.content.is_eof():
            # A body aiohttp could not read (cut short, bad encoding): do not linger on it, which
            # would only raise and log the same error again.
            self.force_close()
        return finished

    async def _linger_before_closing(self) -> None:
        """Half-close after a refusal and drop input for a moment (what was sent after the refusal
        would otherwise make closing reset the connection, and the client lose the refusal)."""
        transport = self.transport
        if transport is None or not transport.can_write_eof():
            return
        self._peer_done = asyncio.Event()
        transport.write_eof()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._peer_done.wait(), LINGER_SECONDS)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Every error aiohttp answers itself, as problem+json that repeats nothing it received."""
        if request.writer.output_size > 0:
            raise ConnectionError("An answer is on its way already; the connection cannot take another.")
        code, detail = self._refusal_for(status, exc)
        if code == "internal_error":
            _log.error("request.failed", error=type(exc).__name__ if exc else None, exc_info=exc)
        else:
            # The parser's message quotes the bytes it refused (maybe a Cookie header): never logged.
            _log.info("http.refused", code=code, error=type(exc).__name__ if exc else None, client_ip=self._peer())
        headers = {REQUEST_ID_HEADER: new_request_id(), "X-Content-Type-Options": "nosniff", "Vary": "Origin",
                   "Server": SERVER}
        if isinstance(exc, OverCap):
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response = problem_response(code, detail, headers)
        response.force_close()
        self._linger = True
        return response

    def _peer(self) -> str | None:
        """What the refusal lines are counted by (observability/log_bounds.py): the client's key,
        or the address of the proxy it came through."""
        if self._client is not None or self.transport is None:
            return self._client
        peer = self.transport.get_extra_info("peername")
        return str(peer[0]) if isinstance(peer, tuple) and peer else None

    def _refusal_for(self, status: int, exc: BaseException | None) -> tuple[str, str]:
        if isinstance(exc, OverCap):
            return exc.problem, exc.message
        if isinstance(exc, RequestTimeout):
            return "request_timeout", exc.message
        if isinstance(exc, HeadersTooLarge):
            return "headers_too_large", exc.message
        if isinstance(exc, LineTooLong):
            return "headers_too_large", f"A header line or the request line exceeds {self.max_field_size} bytes."
        if status >= 500:
            return "internal_error", "The service failed to handle this request."
        return "bad_request", "The request is not valid HTTP/1.1."


def _refusal_bytes(problem: str) -> bytes:
    """A whole HTTP/1.1 answer for a connection refused before its request was read."""
    kind = PROBLEMS[problem]
    body = problem_body(problem, _CAP_DETAILS[problem])
    head = (
        f"HTTP/1.1 {kind.status} {kind.title}\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {RETRY_AFTER_SECONDS}\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"{REQUEST_ID_HEADER}: {new_request_id()}\r\n"
        f"Server: {SERVER}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class _BoundedServer(web.Server):
    """aiohttp's low-level server, making BoundedRequestHandler connections."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: RequestLimits,
        edge: ConnectionLimits,
        loop: asyncio.AbstractEventLoop,
        **kwargs: Any,
    ) -> None:
        protocol_options = {k: v for k, v in kwargs.items() if k not in ("request_factory", "handler_cancellation")}
        super().__init__(handler, loop=loop, **kwargs)
        self._limits = limits
        self._edge = edge
        self._protocol_loop = loop
        self._protocol_options = protocol_options

    def __call__(self) -> BoundedRequestHandler:
        return BoundedRequestHandler(
            self, loop=self._protocol_loop, limits=self._limits, edge=self._edge, **self._protocol_options
        )


class _BoundedAppRunner(web.AppRunner):
    def __init__(
        self,
        app: web.Application,
        *,
        limits: RequestLimits,
        edge: ConnectionLimits,
        shutdown_timeout: float,
        **options: Any,
    ) -> None:
        super().__init__(app, shutdown_timeout=shutdown_timeout, **options)
        self._limits = limits
        self._edge = edge

    async def _make_server(self) -> web.Server:
        # The app's startup, then aiohttp's own server for it: its handler, request factory and
        # connection options are what ours serves with. Those options are the runner's with the
        # app's `handler_args` and `debug` (the loop's) laid over them by `Application._make_handler`;
        # the runner's options alone would drop them (`max_headers=3` became aiohttp's 128).
        plain = await super()._make_server()
        return _BoundedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            limits=self._limits,
            edge=self._edge,
            loop=asyncio.get_running_loop(),
            **plain._kwargs,
        )


def service_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The runner `token-exchange serve` and `token-exchange demo` serve the service with: the app's
    connection limits (create_app makes them, and /readyz and the metrics read them), or its own."""
    edge = app.get(CONNECTION_LIMITS) or ConnectionLimits.from_settings(settings)
    return _BoundedAppRunner(
        app,
        limits=RequestLimits.from_settings(settings),
        edge=edge,
        shutdown_timeout=settings.drain_timeout_seconds,
        access_log_class=AccessLogger,
        keepalive_timeout=KEEPALIVE_TIMEOUT_SECONDS,
        max_field_size=MAX_HEADER_BYTES,
        max_line_size=MAX_HEADER_BYTES,
    )


async def serve(app: web.Application, settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then drain (up to DRAIN_TIMEOUT_SECONDS) and stop."""
    runner = service_runner(app, settings)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        # Everything alive now (modules, the app, its pools) lives as long as the process: out of
        # the collector's sight, the full collections that long-lived state causes stop costing p99.
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
