"""What keeps a web page the developer visits from using the control API.

The control API creates users, reads recorded session headers and injects faults, with no
credential: whoever can send it a request owns the emulated project. A browser can send one
from any site, so every `/_emulator/` call must pass three checks, in this order:

1. Host (421 `host_not_allowed`): `localhost`, a loopback address, or a name listed in
   `EMULATOR_CONTROL_HOSTS`. A page that rebinds its own name to 127.0.0.1 still sends its own
   name, so it never gets an answer it could read.
2. Origin (403 `origin_not_allowed`): no `Origin` (curl, the SDKs, tests), or one whose host
   passes the Host rule. Browsers send `Origin` on every cross-origin request and every POST.
3. Content type (415 `json_required`): a request with a body says `application/json`, which a
   cross-site form or `no-cors` fetch cannot (a "simple" request is limited to text/plain,
   form-urlencoded and multipart), so it would need a CORS preflight the emulator never grants.

The Appwrite routes (`/v1/...`) are not guarded: Appwrite answers any host and origin.
Refusals are RFC 9457 problem documents, not Appwrite errors: they come from the emulator's own
gate, not from anything Appwrite would say.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Collection
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from appwrite_token_exchange.emulator.keys import EMULATOR_CONFIG

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "tag:appwrite-token-exchange,2026:emulator/"

# code -> (status, title)
PROBLEMS = {
    "host_not_allowed": (421, "Host not allowed for the emulator's control API"),
    "origin_not_allowed": (403, "Origin not allowed for the emulator's control API"),
    "json_required": (415, "The control API takes application/json bodies only"),
}


def normalise_host(host: str) -> str:
    """Lower case, without IPv6 brackets or a trailing dot, so that one name has one spelling."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1); brackets and a trailing dot allowed."""
    host = normalise_host(host)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host: str | None, extra: Collection[str]) -> bool:
    if not host:
        return False
    return is_loopback_host(host) or normalise_host(host) in extra


def _authority_host(authority: str) -> str:
    """The host of a Host header (`name:port`, `[v6]:port`)."""
    if authority.startswith("["):
        return authority.partition("]")[0] + "]"
    return authority.partition(":")[0]


def problem(code: str, detail: str) -> web.Response:
    status, title = PROBLEMS[code]
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status, "detail": detail, "code": code}
    response = web.Response(status=status, body=json.dumps(body).encode(), content_type=PROBLEM_CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


def refusal(request: web.Request) -> web.Response | None:
    """The problem answer for a control-API request that fails a check; None when it passes."""
    extra = request.app[EMULATOR_CONFIG].control_hosts
    if not host_allowed(_authority_host(request.headers.get("Host", "")), extra):
        return problem(
            "host_not_allowed",
            "The control API answers only on localhost or a loopback address; list other names the "
            "emulator is reached by in EMULATOR_CONTROL_HOSTS.",
        )
    origin = request.headers.get("Origin")
    if origin is not None:
        try:
            origin_host = urlsplit(origin).hostname
        except ValueError:
            origin_host = None
        if not host_allowed(origin_host, extra):
            return problem("origin_not_allowed", "Web pages of other sites may not use the control API.")
    if request.body_exists and request.content_type != "application/json":
        return problem("json_required", "Send the body with Content-Type: application/json.")
    return None


def guarded(handler: Handler) -> Handler:
    """`handler` behind the checks above; control.py wraps every route with it."""

    async def guard(request: web.Request) -> web.StreamResponse:
        return refusal(request) or await handler(request)

    guard.__name__ = handler.__name__
    guard.__doc__ = handler.__doc__
    return guard
