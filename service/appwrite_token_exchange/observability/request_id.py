"""The request id: the one the service makes for every request, logs and answers with, and forwards
on every Appwrite call it makes while serving that request, so one id finds a request in both logs.

A caller's own X-Request-ID is never that id: any client can send any id, again and again, so it
would join unrelated requests in the log and reach Appwrite as the caller wrote it. When it is
well formed it is logged beside the service's, as `client_request_id`, to correlate with the
caller's (or its proxy's) logs.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

from multidict import MultiMapping

REQUEST_ID_HEADER = "X-Request-ID"
# Set by the request middleware; aiohttp runs each request (and the tasks it starts) in its context.
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# What a caller's id may be to be logged: short, and nothing a log viewer could misread.
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_request_id() -> str:
    return os.urandom(16).hex()


def callers_request_id(headers: MultiMapping[str]) -> str | None:
    """The caller's X-Request-ID when it sent exactly one and it is 1-128 of `[A-Za-z0-9._:-]`."""
    sent = headers.getall(REQUEST_ID_HEADER, ())
    return sent[0] if len(sent) == 1 and _WELL_FORMED.fullmatch(sent[0]) else None


def with_request_id(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the current request's X-Request-ID, when there is a request."""
    request_id = current_request_id.get()
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    return headers
