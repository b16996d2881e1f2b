"""Middlewares: request id and log context, CORS, errors as problem+json (never a traceback),
`Connection: close` while draining, and a `Server` header without versions."""

from __future__ import annotations

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from appwrite_token_exchange.access.client_ip import forwarded
from appwrite_token_exchange.access.origin import PREFLIGHT_GRANTS, cors_origin, refused_origin_detail, set_cors_headers
from appwrite_token_exchange.keys import CLIENT_IP, CLIENT_SCHEME, LIFECYCLE, REQUEST_ID, SETTINGS
from appwrite_token_exchange.observability.request_id import (
    REQUEST_ID_HEADER,
    callers_request_id,
    current_request_id,
    new_request_id,
)
from appwrite_token_exchange.problems import ProblemError, problem_response, response_for

__all__ = ["REQUEST_ID_HEADER", "SERVER", "new_request_id", "request_context", "server_header"]
# What every answer names in `Server`. aiohttp's default names its own version and Python's: a
# lookup table of known flaws for anyone who asks.
SERVER = "token-exchange"
_log = structlog.get_logger(logger_name="service")

# aiohttp's own HTTP errors, as our stable codes.
_HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    431: "headers_too_large",
}


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Make the request's id and bind it (and a caller's own, see observability/request_id.py) for
    every log line of the request."""
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    current_request_id.set(request_id)  # forwarded to Appwrite (observability/request_id.py)
    # Both read in one walk of the forwarded headers; the Origin checks use the scheme.
    request[CLIENT_IP], request[CLIENT_SCHEME] = forwarded(request, request.app[SETTINGS].trusted_proxies)
    # A keep-alive connection serves many requests in one task: start each from a clean context.
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    if (callers := callers_request_id(request.headers)) is not None:
        structlog.contextvars.bind_contextvars(client_request_id=callers)
    response = await _problems(request, handler)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        set_cors_headers(response.headers, request, request.app[SETTINGS])
        if request.app[LIFECYCLE].draining:
            # This process stops soon: a keep-alive client must send its next request elsewhere.
            response.force_close()
    return response


async def server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer the app prepares (the 101 of a relayed socket, the router's 404 included) names
    no version: an `on_response_prepare` signal, which runs after aiohttp set its own `Server`.
    What the HTTP server answers before routing says the same (edge/http_server.py)."""
    response.headers[hdrs.SERVER] = SERVER


async def _problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            return _preflight(request)
        return await handler(request)
    except ProblemError as error:
        return response_for(error)
    except web.RequestPayloadError as error:
        # A body cut short or not decodable: the client's fault. The error quotes no request data,
        # but its cause may, so only its name is logged.
        _log.info("request.body_unreadable", path=request.rel_url.path, error=type(error.__cause__).__name__)
        response = problem_response("bad_request", "The request's body could not be read.")
        response.force_close()  # where this request ends and the next begins is unknown
        return response
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = _HTTP_ERROR_CODES.get(error.status, "bad_request" if error.status < 500 else "internal_error")
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return problem_response(code, error.reason, headers)
    except Exception:
        # A bug, not a user error: the traceback goes to the log, never to the client.
        _log.exception("request.failed", path=request.rel_url.path)
        return problem_response("internal_error", "The service failed to handle this request.")


def _preflight(request: web.Request) -> web.StreamResponse:
    """What the preflight grants; the origin itself is added with every answer's CORS headers."""
    settings = request.app[SETTINGS]
    if cors_origin(request, settings) is None:
        origin = request.headers.get("Origin")
        detail = (
            refused_origin_detail(origin, request, settings)
            if origin
            else "A CORS preflight must come with an Origin listed in ALLOWED_ORIGINS."
        )
        raise ProblemError("origin_not_allowed", detail)
    return web.Response(status=204, headers=PREFLIGHT_GRANTS)
