"""Logging: one JSON object per line (or a console view), for our events and for aiohttp's."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import IO, Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

# Defence in depth: even if a caller passes one of these by mistake, its value never renders.
_SECRET_KEYS = frozenset(
    {"jwt", "session", "secret", "cookie", "cookies", "authorization", "password", "token", "api_key", "key"}
)


def _redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in _SECRET_KEYS.intersection(event):
        event[name] = "[redacted]"
    return event


def configure_logging(level: str = "info", fmt: str = "json", stream: IO[str] | None = None) -> None:
    """Route structlog and stdlib logging (aiohttp included) through one renderer."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
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
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )


class AccessLogger(AbstractAccessLogger):
    """One structured line per request; the path only, never the query string."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        structlog.get_logger("access").info(
            "http.request",
            method=request.method,
            path=request.rel_url.path,
            status=response.status,
            duration_ms=round(time * 1000, 2),
            request_id=response.headers.get("X-Request-ID"),
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
