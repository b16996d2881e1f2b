"""The Appwrite REST routes the token service uses: JWTs, account, sessions and the version.

Each handler follows the order of checks of the real route (scope, blocked, MFA, rate limit, then
the route's own parameters), because callers can tell those orders apart.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from appwrite_token_exchange.emulator.auth import Caller, client_ip, identify, require_account
from appwrite_token_exchange.emulator.errors import AppwriteError, blocked_error
from appwrite_token_exchange.emulator.keys import EMULATOR_CONFIG, EMULATOR_STATE
from appwrite_token_exchange.emulator.limits import WindowDecision
from appwrite_token_exchange.emulator.models import account_model, session_model
from appwrite_token_exchange.emulator.state import DEFAULT_SESSION_TTL
from appwrite_token_exchange.emulator.tokens import mint

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
    user = require_account(caller, config)

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
        if duration == 0 and config.zero_duration_fails:
            # `new JWT($key, 'HS256', 0, 0)`: adhocore/jwt refuses a maxAge below 1 with a
            # JWTException, which Appwrite's error handler turns into a bare 500.
            raise AppwriteError("general_unknown")
    except AppwriteError as error:
        error.headers.update(headers)
        raise
    token = mint(user.id, session.id, int(state.now()) + duration, config.jwt_secret)
    state.jwts_issued += 1
    return web.json_response({"jwt": token}, status=201, headers=headers)


@routes.get("/v1/account")
async def get_account(request: web.Request) -> web.Response:
    return web.json_response(account_model(require_account(caller_of(request), request.app[EMULATOR_CONFIG])))


@routes.get("/v1/account/sessions/current")
async def get_current_session(request: web.Request) -> web.Response:
    caller = caller_of(request)
    require_account(caller, request.app[EMULATOR_CONFIG])
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
    user = require_account(caller, request.app[EMULATOR_CONFIG], check_factors=False)
    wanted = request.match_info["session_id"]
    if wanted == "current":
        if caller.session is None:
            raise AppwriteError("user_session_not_found")
        wanted = caller.session.id
    session = state.sessions.get(wanted)
    if session is None or session.user_id != user.id:
        raise AppwriteError("user_session_not_found")
    state.delete_session(session.id)
    response = _no_content()
    if caller.session is not None and caller.session.id == session.id:
        if not _domain_verified(request):
            response.headers["X-Fallback-Cookies"] = "[]"
        _expire_cookies(request, response)
    return response


@routes.delete("/v1/account/sessions")
async def delete_sessions(request: web.Request) -> web.Response:
    """Every session of the caller's user; the cookies expire if the caller's own was among them."""
    state = request.app[EMULATOR_STATE]
    caller = caller_of(request)
    user = require_account(caller, request.app[EMULATOR_CONFIG])
    response = _no_content()
    sessions = state.sessions_of(user.id)
    for session in sessions:
        state.delete_session(session.id)
    if sessions and not _domain_verified(request):
        response.headers["X-Fallback-Cookies"] = "[]"
    if caller.session is not None and any(session.id == caller.session.id for session in sessions):
        _expire_cookies(request, response)
    return response


def _no_content() -> web.Response:
    # Appwrite's empty answers still name a content type, and its SDKs read that header on every
    # success (the Python SDK fails without it).
    return web.Response(status=204, headers={"Content-Type": "text/html; charset=UTF-8"})


@routes.post("/v1/account/sessions/email")
@routes.post("/v1/account/sessions")
async def create_email_session(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    # The `session` route group: signing in while signed in is refused before anything else.
    if not caller_of(request).is_guest:
        raise AppwriteError("user_session_already_exists")
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
        raise blocked_error(request.app[EMULATOR_CONFIG])
    session_id, value = state.create_session(user.id, DEFAULT_SESSION_TTL, ip=client_ip(request))
    session = state.sessions[session_id]
    body = session_model(session, current=True, secret=value if has_api_key(request) else "")
    response = web.json_response(body, status=201)
    _set_cookies(request, response, value, int(session.expire))
    if not _domain_verified(request):
        # For clients that cannot keep third-party cookies: the same value, readable by script.
        name, _ = _cookie_names(request)
        # PHP's json_encode: no spaces, `/` escaped; the value is the raw (not URL-encoded) one.
        fallback = json.dumps({name: value}, separators=(",", ":")).replace("/", "\\/")
        response.headers["X-Fallback-Cookies"] = fallback
    return response


@routes.get("/v1/health/version")
async def health_version(request: web.Request) -> web.Response:
    return web.json_response({"version": request.app[EMULATOR_CONFIG].version})


def _domain_verified(request: web.Request) -> bool:
    """Appwrite's `domainVerification`: the caller's Origin (else Referer) has the same registrable
    domain as the API's own host, and that domain is not empty. Without an Origin, from another
    site, or on `localhost` and IP addresses, it is false and cookies are echoed in
    `X-Fallback-Cookies`. The registrable domain is approximated as the last two labels (Appwrite
    asks the public-suffix list)."""
    origin = request.headers.get("Origin") or request.headers.get("Referer", "")
    try:
        origin_host = str(urlsplit(origin).hostname or "")
    except ValueError:
        origin_host = ""
    own = _registrable(request.url.host or "")
    return bool(own) and own == _registrable(origin_host)


def _registrable(hostname: str) -> str:
    hostname = hostname.strip(".").lower()
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        labels = hostname.split(".")
        return ".".join(labels[-2:]) if len(labels) >= 2 and all(labels) else ""
    return ""


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
    """Appwrite sets both cookies to '' an hour in the past; Swoole, like PHP's setcookie, writes
    an empty value as `deleted` with the 1970 date and Max-Age=0 (Appwrite's testSelfBlockedAccount
    asserts `a_session_<project>=deleted`)."""
    main, legacy = _cookie_names(request)
    secure = "; secure" if request.secure else ""
    gone = "=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=0; path=/"
    response.headers.add("Set-Cookie", f"{legacy}{gone}{secure}; httponly")
    response.headers.add("Set-Cookie", f"{main}{gone}{secure}; httponly; samesite=None")


def _http_date(timestamp: int) -> str:
    return formatdate(timestamp, usegmt=True)
