"""The control API under `/_emulator/`: set up users and sessions, inject faults, inspect traffic.

Not part of Appwrite. Errors use Appwrite's error shape so one client can read both APIs; the
refusals of guard.py (Host, Origin, content type), which every route here sits behind, do not.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from appwrite_token_exchange.emulator.config import EmulatorConfig
from appwrite_token_exchange.emulator.errors import AppwriteError
from appwrite_token_exchange.emulator.faults import Fault
from appwrite_token_exchange.emulator.guard import guarded
from appwrite_token_exchange.emulator.keys import EMULATOR_CONFIG, EMULATOR_STATE, FAULTS, REALTIME, RECORDER
from appwrite_token_exchange.emulator.state import DEFAULT_SESSION_TTL

_table = web.RouteTableDef()


async def _json_object(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise AppwriteError("general_argument_invalid", "The body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise AppwriteError("general_argument_invalid", "The body must be a JSON object.")
    return body


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = body.get(name, default)
    if value is default:
        return value
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise AppwriteError("general_argument_invalid", f"Invalid `{name}` param.")
    return value


def _invalid(message: str) -> AppwriteError:
    return AppwriteError("general_argument_invalid", message)


@_table.post("/_emulator/users")
async def create_user(request: web.Request) -> web.Response:
    body = await _json_object(request)
    email = _field(body, "email", str, "")
    password = _field(body, "password", str, "")
    if not email or not password:
        raise _invalid("`email` and `password` are required.")
    try:
        user = request.app[EMULATOR_STATE].create_user(
            email,
            password,
            name=_field(body, "name", str, ""),
            user_id=_field(body, "userId", str, None),
            mfa=_field(body, "mfa", bool, False),
        )
    except ValueError as error:
        kind = "user_already_exists" if "exists" in str(error) else "general_argument_invalid"
        raise AppwriteError(kind, str(error)) from None
    return web.json_response({"userId": user.id}, status=201)


@_table.post("/_emulator/users/{user_id}/block")
async def block_user(request: web.Request) -> web.Response:
    body = await _json_object(request)
    blocked = _field(body, "blocked", bool, True)
    user_id = request.match_info["user_id"]
    try:
        request.app[EMULATOR_STATE].block_user(user_id, blocked)
    except KeyError:
        raise AppwriteError("user_not_found") from None
    return web.json_response({"userId": user_id, "blocked": blocked})


@_table.post("/_emulator/sessions")
async def create_session(request: web.Request) -> web.Response:
    body = await _json_object(request)
    user_id = _field(body, "userId", str, "")
    ttl = _field(body, "ttlSeconds", int, DEFAULT_SESSION_TTL)
    factors = _field(body, "factors", list, ["password"])
    if not all(isinstance(factor, str) for factor in factors):
        raise _invalid("`factors` must be a list of strings.")
    try:
        session_id, secret = request.app[EMULATOR_STATE].create_session(user_id, ttl, factors=factors)
    except KeyError:
        raise AppwriteError("user_not_found") from None
    return web.json_response({"sessionId": session_id, "secret": secret}, status=201)


@_table.delete("/_emulator/sessions/{session_id}")
async def delete_session(request: web.Request) -> web.Response:
    if not request.app[EMULATOR_STATE].delete_session(request.match_info["session_id"]):
        raise AppwriteError("user_session_not_found")
    return web.Response(status=204)


@_table.post("/_emulator/reset")
async def reset(request: web.Request) -> web.Response:
    """Faults, rate-limit windows and recordings go; users and sessions stay unless asked."""
    body = await _json_object(request)
    state = request.app[EMULATOR_STATE]
    request.app[FAULTS].clear()
    request.app[RECORDER].clear()
    request.app[REALTIME].forget_history()
    state.reset_counters()
    if _field(body, "accounts", bool, False):
        state.clear_accounts()
    return web.Response(status=204)


@_table.get("/_emulator/faults")
async def list_faults(request: web.Request) -> web.Response:
    return web.json_response([fault.to_json() for fault in request.app[FAULTS].active()])


@_table.post("/_emulator/faults")
async def add_fault(request: web.Request) -> web.Response:
    try:
        fault = Fault.from_json(await _json_object(request))
    except ValueError as error:
        raise _invalid(str(error)) from None
    request.app[FAULTS].add(fault)
    return web.json_response(fault.to_json(), status=201)


@_table.delete("/_emulator/faults")
async def clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS].clear()
    return web.Response(status=204)


@_table.get("/_emulator/requests")
async def recorded_requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[RECORDER].find(request.query.get("path")))


@_table.get("/_emulator/stats")
async def stats(request: web.Request) -> web.Response:
    hub = request.app[REALTIME]
    return web.json_response(
        {
            "requests": dict(request.app[RECORDER].counts),
            "jwtsIssued": request.app[EMULATOR_STATE].jwts_issued,
            "hanging": request.app[FAULTS].hanging,
            "realtime": {"connects": hub.connects, "open": hub.open_count},
            "mode": request.app[EMULATOR_CONFIG].mode,
            "version": request.app[EMULATOR_CONFIG].version,
        }
    )


def _platform_hostname(raw: str) -> str:
    """A Web platform's hostname; an origin (`https://app.example.com:8443`) is cut to its host."""
    hostname = raw.strip().lower()
    if "://" in hostname:
        hostname = hostname.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2].partition(":")[0]
    try:
        EmulatorConfig(platforms=(hostname,))
    except ValueError as error:
        raise _invalid(str(error)) from None
    return hostname


