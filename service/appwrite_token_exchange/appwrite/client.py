"""The one Appwrite call the exchange makes, over a pooled aiohttp session, mapped to our codes.

Appwrite's error answers are of three kinds, and only one says anything about Appwrite's health:
- about one user (401, 403 `user_blocked`, 412 password reset, 429; any `user_*` type): that user's
  own answer, never counted against the circuit breaker;
- about the whole project or this service's configuration (404 `project_not_found`, 501
  `user_auth_method_unsupported`, a token signed with a key APPWRITE_JWT_SECRET does not list):
  503 `appwrite_misconfigured` with a `cause` that names what to fix, logged once, shown on /readyz
  until a call succeeds again, and not counted against the breaker either (Appwrite answered);
- Appwrite failing (5xx, unreachable, too slow, or an unusable answer): counted by the breaker.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

import aiohttp
import structlog

from appwrite_token_exchange.appwrite.claims import ClaimsError, SignatureMismatch, TokenClaims, read_claims
from appwrite_token_exchange.observability.log_once import LogOnce
from appwrite_token_exchange.observability.request_id import with_request_id
from appwrite_token_exchange.observability.tracing import NO_TRACING, Tracer
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.settings import Settings

UNAVAILABLE_RETRY_AFTER = "5"
# A misconfiguration lasts until someone fixes it: callers need not come back soon.
MISCONFIGURED_RETRY_AFTER = "30"
# The most the service reads of one Appwrite answer (error answers included). A JWT answer is
# about 0.5 KB. The largest answer it asks for is the Account model (GET /account, for the relay),
# and the bulk of that is the user's prefs, which Appwrite refuses above 64 KB. 256 KiB leaves that
# model room four times over, and means a misbehaving or hostile endpoint costs at most this much
# memory per call in flight (UPSTREAM_MAX_CONCURRENCY bounds those), not whatever it sends.
MAX_UPSTREAM_BODY_BYTES = 256 * 1024

# Appwrite error `type` -> our problem code, for the statuses where the type decides.
_ERROR_TYPES = {
    "user_blocked": "user_blocked",
    "user_more_factors_required": "mfa_required",
}


_log = structlog.get_logger(logger_name="service.appwrite")

# Causes of `appwrite_misconfigured`, each a setting someone must change.
JWT_AUTH_DISABLED = "jwt_auth_disabled"
PROJECT_NOT_FOUND = "project_not_found"
JWT_SECRET_MISMATCH = "jwt_secret_mismatch"  # noqa: S105 - a cause's name, not a secret
MISCONFIGURATION_CAUSES = (JWT_AUTH_DISABLED, PROJECT_NOT_FOUND, JWT_SECRET_MISMATCH)
# Appwrite error `type` (with its status) -> the project-level cause it reveals.
_PROJECT_LEVEL_TYPES = {
    (501, "user_auth_method_unsupported"): JWT_AUTH_DISABLED,
    (404, "project_not_found"): PROJECT_NOT_FOUND,
}


@dataclass(frozen=True)
class MintedToken:
    jwt: str
    claims: TokenClaims
    upstream_status: int
    upstream_seconds: float


class UpstreamError(ProblemError):
    """An exchange refused or failed because of what Appwrite did (or did not) answer."""

    def __init__(
        self,
        code: str,
        detail: str,
        upstream_status: int | None,
        retry_after: str | None = None,
        upstream_seconds: float | None = None,
        *,
        extra: Mapping[str, object] | None = None,
        failure: bool | None = None,
    ) -> None:
        super().__init__(code, detail, {"Retry-After": retry_after} if retry_after else None, extra)
        self.upstream_status = upstream_status
        self.upstream_seconds = upstream_seconds
        self._failure = failure

    @property
    def is_upstream_failure(self) -> bool:
        """True when Appwrite itself misbehaved (counts against the circuit breaker)."""
        if self._failure is not None:
            return self._failure
        return self.code in ("upstream_unavailable", "upstream_timeout", "upstream_bad_response")

    @property
    def cause(self) -> str | None:
        """For `appwrite_misconfigured`: which setting is wrong."""
        cause = self.extra.get("cause")
        return cause if isinstance(cause, str) else None


class Misconfigurations:
    """The project-level answers seen since the last successful call: each is logged once when it
    appears (not per request) and shown on /readyz until a call that proves it fixed succeeds."""

    def __init__(self) -> None:
        self._logged = LogOnce()

    def seen(self, cause: str, detail: str) -> None:
        if self._logged.first(cause, detail):
            _log.error("config.appwrite_misconfigured", cause=cause, hint=detail)

    def cleared(self, causes: tuple[str, ...]) -> None:
        for cause in causes:
            if self._logged.clear(cause):
                _log.info("config.appwrite_misconfiguration_cleared", cause=cause)

    def readiness(self) -> list[dict[str, str]]:
        return [{"cause": cause, "detail": detail} for cause, detail in self._logged.seen().items()]


def misconfiguration_details(settings: Settings) -> dict[str, str]:
    """What to change, per cause, for the problem's `detail`, the log and /readyz."""
    project, endpoint = settings.project_id, settings.appwrite_endpoint
    return {
        JWT_AUTH_DISABLED: f"JWT auth is disabled for the Appwrite project '{project}': enable the JWT auth "
        "method for it in the Appwrite console (Auth > Settings).",
        PROJECT_NOT_FOUND: f"APPWRITE_PROJECT_ID '{project}' is not a project at APPWRITE_ENDPOINT {endpoint}: "
        "correct one of them.",
        JWT_SECRET_MISMATCH: "Appwrite signs its tokens with a key APPWRITE_JWT_SECRET does not list: set it to this "
        "Appwrite's instance key (_APP_OPENSSL_KEY_V1; several, comma-separated, during a rotation), or unset it.",
    }


