"""Request security checks: CSRF header, Origin allowlist, CORS headers and the client's IP."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import structlog
from aiohttp import web
from multidict import CIMultiDict

from service.env import IpNetwork
from service.keys import LOGGED_ONCE, SETTINGS
from service.problems import ProblemError
from service.settings import Settings

CSRF_HEADER = "X-CSRF"
CORS_ALLOWED_HEADERS = "X-CSRF, Content-Type, X-Request-ID"
CORS_EXPOSED_HEADERS = "X-Request-ID, Retry-After, RateLimit, RateLimit-Policy"
CORS_MAX_AGE = "600"
# What a preflight grants besides the origin (which set_cors_headers adds to every answer).
PREFLIGHT_GRANTS = {
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": CORS_ALLOWED_HEADERS,
    "Access-Control-Max-Age": CORS_MAX_AGE,
}
# An Origin header is the caller's text: quote only this much of it back.
_MAX_ORIGIN_SHOWN = 200
_log = structlog.get_logger(logger_name="service")


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
            if proxy_scheme_mismatch(origin, request, settings):
                _warn_untrusted_proxy(request)
            raise ProblemError("origin_not_allowed", refused_origin_detail(origin, request, settings))
    elif request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise ProblemError("origin_not_allowed", "Cross-site requests must come from an origin in ALLOWED_ORIGINS.")


def refused_origin_detail(origin: str, request: web.Request, settings: Settings) -> str:
    """Why an Origin was refused, naming the setting that would change it.

    The usual cause in a same-host deployment is a TLS proxy the service does not trust: the
    page is https, the service sees plain http, and the two origins differ only in the scheme.
    """
    own = request_origin(request, settings)
    shown = origin[:_MAX_ORIGIN_SHOWN]
    if proxy_scheme_mismatch(origin, request, settings):
        return (
            f"The page's origin {shown} is this service's own host, but the service sees the request as {own}: "
            "TLS ends at a proxy in front of it. Set TRUSTED_PROXIES to that proxy's addresses so its "
            "X-Forwarded-Proto is believed (the proxy must send it), or list the origin in ALLOWED_ORIGINS."
        )
    return f"The origin {shown} is neither this service's own origin ({own}) nor listed in ALLOWED_ORIGINS."


def proxy_scheme_mismatch(origin: str, request: web.Request, settings: Settings) -> bool:
    """The Origin is our host under another scheme: a proxy's scheme we were not told to believe."""
    scheme, _, host = origin.rstrip("/").lower().partition("://")
    return host == request.host.lower() and f"{scheme}://{host}" != request_origin(request, settings)


def _warn_untrusted_proxy(request: web.Request) -> None:
    """Once per process: the log, not only the refused page, says which setting is missing."""
    once = request.app[LOGGED_ONCE]
    if "proxy_not_trusted" in once:
        return
    once.add("proxy_not_trusted")
    _log.warning(
        "config.proxy_not_trusted",
        peer=request.remote,
        forwarded_proto=request.headers.get("X-Forwarded-Proto", "")[:16] or None,
        trusted_proxies=[str(network) for network in request.app[SETTINGS].trusted_proxies],
        hint="Pages served over https through a TLS proxy are refused (origin_not_allowed): set TRUSTED_PROXIES "
        "to the proxy's addresses (the ingress controller's or gateway's pods) so X-Forwarded-Proto and "
        "X-Forwarded-For are believed.",
    )


def check_csrf(request: web.Request, settings: Settings) -> None:
    """A custom header forces a CORS preflight, so a plain cross-site form cannot mint tokens."""
    if request.headers.get(CSRF_HEADER) != "1":
        raise ProblemError("csrf_header_missing", f"Send the header '{CSRF_HEADER}: 1'.")
    check_origin(request, settings)


def cors_origin(request: web.Request, settings: Settings) -> str | None:
    """The request's Origin if it is allowlisted for credentialed CORS (exact match), else None."""
    origin = request.headers.get("Origin", "").rstrip("/").lower()
    return origin if origin and origin in settings.allowed_origins else None


def set_cors_headers(headers: CIMultiDict[str], request: web.Request, settings: Settings) -> None:
    """Give a response its CORS headers, each exactly once, whatever a handler set before.

    Browsers refuse an answer whose Access-Control-Allow-Origin has more than one value, so these
    are always assigned (which replaces), never added; `Vary` is merged, not repeated.
    """
    vary = [token.strip() for value in headers.getall("Vary", ()) for token in value.split(",") if token.strip()]
    if "origin" not in (token.lower() for token in vary):
        vary.append("Origin")
    headers["Vary"] = ", ".join(vary)
    origin = cors_origin(request, settings)
    if origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS


def client_ip(request: web.Request, trusted_proxies: Iterable[IpNetwork]) -> str:
    """The caller's IP: X-Forwarded-For is believed only hop by hop through trusted proxies.

    The answer is canonical (see `_parse_ip`), so one address has one spelling in the audit log,
    in the X-Forwarded-For the relay sends on, and in the rate limits (`limit_key_for_ip`).
    """
    proxies = tuple(trusted_proxies)
    peer = _parse_ip(request.remote)
    if peer is None:
        return request.remote or "unknown"
    if not proxies or not _in_any(peer, proxies):
        return str(peer)
    hops = [_parse_hop(hop) for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop is None or not _in_any(hop, proxies):
            # The first hop no trusted proxy vouches for; junk there means the chain is not believed.
            return str(hop if hop is not None else peer)
    return str(hops[0] if hops and hops[0] is not None else peer)


def limit_key_for_ip(address: str, ipv6_prefix_length: int) -> str:
    """What the per-IP rate limit counts: an IPv4 address, or the IPv6 network it belongs to.

    One IPv6 host (or one customer of an ISP) usually owns a whole /64 and can pick a fresh
    address from it for every request, so per-address IPv6 limits limit nothing. Text that is
    not an address (an unknown peer) is its own key.
    """
    ip = _parse_ip(address)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv4Address) or ipv6_prefix_length >= 128:
        return str(ip)
    return str(ipaddress.IPv6Network((ip, ipv6_prefix_length), strict=False))


def _parse_ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address in canonical form: IPv6 compressed and without a zone (`%eth0`), and an
    IPv4-mapped IPv6 address (`::ffff:203.0.113.9`, what a dual-stack socket reports for an
    IPv4 peer) as the IPv4 address it carries."""
    try:
        ip = ipaddress.ip_address(text or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(ip.packed)
    return ip


def _parse_hop(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """One X-Forwarded-For entry. Proxies write a bare address; a few (Azure Application
    Gateway, IIS ARR) add the client's port: `203.0.113.9:5123`, `[2001:db8::1]:5123`."""
    text = text.strip()
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return _parse_ip(inside)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return _parse_ip(host) if port.isdigit() and "." in host else None
    return _parse_ip(text)


def _in_any(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Iterable[IpNetwork]) -> bool:
    return any(ip in network for network in proxies)


def _is_trusted(address: str | None, proxies: Iterable[IpNetwork]) -> bool:
    ip = _parse_ip(address)
    return ip is not None and _in_any(ip, proxies)
