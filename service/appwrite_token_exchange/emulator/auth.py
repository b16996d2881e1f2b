"""Who is calling: Appwrite's user resolution, shared by the REST routes and the Realtime handshake.

Order, as in Appwrite's `user` resource: the `a_session_<project>` cookie (then its `_legacy`
twin), `X-Appwrite-Session`, `X-Fallback-Cookies`, and only then a JWT. A JWT next to a valid
session is refused (1.9.0+; on 1.8.1 the JWT's user simply replaces the session's); a bad or
expired JWT is an error; a JWT whose session is gone makes a guest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from appwrite_token_exchange.emulator.config import EmulatorConfig
from appwrite_token_exchange.emulator.credentials import decode_session_value
from appwrite_token_exchange.emulator.errors import AppwriteError, blocked_error
from appwrite_token_exchange.emulator.state import EmulatorSession, EmulatorState, EmulatorUser
from appwrite_token_exchange.emulator.tokens import TokenInvalid, verify


@dataclass(frozen=True)
class Caller:
    user: EmulatorUser | None
    # The session whose secret authenticated this call; None for guests and JWT callers.
    session: EmulatorSession | None
    # A JWT was presented (whether or not it still maps to a user).
    used_jwt: bool

    @property
    def is_guest(self) -> bool:
        return self.user is None


def client_ip(request: web.Request) -> str:
    """Appwrite trusts the first X-Forwarded-For entry by default (_APP_TRUSTED_HEADERS)."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    first = forwarded.split(",")[0].strip()
    return first or request.remote or ""


def session_value(project_id: str, cookies: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """The first session credential Appwrite would look at, or ""."""
    cookie_name = f"a_session_{project_id}"
    candidates = [
        # Swoole percent-decodes cookie values (Appwrite's own Set-Cookie encodes `=` as `%3D`);
        # headers reach Store::decode as they are.
        unquote(cookies.get(cookie_name) or cookies.get(f"{cookie_name}_legacy", "")),
        headers.get("X-Appwrite-Session", ""),
        _fallback_cookie(headers.get("X-Fallback-Cookies", ""), cookie_name),
    ]
    for candidate in candidates:
        # Appwrite moves on only while the decoded store is empty, not merely invalid.
        if candidate and any(decode_session_value(candidate)):
            return candidate
    return ""


def _fallback_cookie(raw: str, cookie_name: str) -> str:
    try:
        fallback = json.loads(raw) if raw else {}
    except ValueError:
        return ""
    value = fallback.get(cookie_name, "") if isinstance(fallback, dict) else ""
    return value if isinstance(value, str) else ""


def identify(
    state: EmulatorState,
    cookies: Mapping[str, str],
    headers: Mapping[str, str],
    jwt_token: str = "",
) -> Caller:
    """The caller; AppwriteError for a refused JWT (user_jwt_invalid, user_jwt_and_cookie_set)."""
    config = state.config
    found = None
    value = session_value(config.project_id, cookies, headers)
    if value:
        found = state.verify_session_value(value)
    if not jwt_token:
        return Caller(found[0], found[1], False) if found else Caller(None, None, False)
    if found is not None and config.refuses_jwt_with_session:
        raise AppwriteError("user_jwt_and_cookie_set")
    try:
        claims = verify(jwt_token, config.jwt_secret, state.now())
    except TokenInvalid as error:
        raise AppwriteError("user_jwt_invalid", str(error)) from None
    user_id, session_id = claims.get("userId"), claims.get("sessionId")
    user = state.users.get(user_id) if isinstance(user_id, str) and user_id else None
    if (
        user is not None
        and isinstance(session_id, str)
        and session_id
        and not state.session_alive(user.id, session_id, unexpired=config.jwt_needs_unexpired_session)
    ):
        user = None
    # 1.8.1 only (newer servers refused above): the JWT's user wins, but the session secret is still
    # in Appwrite's store, so it counts for routes that verify it (such as minting) if it is one
    # of that user's sessions.
    session = found[1] if found is not None and user is not None and found[0].id == user.id else None
    return Caller(user, session, True)


def require_account(caller: Caller, config: EmulatorConfig, *, check_factors: bool = True) -> EmulatorUser:
    """The user behind an `account`-scoped call, after Appwrite's scope, status and MFA checks."""
    user = caller.user
    if user is None:
        raise AppwriteError("general_unauthorized_scope", 'User (role: guests) missing scopes (["account"])')
    if not user.status:
        raise blocked_error(config)
    session = caller.session
    if check_factors and session is not None and len(session.factors) < user.minimum_factors:
        raise AppwriteError("user_more_factors_required")
    return user