def create_http_session(settings: Settings) -> aiohttp.ClientSession:
    """One pooled session per process. No cookie jar: Appwrite's Set-Cookie must never stick."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout_seconds),
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=settings.upstream_max_concurrency, ttl_dns_cache=60),
        headers={"X-Appwrite-Project": settings.project_id},
        raise_for_status=False,
    )


def create_relay_session(settings: Settings) -> aiohttp.ClientSession:
    """Relayed sockets live for hours: they get their own pool, so they never use up the slots
    that bound concurrent token exchanges (UPSTREAM_MAX_CONCURRENCY)."""
    return aiohttp.ClientSession(
        # The handshake is bounded by the caller; an open socket has no total timeout.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.upstream_timeout_seconds),
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=settings.relay_max_sockets, ttl_dns_cache=60),
    )


class AppwriteClient:
    """Calls Appwrite for one session. Sends only the project, the session and the duration."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        settings: Settings,
        misconfigurations: Misconfigurations | None = None,
        tracing: Tracer = NO_TRACING,
    ) -> None:
        self._http = http
        self._tracing = tracing
        self._jwt_url = settings.jwt_url
        self._account_url = f"{settings.appwrite_endpoint}/account"
        endpoint = urlsplit(settings.appwrite_endpoint)
        # What every Appwrite span says about where it went (the endpoint has no query or credentials).
        self._span_attributes: dict[str, str | int] = {
            "server.address": endpoint.hostname or "",
            "server.port": endpoint.port or (443 if endpoint.scheme == "https" else 80),
            "peer.service": "appwrite",
        }
        self._prefix_length = len(endpoint.path)
        self._body = json.dumps({"duration": settings.token_ttl_seconds}).encode()
        self._secrets = settings.appwrite_jwt_secrets
        self._details = misconfiguration_details(settings)
        self.misconfigurations = misconfigurations or Misconfigurations()

    async def create_jwt(self, session_value: str) -> MintedToken:
        """A fresh token and its claims, its signature verified when instance keys are configured."""
        status, raw, elapsed = await self._call("POST", self._jwt_url, session_value, self._body)
        jwt = _json_field(raw, "jwt")
        if not isinstance(jwt, str) or not jwt:
            raise UpstreamError("upstream_bad_response", "Appwrite answered without a token.", status, None, elapsed)
        try:
            claims = read_claims(jwt, self._secrets)
        except SignatureMismatch:
            raise self._misconfigured(JWT_SECRET_MISMATCH, status, elapsed) from None
        except ClaimsError as error:
            raise UpstreamError(
                "upstream_bad_response", f"Appwrite's token is unusable: {error}.", status, None, elapsed
            ) from None
        # A verified token proves every cause fixed: the project exists, JWT auth is on, the key matches.
        self.misconfigurations.cleared(MISCONFIGURATION_CAUSES)
        return MintedToken(jwt=jwt, claims=claims, upstream_status=status, upstream_seconds=elapsed)

    async def get_account_id(self, session_value: str) -> str:
        """The session's user id: proves the session is live and the user not blocked."""
        status, raw, elapsed = await self._call("GET", self._account_url, session_value, None)
        user_id = _json_field(raw, "$id")
        if not isinstance(user_id, str) or not user_id:
            raise UpstreamError("upstream_bad_response", "Appwrite answered without an account.", status, None, elapsed)
        # An account proves the project exists; it says nothing about JWT auth or the instance key.
        self.misconfigurations.cleared((PROJECT_NOT_FOUND,))
        return user_id

    def _misconfigured(self, cause: str, status: int | None, elapsed: float | None) -> UpstreamError:
        """The problem for a project-level answer; Appwrite answered, so the breaker counts no failure."""
        detail = self._details[cause]
        self.misconfigurations.seen(cause, detail)
        return UpstreamError(
            "appwrite_misconfigured",
            detail,
            status,
            MISCONFIGURED_RETRY_AFTER,
            elapsed,
            extra={"cause": cause},
            failure=False,
        )

    async def _call(self, method: str, url: str, session_value: str, body: bytes | None) -> tuple[int, bytes, float]:
        """One request, with the request's id and, when tracing, its own span as `traceparent`."""
        headers = with_request_id({"X-Appwrite-Session": session_value})
        if body is not None:
            headers["Content-Type"] = "application/json"
        if not self._tracing.enabled:
            return await self._send(method, url, headers, body)
        path = urlsplit(url).path
        template = path[self._prefix_length:]
        attributes = {**self._span_attributes, "http.request.method": method, "url.template": template,
                      "url.full": url}
        with self._tracing.client_span(f"{method} {template}", attributes) as span:
            self._tracing.inject(headers)
            try:
                status, raw, elapsed = await self._send(method, url, headers, body)
            except UpstreamError as error:
                if error.upstream_status is not None:
                    span.set_attribute("http.response.status_code", error.upstream_status)
                raise
            span.set_attribute("http.response.status_code", status)
            return status, raw, elapsed

    async def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, bytes, float]:
        """An error answer or a transport failure becomes an UpstreamError."""
        started = time.perf_counter()
        try:
            async with self._http.request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as response:
                raw = await read_capped(response)
                elapsed = time.perf_counter() - started
                if raw is None:
                    # Counted as a failure of Appwrite by the circuit breaker, as any unusable answer is.
                    raise UpstreamError(
                        "upstream_bad_response",
                        f"Appwrite's answer ({response.status}) is larger than {MAX_UPSTREAM_BODY_BYTES // 1024} KiB.",
                        response.status,
                        None,
                        elapsed,
                    )
                if response.status >= 300:
                    cause = project_level_cause(response.status, raw)
                    if cause is not None:
                        raise self._misconfigured(cause, response.status, elapsed)
                    raise_for_answer(response.status, response.headers, raw, elapsed)
                return response.status, raw, elapsed
        except TimeoutError:
            raise UpstreamError(
                "upstream_timeout", "Appwrite did not answer in time.", None, None, time.perf_counter() - started
            ) from None
        except (aiohttp.ClientError, OSError):
            # Connection refused, reset, or dropped mid-answer: Appwrite is not reachable right now.
            raise UpstreamError(
                "upstream_unavailable",
                "Appwrite could not be reached.",
                None,
                UNAVAILABLE_RETRY_AFTER,
                time.perf_counter() - started,
            ) from None


