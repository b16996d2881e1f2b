"""The one Appwrite call the exchange makes, over a pooled aiohttp session, mapped to our codes."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

import aiohttp

from service.problems import ProblemError
from service.settings import Settings

UNAVAILABLE_RETRY_AFTER = "5"
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


@dataclass(frozen=True)
class MintedToken:
    jwt: str
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
    ) -> None:
        super().__init__(code, detail, {"Retry-After": retry_after} if retry_after else None)
        self.upstream_status = upstream_status
        self.upstream_seconds = upstream_seconds

    @property
    def is_upstream_failure(self) -> bool:
        """True when Appwrite itself misbehaved (counts against the circuit breaker)."""
        return self.code in ("upstream_unavailable", "upstream_timeout", "upstream_bad_response")


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

    def __init__(self, http: aiohttp.ClientSession, settings: Settings) -> None:
        self._http = http
        self._jwt_url = settings.jwt_url
        self._account_url = f"{settings.appwrite_endpoint}/account"
        self._body = json.dumps({"duration": settings.token_ttl_seconds}).encode()

    async def create_jwt(self, session_value: str) -> MintedToken:
        status, raw, elapsed = await self._call("POST", self._jwt_url, session_value, self._body)
        jwt = _json_field(raw, "jwt")
        if not isinstance(jwt, str) or not jwt:
            raise UpstreamError("upstream_bad_response", "Appwrite answered without a token.", status, None, elapsed)
        return MintedToken(jwt=jwt, upstream_status=status, upstream_seconds=elapsed)

    async def get_account_id(self, session_value: str) -> str:
        """The session's user id: proves the session is live and the user not blocked."""
        status, raw, elapsed = await self._call("GET", self._account_url, session_value, None)
        user_id = _json_field(raw, "$id")
        if not isinstance(user_id, str) or not user_id:
            raise UpstreamError("upstream_bad_response", "Appwrite answered without an account.", status, None, elapsed)
        return user_id

    async def _call(self, method: str, url: str, session_value: str, body: bytes | None) -> tuple[int, bytes, float]:
        """One request; an error answer or a transport failure becomes an UpstreamError."""
        started = time.perf_counter()
        headers = {"X-Appwrite-Session": session_value}
        if body is not None:
            headers["Content-Type"] = "application/json"
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


def raise_for_answer(status: int, headers: Mapping[str, str], raw: bytes, elapsed: float | None) -> NoReturn:
    """Map an Appwrite error answer to our problem codes."""
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
    if status >= 500 and status != 501:
        raise UpstreamError("upstream_unavailable", "Appwrite is failing.", status, UNAVAILABLE_RETRY_AFTER, elapsed)
    raise UpstreamError(
        "upstream_bad_response", f"Appwrite answered {status} ({_safe_type(error_type)}).", status, None, elapsed
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
            async with http.get(f"{endpoint}/health/version", allow_redirects=False) as response:
                raw = await read_capped(response)
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None
    version = _json_field(raw, "version") if raw is not None else None
    return version if isinstance(version, str) else None
