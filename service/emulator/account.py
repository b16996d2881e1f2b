"""The Appwrite REST routes the token service uses: JWTs, account, sessions and the version.

Each handler follows the order of checks of the real route (scope, blocked, MFA, rate limit, then
the route's own parameters), because callers can tell those orders apart.
"""

from __future__ import annotations

import hmac
import json
import re
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from aiohttp import web

from service.emulator.auth import Caller, client_ip, identify, require_account
from service.emulator.errors import AppwriteError
from service.emulator.keys import EMULATOR_CONFIG, EMULATOR_STATE
from service.emulator.limits import WindowDecision
from service.emulator.models import account_model, session_model
from service.emulator.state import DEFAULT_SESSION_TTL
from service.emulator.tokens import mint

DEFAULT_DURATION = 900
MAX_DURATION = 3600
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

routes = web.RouteTableDef()


def caller_of(request: web.Request) -> Caller:
    state = request.app[EMULATOR_STATE]
    return identify(state, request.cookies, request.headers, request.headers.get("X-Appwrite-JWT", ""))


def has_api_key(request: web.Request) -> bool:
    key = request.headers.get("X-Appwrite-Key", "")
    return bool(key) and hmac.compare_digest(key.encode(), request.app[EMULATOR_CONFIG].api_key.encode())


async def params(request: web.Request) -> dict[str, Any]:
    """Query and body parameters merged, body winning, like Appwrite's request parser.

    A body that does not parse counts as no parameters at all, as it does on the real server.
    """
    merged: dict[str, Any] = dict(request.query)
    # body_exists, not can_read_body: the recorder has already read (and cached) the body.
    if request.body_exists:
        raw = await request.read()
        if request.content_type == "application/json" or raw.lstrip().startswith(b"{"):
            try:
                body = json.loads(raw) if raw else {}
            except (ValueError, UnicodeDecodeError):
                body = {}
            if isinstance(body, dict):
                merged.update(body)
        else:
            merged.update(await request.post())
    return merged


