"""A bounded log of the requests the emulator received, so tests can see exactly what was sent.

Everything is kept verbatim, secrets included: this is a test double, and proving which headers
a caller forwarded is its point. Control-API calls are not recorded.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from appwrite_token_exchange.emulator.keys import EMULATOR_STATE, RECORDER

MAX_RECORDED = 1000


class RequestRecorder:
    def __init__(self, limit: int = MAX_RECORDED) -> None:
        self._requests: deque[dict[str, Any]] = deque(maxlen=limit)
        self.counts: Counter[str] = Counter()

    def add(self, entry: dict[str, Any], route: str) -> None:
        self._requests.append(entry)
        self.counts[route] += 1

    def find(self, path: str | None = None) -> list[dict[str, Any]]:
        return [entry for entry in self._requests if path is None or entry["path"] == path]

    def clear(self) -> None:
        self._requests.clear()
        self.counts.clear()


def _route_name(request: web.Request) -> str:
    """`METHOD /path/{param}`: the route's pattern, so counts are not split by IDs."""
    resource = request.match_info.route.resource
    pattern = resource.canonical if resource is not None else request.path
    return f"{request.method} {pattern}"


@web.middleware
async def record_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_emulator/"):
        return await handler(request)
    raw = await request.read()
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            body = raw.decode("utf-8", "replace")
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    request.app[RECORDER].add(
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": headers,
            "body": body,
            "remote": request.remote,
            "at": request.app[EMULATOR_STATE].now(),
        },
        _route_name(request),
    )
    return await handler(request)
