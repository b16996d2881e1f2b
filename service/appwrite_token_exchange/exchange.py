"""POST /v1/realtime/token: the session cookie in, a fresh short-lived Appwrite JWT out."""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from appwrite_token_exchange.access.origin import check_csrf
from appwrite_token_exchange.access.sequence import admit, ask_appwrite, holding, identify
from appwrite_token_exchange.appwrite.client import MintedToken, UpstreamError
from appwrite_token_exchange.keys import (
    ACCESS_LIMITS,
    APPWRITE,
    CLIENT_IP,
    METRICS,
)
from appwrite_token_exchange.observability import audit
from appwrite_token_exchange.problems import ProblemError

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
    # The limits are asked before the body is read: the cookie comes from the capped headers.
    caller = await identify(request, check_csrf, lambda: None)
    audit_fields["session_hash"] = caller.session_hash
    admission = await admit(request, caller)
    # The body is ignored, but reading it enforces the size limit (413) on every caller.
    async with holding(request, admission):
        await request.read()
    if admission.user_id:
        audit_fields["user_id"] = admission.user_id
    try:
        minted = await ask_appwrite(
            request, admission, lambda: _mint(request, caller.session.value, audit_fields),
            user_of=lambda minted: minted.claims.user_id,
        )
    except ProblemError as error:
        error.headers = {**admission.headers, **error.headers}
        raise
    jwt, claims = minted.jwt, minted.claims
    if admission.user_id != claims.user_id:  # this session's first token (in a day): learn its id
        await request.app[ACCESS_LIMITS].remember_session(caller.fingerprint, claims.session_id)
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


async def _mint(request: web.Request, session: str, audit_fields: dict[str, object]) -> MintedToken:
    """The one Appwrite call (the circuit breaker sees how it went, the token's signature check
    included), observed in the metrics and the audit line."""
    try:
        minted = await request.app[APPWRITE].create_jwt(session)
    except UpstreamError as error:
        _observe(request, error.upstream_status, error.upstream_seconds, audit_fields)
        raise
    _observe(request, minted.upstream_status, minted.upstream_seconds, audit_fields)
    return minted


def _observe(
    request: web.Request, status: int | None, seconds: float | None, audit_fields: dict[str, object]
) -> None:
    metrics = request.app[METRICS]
    metrics.upstream_response(status)
    if seconds is not None:
        metrics.upstream_seconds.observe(seconds)
        audit_fields["upstream_ms"] = round(seconds * 1000, 2)
