"""Request security checks: CSRF header, Origin allowlist, CORS headers and the client's IP."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web
from multidict import CIMultiDict

from service.problems import ProblemError
from service.settings import IpNetwork, Settings

CSRF_HEADER = "X-CSRF"
CORS_ALLOWED_HEADERS = "X-CSRF, Content-Type, X-Request-ID"
CORS_EXPOSED_HEADERS = "X-Request-ID, Retry-After, RateLimit, RateLimit-Policy"
CORS_MAX_AGE = "600"


def request_origin(request: web.Request, settings: Settings) -> str:
    """The origin this request was addressed to, as a browser on the same host would send it."""
    scheme = request.scheme
    if _is_trusted(request.remote, settings.trusted_proxies):
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if forwarded in ("http", "https"):
            scheme = forwarded
    return f"{scheme}://{request.host.lower()}"


def origin_allowed(origin: str, request: web.Request, settings: Settings) -> bool:
    origin = origin.rstrip("/").lower()
    return origin in settings.allowed_origins or origin == request_origin(request, settings)


def check_origin(request: web.Request, settings: Settings) -> None:
    """Refuse cross-site callers: an Origin must be ours or allowlisted; so must a cross-site fetch."""
    origin = request.headers.get("Origin")
    if origin is not None:
        if not origin_allowed(origin, request, settings):
            raise ProblemError("origin_not_allowed", "This origin may not call the token service.")
    elif request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise ProblemError("origin_not_allowed", "Cross-site requests must come from an allowed origin.")


def check_csrf(request: web.Request, settings: Settings) -> None:
    """A custom header forces a CORS preflight, so a plain cross-site form cannot mint tokens."""
    if request.headers.get(CSRF_HEADER) != "1":
        raise ProblemError("csrf_header_missing", f"Send the header '{CSRF_HEADER}: 1'.")
    check_origin(request, settings)


def cors_headers(request: web.Request, settings: Settings) -> CIMultiDict[str]:
    """CORS headers for an allowlisted Origin (exact match, credentials, never a wildcard)."""
    headers: CIMultiDict[str] = CIMultiDict({"Vary": "Origin"})
    origin = request.headers.get("Origin", "").rstrip("/").lower()
    if origin and origin in settings.allowed_origins:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
    return headers


def preflight_headers(request: web.Request, settings: Settings) -> CIMultiDict[str]:
    headers = cors_headers(request, settings)
    if "Access-Control-Allow-Origin" in headers:
        headers["Access-Control-Allow-Methods"] = "POST"
        headers["Access-Control-Allow-Headers"] = CORS_ALLOWED_HEADERS
        headers["Access-Control-Max-Age"] = CORS_MAX_AGE
    return headers


def client_ip(request: web.Request, trusted_proxies: Iterable[IpNetwork]) -> str:
    """The caller's IP: X-Forwarded-For is believed only hop by hop through trusted proxies."""
    proxies = tuple(trusted_proxies)
    peer = request.remote or "unknown"
    if not proxies or not _is_trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, proxies):
            return hop if _parse_ip(hop) is not None else peer
    return hops[0] if hops and _parse_ip(hops[0]) is not None else peer


def _parse_ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text or "")
    except ValueError:
        return None


def _is_trusted(address: str | None, proxies: Iterable[IpNetwork]) -> bool:
    ip = _parse_ip(address)
    return ip is not None and any(ip in network for network in proxies)
