"""The aiohttp internals that service/appwrite_token_exchange/edge/http_server.py relies on, one test
each, named after the internal and failing with a message that names it.

aiohttp has no public hook for what that module does (it swaps the protocol's parser for a wrapper
and replaces `AppRunner._make_server`), so pyproject.toml holds aiohttp to the minor the module was
reviewed on. Before widening that range, run this file on the new aiohttp: a failure here says which
part of the module to read again. The hostile-HTTP tests (tests/test_hostile_http.py) check what
the module does with these; the last test here runs them again with aiohttp's Python parser.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import http_parser, web, web_protocol
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PATCH = "service/appwrite_token_exchange/edge/http_server.py"
PYTHON_PARSER_ONLY = bool(os.environ.get("AIOHTTP_NO_EXTENSIONS"))

try:
    from aiohttp._http_parser import HttpRequestParser as HttpRequestParserC  # type: ignore[import-not-found]
except ImportError:  # no C extension on this platform: the Python parser is the only one
    HttpRequestParserC = None

PARSERS = [pytest.param(http_parser.HttpRequestParserPy, id="python parser")] + (
    [pytest.param(HttpRequestParserC, id="C parser")] if HttpRequestParserC is not None else []
)


def changed(internal: str, how: str) -> str:
    return (f"aiohttp {aiohttp.__version__} changed {internal}: {how}. {PATCH} relies on it: read the "
            f"patch against this aiohttp before allowing it in pyproject.toml")


def parameters(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """(name, kind, default) of each parameter."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


async def ok(request: web.BaseRequest) -> web.StreamResponse:
    return web.Response(text="ok")


@pytest.fixture
def parser_class(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type[Any]:
    """aiohttp's protocol built with the parser given by the test's parameter."""
    cls: type[Any] = request.param
    monkeypatch.setattr(web_protocol, "HttpRequestParser", cls)
    return cls


def feed(protocol: web.RequestHandler, data: bytes) -> tuple[Sequence[Any], bool, bytes]:
    assert protocol._parser is not None
    messages, upgraded, tail = protocol._parser.feed_data(data)
    return messages, upgraded, tail


# -- the protocol and its parser ----------------------------------------------------------------


@pytest.mark.parametrize("parser_class", PARSERS, indirect=True)
async def test_RequestHandler__parser_is_a_slot_holding_the_parser_it_built(parser_class: type[Any]) -> None:
    protocol = web.Server(ok)()
    assert "_parser" in BaseProtocol.__slots__, changed("BaseProtocol.__slots__", "`_parser` is no longer a slot")
    assert type(protocol._parser) is parser_class, changed(
        "RequestHandler._parser", f"the protocol's parser is a {type(protocol._parser)!r}, not the parser it builds"
    )
    # BoundedRequestHandler's __slots__ keep a connection without a __dict__ only if aiohttp's do.
    assert not hasattr(protocol, "__dict__"), changed("RequestHandler.__slots__", "its instances have a __dict__")


class RecordingParser:
    """A parser that keeps what it is fed and makes no message of it."""

    def __init__(self) -> None:
        self.fed: list[bytes] = []

    def feed_data(self, data: bytes) -> tuple[Sequence[Any], bool, bytes]:
        self.fed.append(data)
        return (), False, b""


async def test_RequestHandler_data_received_feeds_every_read_to__parser_feed_data() -> None:
    """The empty read matters: the header deadline calls data_received(b"") to raise its refusal."""
    protocol = web.Server(ok)()
    parser = protocol._parser = RecordingParser()  # type: ignore[assignment]
    protocol.data_received(b"GET")
    protocol.data_received(b"")
    fed = parser.fed
    assert fed == [b"GET", b""], changed("RequestHandler.data_received", f"it fed the parser {fed!r}, not each read")


class Refused(HttpProcessingError):
    code = 431


@pytest.fixture(params=["raised", "returned as _ErrInfo"])
async def refusing_server(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[int, list[tuple[int, BaseException | None]]]]:
    """aiohttp's server on a port, with a parser that refuses the first read with `Refused`, raised
    (as aiohttp's parsers do) or returned as the error message aiohttp makes of a raised one (as
    BoundedRequestHandler does, without a traceback), and a protocol that records handle_error's
    calls: (port, calls)."""
    calls: list[tuple[int, BaseException | None]] = []

    class Raising:
        def __init__(self, parser: Any) -> None:
            self._parser = parser

        def feed_data(self, data: bytes) -> Any:
            refusal = Refused(message="refused")
            if request.param == "raised":
                raise refusal
            error = web_protocol._ErrInfo(status=400, exc=refusal, message=refusal.message)
            return [(error, EMPTY_PAYLOAD)], False, b""

        def __getattr__(self, name: str) -> Any:
            return getattr(self._parser, name)

    class Protocol(web.RequestHandler):
        def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                         message: str | None = None) -> web.StreamResponse:
            calls.append((status, exc))
            response = web.Response(status=431, text="refused")
            response.force_close()
            return response

    class Server(web.Server):
        def __call__(self) -> web.RequestHandler:
            protocol = Protocol(self, loop=asyncio.get_running_loop())
            protocol._parser = Raising(protocol._parser)  # type: ignore[assignment]
            return protocol

    server = await asyncio.get_running_loop().create_server(Server(ok), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], calls
    finally:
        server.close()
        await server.wait_closed()


