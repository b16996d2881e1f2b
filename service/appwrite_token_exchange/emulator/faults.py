"""Injected failures: slow, broken, dropped or hung answers on chosen Appwrite routes.

Faults live until cleared or until their `times` runs out; the first active fault whose path
matches a request decides what happens to it. Control-API routes are never faulted.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import count
from typing import Any, Literal, get_args

from aiohttp import web
from aiohttp.typedefs import Handler

from appwrite_token_exchange.emulator.errors import CATALOGUE, AppwriteError, type_for_status
from appwrite_token_exchange.emulator.keys import EMULATOR_CONFIG, EMULATOR_STATE, FAULTS, SHUTTING_DOWN
from appwrite_token_exchange.emulator.tokens import mint

FaultKind = Literal["latency", "status", "rate_limit", "drop", "garbage", "hang", "no_jwt", "bad_signature", "not_json"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
DEFAULT_PATH = "/v1/account/jwts"
# The JWT route answers on two paths; a fault on either covers both.
_ALIASES = {"/v1/account/jwt": "/v1/account/jwts"}
# What a hung request checks, between naps, to notice that its client has given up.
_HANG_POLL_SECONDS = 0.05


@dataclass
class Fault:
    kind: str
    path: str = DEFAULT_PATH
    ms: int = 0
    status: int = 500
    times: int | None = None  # None: until cleared
    type: str | None = None
    message: str | None = None
    id: int = 0  # given by the store

    def matches(self, path: str) -> bool:
        if self.path == "*":
            return True
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return _ALIASES.get(path, path) == _ALIASES.get(self.path, self.path)

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Fault:
        """A fault from the control API's JSON; ValueError says what is wrong."""
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        fault = cls(kind=kind)
        for name, low in (("ms", 0), ("status", 100), ("times", 1)):
            if name in body and body[name] is not None:
                value = body[name]
                if not isinstance(value, int) or isinstance(value, bool) or value < low:
                    raise ValueError(f"{name} must be a whole number of at least {low}")
                setattr(fault, name, value)
        if fault.status > 599:
            raise ValueError("status must be an HTTP status code")
        for name in ("path", "type", "message"):
            if name in body and body[name] is not None:
                if not isinstance(body[name], str) or not body[name]:
                    raise ValueError(f"{name} must be a non-empty string")
                setattr(fault, name, body[name])
        if fault.type is not None and fault.type not in CATALOGUE:
            raise ValueError(f"type {fault.type!r} is not an Appwrite error type the emulator knows")
        return fault


class FaultStore:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = count(1)
        # Requests a "hang" fault is holding right now, so tests can see them let go.
        self.hanging = 0

    def add(self, fault: Fault) -> None:
        fault.id = next(self._ids)
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[Fault]:
        return list(self._faults)

    def take(self, path: str) -> Fault | None:
        """The fault for this request, spending one of its `times`."""
        for fault in self._faults:
            if fault.matches(path):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None


@web.middleware
async def apply_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/"):
        return await handler(request)
    fault = request.app[FAULTS].take(request.path)
    if fault is None:
        return await handler(request)
    return await _FAULTS[fault.kind](request, handler, fault)


async def _latency(request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
    await asyncio.sleep(fault.ms / 1000)
    return await handler(request)


async def _status(request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
    raise AppwriteError(fault.type or type_for_status(fault.status), fault.message, status=fault.status)


async def _rate_limit(request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
    state = request.app[EMULATOR_STATE]
    limit, seconds = request.app[EMULATOR_CONFIG].jwt_limit
    reset = (int(state.now()) // seconds + 1) * seconds
    headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    raise AppwriteError("general_rate_limit_exceeded", fault.message, headers=headers)


async def _drop(request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
    if request.transport is not None:
        request.transport.close()
    # Nothing can be written any more; the empty response only ends the handler.
    return web.Response(status=500)


async def _garbage(request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
    return web.Response(status=201, body=b'{"jwt": "eyJ\x00\xff<truncated', content_type="application/json")


async def _not_json(request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
    page = "<!DOCTYPE html><html><head><title>Welcome</title></head><body>Captive portal</body></html>"
    return web.Response(status=201, text=page, content_type="text/html")


async def _no_jwt(request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
    return web.json_response({}, status=201)


async def _bad_signature(request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
    """The real answer, but re-signed with a key that is not the instance key."""
    response = await handler(request)
    if response.status != 201 or not isinstance(response, web.Response) or response.body is None:
        return response
    assert isinstance(response.body, bytes)
    token = json.loads(response.body).get("jwt", "")
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other_key = "not-" + request.app[EMULATOR_CONFIG].jwt_secret
    forged = mint(claims["userId"], claims["sessionId"], claims["exp"], other_key)
    replaced = web.json_response({"jwt": forged}, status=201)
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        if name in response.headers:
            replaced.headers[name] = response.headers[name]
    return replaced


async def _hang(request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
    """Never answer: wait until the client disconnects or the emulator shuts down."""
    shutting_down = request.app[SHUTTING_DOWN]
    store = request.app[FAULTS]
    store.hanging += 1
    try:
        while request.transport is not None and not request.transport.is_closing():
            if shutting_down.is_set():
                break
            try:
                await asyncio.wait_for(shutting_down.wait(), _HANG_POLL_SECONDS)
            except TimeoutError:
                continue
    finally:
        store.hanging -= 1
    raise AppwriteError("general_server_error", status=503)


_FAULTS = {
    "latency": _latency,
    "status": _status,
    "rate_limit": _rate_limit,
    "drop": _drop,
    "garbage": _garbage,
    "not_json": _not_json,
    "no_jwt": _no_jwt,
    "bad_signature": _bad_signature,
    "hang": _hang,
}
