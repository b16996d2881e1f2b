"""POST /v1/realtime/token: the session cookie in, a fresh short-lived Appwrite JWT out."""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from service import audit
from service.appwrite_client import UpstreamError
from service.claims import TokenClaims
from service.exchange_limits import Admission
from service.keys import (
    APPWRITE,
    CLIENT_IP,
    EXCHANGE_LIMITS,
    FINGERPRINTER,
    METRICS,
    SETTINGS,
    UPSTREAM_GUARD,
)
from service.problems import ProblemError
from service.security import check_csrf
from service.session_cookie import session_from_cookie

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def issue_token(request: web.Request) -> web.Response:
    started = time.perf_counter()
    metrics = request.app[METRICS]
    audit_fields: dict[str, object] = {"client_ip": request[CLIENT_IP], "origin": request.headers.get("Origin")}
    try:
        response = await _exchange(request, audit_fields)
    except ProblemError as error:
        metrics.exchange(error.code)
        audit.token_denied(error.code, duration_ms=_ms_since(started), **audit_fields)
        raise
    except Exception:
        # A bug: request_context answers 500 internal_error and logs the traceback; counted and
        # audited here like every other outcome, so a dashboard and the audit trail both see it.
        metrics.exchange("internal_error")
        audit.token_denied("internal_error", duration_ms=_ms_since(started), **audit_fields)
        raise
    metrics.exchange("issued")
    audit.token_issued(duration_ms=_ms_since(started), **audit_fields)
    return response


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _exchange(request: web.Request, audit_fields: dict[str, object]) -> web.Response:
    app = request.app
    settings = app[SETTINGS]
    # CSRF and Origin first (header comparisons, nothing parsed), so that a cross-site page cannot
    # spend its visitors' IP allowance; then the cookie (from the capped headers), so that the IP,
    # session and user limits are one question to the state, before the body is read.
    check_csrf(request, settings)
    limits = app[EXCHANGE_LIMITS]
    async with limits.charging_ip(request[CLIENT_IP]):
        session = session_from_cookie(request, settings.session_cookie_name)
    fingerprinter = app[FINGERPRINTER]
    session_fingerprint = fingerprinter.of_session(session.secret)
    audit_fields["session_hash"] = fingerprinter.short(session_fingerprint)
    admission = await limits.admit(request[CLIENT_IP], session_fingerprint, session.user_id)
    # The body is ignored, but reading it enforces the size limit (413) on every caller.
    await request.read()
    if admission.user_id:
        audit_fields["user_id"] = admission.user_id
    try:
        jwt, claims = await _mint(request, session.value, admission, audit_fields)
    except ProblemError as error:
        error.headers = {**admission.headers, **error.headers}
        raise
    await limits.issued(admission, claims.user_id)
    audit_fields["user_id"] = claims.user_id
    expires_in = claims.expires_in(time.time())
    audit_fields["ttl_seconds"] = expires_in
    # orjson renders the body straight to bytes (json_response goes through str, then encodes).
    return web.Response(
        body=orjson.dumps(
            {"jwt": jwt, "expiresIn": expires_in, "expiresAt": claims.expires_at_rfc3339, "userId": claims.user_id}
        ),
        content_type="application/json",
        charset="utf-8",
        headers={**_NO_STORE, **admission.headers},
    )


async def _mint(
    request: web.Request, session: str, admission: Admission, audit_fields: dict[str, object]
) -> tuple[str, TokenClaims]:
    """The one Appwrite call, through the concurrency bound and the circuit breaker (which sees how
    it went, the token's signature check included)."""
    app = request.app
    async with app[UPSTREAM_GUARD].call():
        try:
            minted = await app[APPWRITE].create_jwt(session)
        except UpstreamError as error:
            _observe(request, error.upstream_status, error.upstream_seconds, audit_fields)
            if error.code == "session_invalid":
                await app[EXCHANGE_LIMITS].rejected(admission)
            raise
        _observe(request, minted.upstream_status, minted.upstream_seconds, audit_fields)
    return minted.jwt, minted.claims


def _observe(
    request: web.Request, status: int | None, seconds: float | None, audit_fields: dict[str, object]
) -> None:
    metrics = request.app[METRICS]
    metrics.upstream_response(status)
    if seconds is not None:
        metrics.upstream_seconds.observe(seconds)
        audit_fields["upstream_ms"] = round(seconds * 1000, 2)
