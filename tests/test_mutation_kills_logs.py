"""The access log line, field by field, and what the logging setup renders: each test fails on a
mutant of observability/logs.py that the redaction and audit tests let through
(scripts/mutation; the equivalent ones are in tests/mutation/equivalent.txt)."""

from __future__ import annotations

import io
import json
import logging
import threading
from typing import Any
from unittest.mock import Mock

import structlog
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from appwrite_token_exchange.keys import CLIENT_IP
from appwrite_token_exchange.observability.logs import AccessLogger, configure_logging
from appwrite_token_exchange.paths import TOKEN_PATH

from tests.support.service import LogLines

PEER = "192.0.2.5"


def access_log(path: str, client: str | None = None) -> None:
    transport = Mock()
    transport.get_extra_info = lambda name, default=None: (PEER, 4321) if name == "peername" else default
    request = make_mocked_request("GET", path, transport=transport)
    if client is not None:
        request[CLIENT_IP] = client
    response = web.Response(status=418, headers={"X-Request-ID": "rid-1"})
    AccessLogger(logging.getLogger("aiohttp.access"), "%a").log(request, response, 0.0123456)


def test_a_request_is_one_line_with_each_field(logs: LogLines) -> None:
    access_log("/healthz?token=secret-in-query", client="203.0.113.9")
    [line] = logs.events("http.request")
    fields = {name: line.get(name) for name in ("client_ip", "method", "path", "status", "duration_ms", "request_id")}
    assert fields == {
        "client_ip": "203.0.113.9",
        "method": "GET",
        "path": "/healthz",
        "status": 418,
        "duration_ms": 12.35,
        "request_id": "rid-1",
    }
    assert line["logger"] == "access"
    assert "secret-in-query" not in logs.text


def test_without_the_middlewares_ip_the_peer_is_logged(logs: LogLines) -> None:
    access_log("/healthz")
    [line] = logs.events("http.request")
    assert line["client_ip"] == PEER


def test_the_token_route_is_left_to_the_audit_log(logs: LogLines) -> None:
    access_log(TOKEN_PATH)
    assert logs.events("http.request") == []


class Sink:
    """A process's stdout as the service sees it in a container: a binary buffer, written to from
    the log writer's thread; a test waits for lines on it (a condition, not a sleep)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._written = threading.Condition()

    def write(self, data: bytes) -> int:
        with self._written:
            self.data += data
            self._written.notify_all()
        return len(data)

    def flush(self) -> None:
        pass

    def lines(self, count: int) -> list[dict[str, Any]]:
        with self._written:
            assert self._written.wait_for(lambda: self.data.count(b"\n") >= count, timeout=5), bytes(self.data)
            return [json.loads(line) for line in bytes(self.data).splitlines()]


class Stdout(io.StringIO):
    def __init__(self, sink: Sink) -> None:
        super().__init__()
        self.buffer = sink


def test_on_a_real_stdout_both_kinds_of_line_are_json_bytes_at_the_level_asked() -> None:
    sink = Sink()
    configure_logging("warning", "json", Stdout(sink), cache_loggers=False)
    ours = structlog.get_logger(logger_name="service")
    ours.info("below the level")
    logging.getLogger("aiohttp.server").info("below the level too")
    ours.warning("ours", jwt="eyJ.secret", attempt=2)
    logging.getLogger("aiohttp.server").warning("theirs %s", "formatted")
    # Lines are written in order: had the two below the level been written, they would be here.
    first, second = sink.lines(2)
    assert len(bytes(sink.data).splitlines()) == 2
    assert {k: first.get(k) for k in ("event", "level", "logger", "jwt", "attempt")} == {
        "event": "ours", "level": "warning", "logger": "service", "jwt": "[redacted]", "attempt": 2,
    }
    assert {k: second.get(k) for k in ("event", "level", "logger")} == {
        "event": "theirs formatted", "level": "warning", "logger": "aiohttp.server",
    }
    assert first["timestamp"].endswith("Z") and second["timestamp"].endswith("Z")


def test_the_console_view_is_text_with_the_same_redaction(logs: LogLines) -> None:
    stream = io.StringIO()
    configure_logging("debug", "console", stream, cache_loggers=False)
    structlog.get_logger(logger_name="service").debug("shown", password="hunter2")
    logging.getLogger("aiohttp.access").debug("stdlib %s", "too")
    text = stream.getvalue()
    assert "shown" in text and "stdlib too" in text and "[redacted]" in text
    assert "hunter2" not in text
    assert not text.lstrip().startswith("{")
