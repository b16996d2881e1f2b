"""Which pages may call: the CSRF header, the Origin allowlist and the CORS headers."""

from __future__ import annotations

import structlog
from aiohttp import web
from multidict import CIMultiDict

from appwrite_token_exchange.access.client_ip import FORWARDED_PROTO, forwarded, header_list
from appwrite_token_exchange.keys import CLIENT_SCHEME, LOGGED_ONCE, SETTINGS
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.settings import Settings

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
    # Read once per request by the request middleware; walked here only for a request it did not see.
    scheme = request.get(CLIENT_SCHEME) or forwarded(request, settings.trusted_proxies).scheme
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
    if not request.app[LOGGED_ONCE].first("proxy_not_trusted"):
        return
    _log.warning(
        "config.proxy_not_trusted",
        peer=request.remote,
        forwarded_proto=", ".join(header_list(request.headers, FORWARDED_PROTO))[:16] or None,
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