@_table.get("/_emulator/platforms")
async def list_platforms(request: web.Request) -> web.Response:
    return web.json_response({"hostnames": list(request.app[REALTIME].platforms)})


@_table.post("/_emulator/platforms")
async def add_platform(request: web.Request) -> web.Response:
    """Register a Web platform: Realtime then accepts handshakes whose Origin has this host."""
    hostname = _platform_hostname(_field(await _json_object(request), "hostname", str, ""))
    request.app[REALTIME].platforms[hostname] = None
    return web.json_response({"hostname": hostname}, status=201)


@_table.delete("/_emulator/platforms/{hostname}")
async def delete_platform(request: web.Request) -> web.Response:
    if request.app[REALTIME].platforms.pop(request.match_info["hostname"].lower(), False) is False:
        raise AppwriteError("general_argument_invalid", "No such platform.")
    return web.Response(status=204)


@_table.get("/_emulator/realtime/connections")
async def realtime_connections(request: web.Request) -> web.Response:
    open_only = request.query.get("open", "").lower() in ("1", "true")
    return web.json_response(request.app[REALTIME].history(open_only=open_only))


@_table.post("/_emulator/realtime/publish")
async def realtime_publish(request: web.Request) -> web.Response:
    """One event; per-user (`userId`: channels default to that user's account channels, role
    `user:<id>`), explicit `roles`, or public (role `any`) when neither is given."""
    body = await _json_object(request)
    user_id = _field(body, "userId", str, None)
    channels = _field(body, "channels", list, None)
    if channels is None:
        if user_id is None:
            raise _invalid("`channels` is required unless `userId` is given.")
        channels = ["account", f"account.{user_id}"]
    roles = _field(body, "roles", list, None)
    if roles is None:
        roles = [f"user:{user_id}"] if user_id is not None else ["any"]
    events = _field(body, "events", list, [])
    payload = _field(body, "payload", dict, {})
    for name, values in (("channels", channels), ("roles", roles)):
        if not values or not all(isinstance(value, str) for value in values):
            raise _invalid(f"`{name}` must be a non-empty list of strings.")
    if not all(isinstance(event, str) for event in events):
        raise _invalid("`events` must be a list of strings.")
    delivered = await request.app[REALTIME].publish(channels, events, payload, roles)
    return web.json_response({"delivered": delivered})


@_table.post("/_emulator/realtime/disconnect")
async def realtime_disconnect(request: web.Request) -> web.Response:
    body = await _json_object(request)
    code = _field(body, "code", int, 1011)
    if not 1000 <= code <= 4999:
        raise _invalid("`code` must be a WebSocket close code (1000-4999).")
    closed = await request.app[REALTIME].disconnect(_field(body, "userId", str, None), code)
    return web.json_response({"closed": closed})


# Guarded here rather than by a middleware, so that every app serving these routes (the lean
# emulator of bench/ builds its own) serves them behind the same checks.
routes: list[web.RouteDef] = [
    web.RouteDef(route.method, route.path, guarded(route.handler), route.kwargs)
    for route in _table
    if isinstance(route, web.RouteDef)
]