async def read_capped(response: aiohttp.ClientResponse, limit: int = MAX_UPSTREAM_BODY_BYTES) -> bytes | None:
    """The answer's body, or None when it is longer than `limit` bytes.

    At most `limit` + 1 bytes are read: a declared Content-Length over the limit is refused before
    reading, and an answer that goes on past it (chunked, or lying) is cut there. Either way the
    connection is closed, not drained into the pool: the rest is never read.
    """
    if response.content_length is not None and response.content_length > limit:
        response.close()
        return None
    body = bytearray()
    while len(body) <= limit:
        chunk = await response.content.read(limit + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
    response.close()
    return None


def project_level_cause(status: int, raw: bytes) -> str | None:
    """The misconfiguration an error answer reveals, or None for an answer about one user or a failure."""
    error_type = _json_field(raw, "type")
    return _PROJECT_LEVEL_TYPES.get((status, error_type)) if isinstance(error_type, str) else None


def raise_for_answer(status: int, headers: Mapping[str, str], raw: bytes, elapsed: float | None) -> NoReturn:
    """Map an Appwrite error answer about one user, or a failure, to our problem codes."""
    error_type = _json_field(raw, "type")
    if status == 401:
        code = _ERROR_TYPES.get(str(error_type), "session_invalid")
        detail = "Finish multi-factor authentication first." if code == "mfa_required" else (
            "The session is missing, expired or was signed out."
        )
        raise UpstreamError(code, detail, status, None, elapsed)
    if status == 403 and error_type == "user_blocked":
        raise UpstreamError("user_blocked", "This user is blocked.", status, None, elapsed)
    if status == 429:
        raise UpstreamError(
            "upstream_rate_limited",
            "Appwrite's per-user rate limit is reached.",
            status,
            _retry_after_from_reset(headers),
            elapsed,
        )
    user_specific = status < 500 and isinstance(error_type, str) and error_type.startswith("user_")
    if status == 412 and user_specific:
        # Appwrite's `user_password_reset_required`: only this user can act, by resetting the password.
        raise UpstreamError(
            "password_reset_required", "Reset the password of this account, then sign in again.", status, None, elapsed
        )
    if status >= 500 and status != 501:
        raise UpstreamError("upstream_unavailable", "Appwrite is failing.", status, UNAVAILABLE_RETRY_AFTER, elapsed)
    # Unexpected, but an answer about one user (a `user_*` type) says nothing about Appwrite's health.
    raise UpstreamError(
        "upstream_bad_response",
        f"Appwrite answered {status} ({_safe_type(error_type)}).",
        status,
        None,
        elapsed,
        failure=False if user_specific else None,
    )


def _json_field(raw: bytes, name: str) -> object:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def _safe_type(error_type: object) -> str:
    """Appwrite's error type is an identifier; anything else is not echoed."""
    text = str(error_type)
    return text if text.replace("_", "").isalnum() and len(text) < 64 else "unknown"


def _retry_after_from_reset(headers: Mapping[str, str]) -> str:
    """Appwrite sends the end of its window as unix seconds; clients want seconds to wait."""
    try:
        reset = float(headers.get("X-RateLimit-Reset", ""))
    except ValueError:
        return "60"
    return str(max(1, min(3600, math.ceil(reset - time.time()))))


async def probe_version(http: aiohttp.ClientSession, endpoint: str, seconds: float) -> str | None:
    """Appwrite's version for /readyz, or None when it cannot be reached right now."""
    try:
        async with asyncio.timeout(seconds):
            async with http.get(
                f"{endpoint}/health/version", headers=with_request_id({}), allow_redirects=False
            ) as response:
                raw = await read_capped(response)
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None
    version = _json_field(raw, "version") if raw is not None else None
    return version if isinstance(version, str) else None