async def test_a_parser_HttpProcessingError_or__ErrInfo_reaches_RequestHandler_handle_error_as_its_exc(
    refusing_server: tuple[int, list[tuple[int, BaseException | None]]],
) -> None:
    """The 408 and 431 refusals are raised from the parser's feed_data and told apart in
    handle_error by the exception's class (aiohttp passes 400 as the status whatever it is)."""
    port, calls = refusing_server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            answer = await reader.read()
    finally:
        writer.close()
    assert [type(exc) for _, exc in calls] == [Refused], changed(
        "RequestHandler.data_received/handle_error", f"a parser's HttpProcessingError reached handle_error as {calls!r}"
    )
    assert re.match(rb"HTTP/1\.[01] 431 ", answer), changed(
        "RequestHandler.handle_error", f"the response it returns was not the answer sent: {answer[:40]!r}"
    )


@pytest.mark.parametrize("parser_class", PARSERS, indirect=True)
async def test_parser_feed_data_gives_messages_upgraded_and_tail(parser_class: type[Any]) -> None:
    """_Metered reads each message's payload (EMPTY_PAYLOAD when there is no body, else a
    StreamReader that says when its body is complete) and the upgraded flag."""
    protocol = web.Server(ok)()
    messages, upgraded, tail = feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (len(messages), upgraded, tail) == (1, False, b""), changed(
        f"{parser_class.__qualname__}.feed_data", "it no longer returns (messages, upgraded, tail)"
    )
    assert messages[0][1] is EMPTY_PAYLOAD, changed("the parser's messages", "a request without a body has a payload")
    messages, _, _ = feed(protocol, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{")
    body = messages[0][1]
    assert isinstance(body, StreamReader) and not body.is_eof(), changed(
        "the parser's messages", f"an unfinished body is {body!r}"
    )
    ended: list[bool] = []
    body.on_eof(lambda: ended.append(True))
    feed(protocol, b"}")
    assert ended == [True], changed("StreamReader.on_eof", "it is not called when the body is complete")
    upgrade = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframe"
    messages, upgraded, tail = feed(web.Server(ok)(), upgrade)
    assert (len(messages), upgraded, tail) == (1, True, b"frame"), changed(
        f"{parser_class.__qualname__}.feed_data", "an upgrade no longer gives upgraded=True and the bytes after it"
    )


@pytest.mark.parametrize("parser_class", PARSERS, indirect=True)
async def test_parser_raises_LineTooLong_past_max_field_size_and_an_HttpProcessingError_past_max_headers(
    parser_class: type[Any],
) -> None:
    """handle_error answers LineTooLong with 431 `headers_too_large` and quotes max_field_size."""
    protocol = web.Server(ok, max_field_size=100, max_headers=3)()
    assert protocol.max_field_size == 100, changed("RequestHandler.max_field_size", "the attribute is gone")
    with pytest.raises(LineTooLong):
        feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"v" * 200 + b"\r\n\r\n")
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(5))
    with pytest.raises(BadHttpMessage):
        feed(web.Server(ok, max_headers=3)(), b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")


def test_parsers_take_set_upgraded_and_RequestHandler_finish_response_gives_an_upgrade_back_through_it() -> None:
    """_Metered.set_upgraded learns that a declined upgrade is parsed as HTTP again."""
    for cls in (http_parser.HttpRequestParserPy, HttpRequestParserC):
        if cls is not None:
            assert callable(getattr(cls, "set_upgraded", None)), changed(f"{cls.__qualname__}.set_upgraded", "gone")
    source = inspect.getsource(web.RequestHandler.finish_response)
    assert "self._parser.set_upgraded(False)" in source, changed(
        "RequestHandler.finish_response", "it no longer calls self._parser.set_upgraded(False) for a declined upgrade"
    )


def test_RequestHandler_init_takes_the_manager_the_loop_and_the_connection_options() -> None:
    found = {name: kind for name, kind, _ in parameters(web.RequestHandler.__init__)}
    wanted = {"manager": inspect.Parameter.POSITIONAL_OR_KEYWORD, "loop": inspect.Parameter.KEYWORD_ONLY}
    wanted |= dict.fromkeys(("keepalive_timeout", "access_log_class", "debug", "max_line_size", "max_headers",
                             "max_field_size"), inspect.Parameter.KEYWORD_ONLY)
    assert {name: found.get(name) for name in wanted} == wanted, changed("RequestHandler.__init__", f"{found}")


def test_RequestHandler_handle_error_signature() -> None:
    empty = inspect.Parameter.empty
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert parameters(web.RequestHandler.handle_error) == [
        ("self", positional, empty), ("request", positional, empty), ("status", positional, 500),
        ("exc", positional, None), ("message", positional, None),
    ], changed("RequestHandler.handle_error", str(inspect.signature(web.RequestHandler.handle_error)))


def test_RequestHandler_finish_response_signature() -> None:
    function = web.RequestHandler.finish_response
    names = [name for name, _, _ in parameters(function)]
    assert inspect.iscoroutinefunction(function) and names == ["self", "request", "resp", "start_time"], changed(
        "RequestHandler.finish_response", str(inspect.signature(function))
    )


async def test_RequestHandler__close_drops_reads_and_a_connection_never_made_can_be_lost() -> None:
    """A connection refused at accept never calls RequestHandler.connection_made: it sets `_close`
    so that what arrives is not parsed, and aiohttp's connection_lost must cope with it."""
    protocol = web.Server(ok)()
    parser = protocol._parser = RecordingParser()  # type: ignore[assignment]
    protocol._close = True
    protocol.data_received(b"GET / HTTP/1.1\r\n")
    assert parser.fed == [], changed("RequestHandler.data_received", "it parses reads after _close is set")
    try:
        protocol.connection_lost(None)
    except Exception as error:
        message = changed("RequestHandler.connection_lost", f"fails on a connection never made: {error!r}")
        raise AssertionError(message) from error


def test_RequestHandler_close_force_close_eof_received_connection_lost() -> None:
    """BoundedRequestHandler overrides close, eof_received and connection_lost and calls force_close."""
    for name, wanted in (("close", ["self"]), ("force_close", ["self"]), ("eof_received", ["self"]),
                         ("connection_lost", ["self", "exc"])):
        names = [name for name, _, _ in parameters(getattr(web.RequestHandler, name))]
        assert names == wanted, changed(f"RequestHandler.{name}", str(names))


async def test_the_writer_counts_output_size() -> None:
    """handle_error refuses to answer once part of an answer is on its way (request.writer.output_size)."""
    protocol = web.Server(ok)()
    writer = aiohttp.http_writer.StreamWriter(protocol, asyncio.get_running_loop())
    assert writer.output_size == 0, changed("StreamWriter.output_size", "gone")


def test_pyproject_allows_only_the_minor_the_patch_was_reviewed_on() -> None:
    (line,) = [r for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
               if canonicalize_name(Requirement(r).name) == "aiohttp"]
    installed = Version(aiohttp.__version__)
    next_minor = Version(f"{installed.major}.{installed.minor + 1}.0")
    allowed = Requirement(line).specifier
    assert installed in allowed and next_minor not in allowed, (
        f"pyproject.toml allows {line!r}: only aiohttp {installed.major}.{installed.minor}.x, which {PATCH} was "
        f"reviewed on, may be allowed until the patch is read against the next minor and this file passes on it"
    )


# -- the server and the runner ------------------------------------------------------------------


async def test_Server_init_takes_the_handler_request_factory_handler_cancellation_loop_and_protocol_options() -> None:
    def factory(*args: Any) -> web.BaseRequest:
        raise AssertionError("not called")

    loop = asyncio.get_running_loop()
    server = web.Server(ok, request_factory=factory, handler_cancellation=True, loop=loop, max_headers=3)
    seen = (server.request_handler, server.request_factory, server.handler_cancellation,
            getattr(server, "_kwargs", None))
    assert seen == (ok, factory, True, {"max_headers": 3}), changed(
        "web.Server.__init__", f"it keeps (request_handler, request_factory, handler_cancellation, _kwargs) as {seen!r}"
    )


async def test_AppRunner__make_server_is_what_setup_serves_and_carries_the_app_s_handler_args_and_debug() -> None:
    """_BoundedAppRunner builds its server from the one aiohttp's _make_server made, options and all."""
    function = web.AppRunner._make_server
    assert inspect.iscoroutinefunction(function) and [n for n, _, _ in parameters(function)] == ["self"], changed(
        "AppRunner._make_server", str(inspect.signature(function))
    )
    made: list[web.Server] = []

    class Runner(web.AppRunner):
        async def _make_server(self) -> web.Server:
            made.append(await super()._make_server())
            return made[-1]

    app = web.Application(handler_args={"max_headers": 3})
    runner = Runner(app, keepalive_timeout=5.0)
    await runner.setup()
    try:
        assert made and runner.server is made[0], changed("AppRunner.setup", "it does not serve what _make_server made")
        kwargs = getattr(made[0], "_kwargs", {})
        options = {name: kwargs.get(name) for name in ("max_headers", "keepalive_timeout", "debug")}
        debug = asyncio.get_running_loop().get_debug()
        assert options == {"max_headers": 3, "keepalive_timeout": 5.0, "debug": debug}, changed(
            "AppRunner._make_server / Application._make_handler", f"the server's protocol options are {kwargs!r}"
        )
    finally:
        await runner.cleanup()


# -- the hostile-HTTP tests with aiohttp's other parser --------------------------------------------


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.timeout(300)
@pytest.mark.skipif(PYTHON_PARSER_ONLY, reason="this whole run uses aiohttp's Python parser already")
def test_the_hostile_http_tests_pass_with_aiohttp_s_python_parser() -> None:
    """aiohttp picks its parser once, at import, from AIOHTTP_NO_EXTENSIONS: so in a child pytest.
    The child's own test_the_parser_in_use_is_the_one_asked_for checks which parser served it."""
    env = {name: value for name, value in os.environ.items() if name != "PYTEST_ADDOPTS"}
    env |= {"AIOHTTP_NO_EXTENSIONS": "1", "TESTS_AIOHTTP_PARSER": "python"}
    command = [sys.executable, "-m", "pytest", "tests/test_hostile_http.py", "-p", "no:cacheprovider", "-v"]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280, check=False)
    output = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, output
    assert re.search(r"test_the_parser_in_use_is_the_one_asked_for PASSED", run.stdout), output
    assert not re.search(r"\b(failed|error|skipped|deselected)\b", run.stdout.splitlines()[-1]), output
