"""Logging: one JSON object per line (or a console view), for our events and for aiohttp's."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import IO, Any, BinaryIO, TextIO, cast

import orjson
import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from appwrite_token_exchange.keys import CLIENT_IP
from appwrite_token_exchange.observability.log_bounds import RefusalSampler, bound_fields
from appwrite_token_exchange.observability.log_writer import BackgroundWriter, TextAdapter
from appwrite_token_exchange.paths import TOKEN_PATH

# Defence in depth: even if a caller passes one of these by mistake, its value never renders.
_SECRET_KEYS = frozenset(
    {"jwt", "session", "secret", "cookie", "cookies", "authorization", "password", "token", "api_key", "key"}
)


def _redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in _SECRET_KEYS.intersection(event):
        event[name] = "[redacted]"
    return event


def _name_logger(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Our loggers carry their name as `logger_name` (structlog's own `logger` is the sink)."""
    if "logger_name" in event:
        event["logger"] = event.pop("logger_name")
    return event


def _json_renderer(binary: bool) -> structlog.typing.Processor:
    """orjson renders each line to bytes; a text stream (the tests' StringIO) gets it decoded."""
    render = structlog.processors.JSONRenderer(serializer=orjson.dumps)
    if binary:
        return render

    def as_text(logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        return cast(bytes, render(logger, name, event)).decode()

    return as_text


def configure_logging(
    level: str = "info", fmt: str = "json", stream: IO[str] | None = None, cache_loggers: bool = True,
    sampler: RefusalSampler | None = None,
) -> None:
    """Our events render straight to the stream (no stdlib logging on the hot path), as bytes
    written to its binary buffer when it has one; stdlib records (aiohttp's own, libraries') go
    through the same processors and a renderer of the same JSON as text.

    Every line's fields are bounded, and the lines a client causes without being charged to a limit
    are sampled per client IP (log_bounds.py). `cache_loggers=False` lets tests reconfigure the
    stream between runs; `sampler` lets them give the sampler a clock.
    """
    out = stream or sys.stdout
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
        bound_fields,
        sampler or RefusalSampler(),
    ]
    console = fmt == "console"
    stdout: BinaryIO | None = None if console else getattr(out, "buffer", None)
    # A real stdout (a pipe, in a container) is written from a thread; see log_writer.py.
    binary = None if stdout is None else BackgroundWriter(stdout)
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False) if console else _json_renderer(binary=False)
    )
    handler = logging.StreamHandler(out if binary is None else TextAdapter(binary))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.configure(
        processors=[
            *shared, _name_logger, structlog.processors.format_exc_info,
            renderer if binary is None else _json_renderer(binary=True),
        ],
        logger_factory=(
            structlog.WriteLoggerFactory(cast(TextIO, out)) if binary is None
            else structlog.BytesLoggerFactory(cast(BinaryIO, binary))
        ),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=cache_loggers,
    )


_access = structlog.get_logger(logger_name="access")


class AccessLogger(AbstractAccessLogger):
    """One structured line per request; the path only, never the query string."""

    AUDITED_PATHS = frozenset({TOKEN_PATH})

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path in self.AUDITED_PATHS:
            # The exchange's own audit event already records this request, with its duration.
            return
        _access.info(
            "http.request",
            client_ip=request.get(CLIENT_IP, request.remote),
            method=request.method,
            path=request.rel_url.path,
            status=response.status,
            duration_ms=round(time * 1000, 2),
            request_id=response.headers.get("X-Request-ID"),
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
