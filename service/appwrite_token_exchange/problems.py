"""RFC 9457 problem details: every error the service returns, with a stable machine-readable code."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "tag:appwrite-token-exchange,2026:problem/"


@dataclass(frozen=True)
class ProblemKind:
    status: int
    title: str


# The public contract: clients switch on these codes, so never rename one.
PROBLEMS: dict[str, ProblemKind] = {
    "session_missing": ProblemKind(401, "No session cookie"),
    "session_invalid": ProblemKind(401, "Session is not valid"),
    "mfa_required": ProblemKind(401, "Multi-factor authentication is not complete"),
    "user_blocked": ProblemKind(403, "User is blocked"),
    "password_reset_required": ProblemKind(403, "Password reset required"),
    "csrf_header_missing": ProblemKind(403, "CSRF header missing"),
    "origin_not_allowed": ProblemKind(403, "Origin not allowed"),
    "channel_not_allowed": ProblemKind(403, "Realtime channel not allowed"),
    "rate_limited": ProblemKind(429, "Too many requests"),
    "upstream_rate_limited": ProblemKind(429, "Appwrite rate limit reached"),
    "upstream_bad_response": ProblemKind(502, "Bad response from Appwrite"),
    "upstream_unavailable": ProblemKind(503, "Appwrite is unavailable"),
    "upstream_saturated": ProblemKind(503, "Too many concurrent Appwrite calls"),
    "appwrite_misconfigured": ProblemKind(503, "Appwrite project or service is misconfigured"),
    "upstream_timeout": ProblemKind(504, "Appwrite did not answer in time"),
    "too_many_sockets": ProblemKind(429, "Too many relayed sockets"),
    "relay_full": ProblemKind(503, "The relay is full"),
    "bad_request": ProblemKind(400, "Bad request"),
    "request_timeout": ProblemKind(408, "Request not received in time"),
    "headers_too_large": ProblemKind(431, "Request headers too large"),
    "not_found": ProblemKind(404, "Not found"),
    "method_not_allowed": ProblemKind(405, "Method not allowed"),
    "body_too_large": ProblemKind(413, "Request body too large"),
    "service_draining": ProblemKind(503, "Service is shutting down"),
    "too_many_connections": ProblemKind(429, "Too many connections"),
    "too_many_requests_in_flight": ProblemKind(429, "Too many requests in flight"),
    "server_busy": ProblemKind(503, "Server busy"),
    "webhook_signature_invalid": ProblemKind(401, "Webhook signature is not valid"),
    "webhook_replayed": ProblemKind(409, "Webhook already received"),
    "revocation_unauthorized": ProblemKind(401, "Revocation secret missing or wrong"),
    "revocation_not_broadcast": ProblemKind(503, "Revocation not passed on to every replica"),
    "internal_error": ProblemKind(500, "Internal error"),
}


class ProblemError(Exception):
    """Raised anywhere in a request; the error middleware turns it into a problem response."""

    def __init__(
        self,
        code: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    @property
    def status(self) -> int:
        return PROBLEMS[self.code].status


def problem_response(
    code: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> web.Response:
    response = web.Response(
        status=PROBLEMS[code].status,
        body=problem_body(code, detail, extra),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )
    # Errors about one user's credential must never be stored by a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def problem_body(code: str, detail: str, extra: Mapping[str, object] | None = None) -> bytes:
    kind = PROBLEMS[code]
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "code": code,
        **(extra or {}),
    }
    return json.dumps(body).encode()


def response_for(error: ProblemError) -> web.Response:
    return problem_response(error.code, error.detail, error.headers, error.extra)
