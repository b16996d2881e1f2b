"""The request id: the one the service logs and answers with, forwarded on every Appwrite call it
makes while serving that request, so one id finds a request in both logs."""

from __future__ import annotations

import os
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
# Set by the request middleware; aiohttp runs each request (and the tasks it starts) in its context.
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    return os.urandom(16).hex()


def with_request_id(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the current request's X-Request-ID, when there is a request."""
    request_id = current_request_id.get()
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    return headers