def _duration(value: Any) -> int:
    """Appwrite's Range(0, 3600) on `duration`; numeric strings pass, as they do in PHP."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= MAX_DURATION:
        raise AppwriteError(
            "general_argument_invalid",
            "Invalid `duration` param: Value must be a valid range between 0 and 3,600",
        )
    return value


@routes.post("/v1/account/jwts")
@routes.post("/v1/account/jwt")
async def create_jwt(request: web.Request) -> web.Response:
    config = request.app[EMULATOR_CONFIG]
    state = request.app[EMULATOR_STATE]
    caller = caller_of(request)
    user = require_account(caller)

    limit, seconds = config.jwt_limit
    headers: dict[str, str] = {}
    if limit:
        # Both paths are one route to Appwrite, so they share one window per user.
        decision: WindowDecision = state.limiter.hit(("jwts", user.id), limit, seconds)
        headers = decision.headers()
        if not decision.allowed:
            raise AppwriteError("general_rate_limit_exceeded", headers=headers)
    try:
        if caller.used_jwt and config.refuses_jwt_minting_with_jwt:
            raise AppwriteError("user_jwt_creation_denied")
        duration = DEFAULT_DURATION
        if config.honours_duration:
            given = await params(request)
            # As with PHP's `??`, an explicit null is the same as leaving the parameter out.
            raw = given.get("duration")
            duration = DEFAULT_DURATION if raw is None else _duration(raw)
        session = caller.session
        if session is None:
            # A JWT caller on 1.9.6 and older: there is no session secret to bind the token to.
            raise AppwriteError("user_session_not_found")
    except AppwriteError as error:
        error.headers.update(headers)
        raise
    token = mint(user.id, session.id, int(state.now()) + duration, config.jwt_secret)
    state.jwts_issued += 1
    return web.json_response({"jwt": token}, status=201, headers=headers)


@routes.get("/v1/account")
async def get_account(request: web.Request) -> web.Response:
    return web.json_response(account_model(require_account(caller_of(request))))


@routes.get("/v1/account/sessions/current")
async def get_current_session(request: web.Request) -> web.Response:
    caller = caller_of(request)
    require_account(caller)
    if caller.session is None:
        raise AppwriteError("user_session_not_found")
    # With an API key Appwrite shows the stored secret, which is only a hash of the real one.
    secret = caller.session.secret_hash if has_api_key(request) else ""
    return web.json_response(session_model(caller.session, current=True, secret=secret))


@routes.delete("/v1/account/sessions/{session_id}")
async def delete_session(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    caller = caller_of(request)
    # Logging out is in Appwrite's "mfa" group: allowed before the second factor.
    user = require_account(caller, check_factors=False)
    wanted = request.match_info["session_id"]
    if wanted == "current":
        if caller.session is None:
            raise AppwriteError("user_session_not_found")
        wanted = caller.session.id
    session = state.sessions.get(wanted)
    if session is None or session.user_id != user.id:
        raise AppwriteError("user_session_not_found")
    state.delete_session(session.id)
    # Appwrite's empty answers still name a content type, and its SDKs read that header on every
    # success (the Python SDK fails without it).
    response = web.Response(status=204, headers={"Content-Type": "text/html; charset=UTF-8"})
    if caller.session is not None and caller.session.id == session.id:
        _expire_cookies(request, response)
    return response


@routes.post("/v1/account/sessions/email")
@routes.post("/v1/account/sessions")
async def create_email_session(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    given = await params(request)
    email, password = given.get("email", ""), given.get("password", "")
    if not isinstance(email, str) or not _EMAIL.fullmatch(email):
        raise AppwriteError("general_argument_invalid", "Invalid `email` param: Value must be a valid email address")
    if not isinstance(password, str) or not 8 <= len(password) <= 256:
        raise AppwriteError(
            "general_argument_invalid",
            "Invalid `password` param: Password must be between 8 and 256 characters long.",
        )
    user = state.user_by_email(email)
    if user is None or not user.password_matches(password):
        raise AppwriteError("user_invalid_credentials")
    if not user.status:
        raise AppwriteError("user_blocked")
    session_id, value = state.create_session(user.id, DEFAULT_SESSION_TTL, ip=client_ip(request))
    session = state.sessions[session_id]
    body = session_model(session, current=True, secret=value if has_api_key(request) else "")
    response = web.json_response(body, status=201)
    _set_cookies(request, response, value, int(session.expire))
    return response


@routes.get("/v1/health/version")
async def health_version(request: web.Request) -> web.Response:
    return web.json_response({"version": request.app[EMULATOR_CONFIG].version})


def _cookie_names(request: web.Request) -> tuple[str, str]:
    name = f"a_session_{request.app[EMULATOR_CONFIG].project_id}"
    return name, f"{name}_legacy"


def _set_cookies(request: web.Request, response: web.Response, value: str, expires: int) -> None:
    """Both cookies Appwrite sets: SameSite=None on the main one, none on the legacy twin.

    Like Swoole, the value is URL-encoded in Set-Cookie (base64 `=` becomes `%3D`).
    """
    main, legacy = _cookie_names(request)
    secure = request.secure
    encoded = quote(value, safe="")
    when = _http_date(expires)
    response.set_cookie(legacy, encoded, expires=when, path="/", httponly=True, secure=secure)
    response.set_cookie(main, encoded, expires=when, path="/", httponly=True, secure=secure, samesite="None")


def _expire_cookies(request: web.Request, response: web.StreamResponse) -> None:
    main, legacy = _cookie_names(request)
    gone = _http_date(int(request.app[EMULATOR_STATE].now()) - 3600)
    response.set_cookie(legacy, "", expires=gone, path="/", httponly=True, secure=request.secure)
    response.set_cookie(main, "", expires=gone, path="/", httponly=True, secure=request.secure, samesite="None")


def _http_date(timestamp: int) -> str:
    return formatdate(timestamp, usegmt=True)
