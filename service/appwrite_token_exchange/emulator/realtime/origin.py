"""The Realtime handshake's Origin check, as Appwrite's `Network\\Validator\\Origin` makes it.

A browser's socket is accepted only when its `Origin` names a host the project trusts: one of its
registered Web platforms (`*.example.com` matches exactly one more label), or Appwrite's own host
(1.8.1 adds the request's hostname as "Current Host"; 1.9+ adds `_APP_DOMAIN`, which is the host
clients reach it on). `exp://` and `appwrite-callback-<project>://` (the mobile SDKs' schemes) are
accepted for every project. A handshake without an `Origin` header is never checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

# Schemes checked against the hostnames, and the platform name each refusal asks to register.
_WEB_SCHEMES = {
    "http": "Web",
    "https": "Web",
    "chrome-extension": "Web (Chrome Extension)",
    "moz-extension": "Web (Firefox Extension)",
    "safari-web-extension": "Web (Safari Extension)",
    "ms-browser-extension": "Web (Edge Extension)",
}
_NAMED_SCHEMES = {
    "appwrite-ios": "iOS",
    "appwrite-macos": "macOS",
    "appwrite-watchos": "watchOS",
    "appwrite-tvos": "tvOS",
    "appwrite-android": "Android",
    "appwrite-windows": "Windows",
    "appwrite-linux": "Linux",
}
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.IGNORECASE)
LOOPBACK_ALIASES = ("127.0.0.1", "[::1]")


def hostname_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Utopia's Hostname validator: exact match, `*`, or a `*.` pattern label by label."""
    if "/" in host or len(host) > 253:
        return False
    for pattern in allowed:
        if host == pattern or pattern == "*":
            return True
        if pattern.startswith("*"):
            wanted, labels = pattern.split("."), host.split(".")
            if len(wanted) == len(labels) and all(w in ("*", label) for w, label in zip(wanted, labels, strict=True)):
                return True
    return False


def origin_refusal(
    origin: str,
    hostnames: Iterable[str],
    project_id: str,
    *,
    loopback_aliases: bool = False,
    tauri: bool = False,
) -> str | None:
    """None when `origin` may open a socket, else Appwrite's description of why not."""
    match = _SCHEME.match(origin.strip())
    scheme = match.group(1) if match else None
    host = _host(origin)
    allowed = list(hostnames)
    web = dict(_WEB_SCHEMES, tauri="Web (Tauri)") if tauri else _WEB_SCHEMES
    if scheme in web:
        if hostname_allowed(host, allowed):
            return None
        if loopback_aliases and host in LOOPBACK_ALIASES and hostname_allowed("localhost", allowed):
            return None
    elif scheme in ("exp", f"appwrite-callback-{project_id}"):
        return None
    if not host and not scheme:
        return "Invalid Origin."
    platform = web.get(scheme or "") or _NAMED_SCHEMES.get(scheme or "")
    if not platform:
        return (
            f"Invalid Scheme. The scheme used ({scheme}) in the Origin ({origin}) is not supported. "
            "If you are using a custom scheme, please change it to `appwrite-callback-<PROJECT_ID>`"
        )
    named = f"({host})" if host else ""
    return (
        f"Invalid Origin. Register your new client {named} as a new {platform} platform"
        " on your project console dashboard"
    )


def _host(origin: str) -> str:
    """PHP's parse_url(..., PHP_URL_HOST), lower-cased; IPv6 keeps its brackets."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return ""
    netloc = parts.netloc.rpartition("@")[2]
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1].lower() if "]" in netloc else ""
    return netloc.partition(":")[0].lower()
