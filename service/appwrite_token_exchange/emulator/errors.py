"""Appwrite's error catalogue and its JSON error body, as the real server renders them.

The status codes and default messages come from Appwrite's `app/config/errors.php`; the body is
`{"message", "code", "type", "version"}` in that order: the production error handler builds
message, code, version, type, but the response goes through the `Error` model, whose rules
(message, code, type, version) fix the order on the wire (src/Appwrite/Utopia/Response/Model/Error.php).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from appwrite_token_exchange.emulator.config import EmulatorConfig

# type -> (HTTP status, default message)
CATALOGUE: Mapping[str, tuple[int, str]] = {
    "general_unknown": (500, "Server Error"),
    "general_server_error": (500, "An internal server error occurred."),
    "general_bad_request": (
        400,
        "There was an error processing your request. Please check the inputs and try again.",
    ),
    "general_argument_invalid": (
        400,
        "The request contains one or more invalid arguments. Please refer to the endpoint documentation.",
    ),
    "general_unauthorized_scope": (
        401,
        "The current user or API key does not have the required scopes to access the requested resource.",
    ),
    "general_access_forbidden": (401, "Access to this API is forbidden."),
    "general_route_not_found": (
        404,
        "Route not found. Please ensure the endpoint is configured correctly and that the API "
        "route is valid for this SDK version. Refer to the API docs for more details.",
    ),
    "general_rate_limit_exceeded": (
        429,
        "Rate limit for the current endpoint has been exceeded. Please try again after some time.",
    ),
    "general_not_implemented": (405, "This method was not fully implemented yet."),
    "project_not_found": (
        404,
        "Project with the requested ID could not be found. Please check the value of the "
        "X-Appwrite-Project header to ensure the correct project ID is being used.",
    ),
    "user_not_found": (404, "User with the requested ID could not be found."),
    "user_already_exists": (
        409,
        "A user with the same id, email, or phone already exists in this project.",
    ),
    "user_blocked": (403, "The current user has been blocked."),
    "user_invalid_credentials": (401, "Invalid credentials. Please check the email and password."),
    "user_session_not_found": (404, "The current user session could not be found."),
    "user_session_already_exists": (401, "Creation of a session is prohibited when a session is active."),
    "user_more_factors_required": (
        401,
        "More factors are required to complete the sign in process.",
    ),
    "user_auth_method_unsupported": (
        501,
        "The requested authentication method is either disabled or unsupported. Please check the "
        "supported authentication methods in the Appwrite console.",
    ),
    "user_jwt_invalid": (
        401,
        "The JWT token is invalid. Please check the value of the X-Appwrite-JWT header to ensure "
        "the correct token is being used.",
    ),
    "user_jwt_and_cookie_set": (
        403,
        "JWT and cookie used in the same request. Use either `setJWT` or `setCookie`. Learn about "
        "which authentication method to use in the SSR docs: "
        "https://appwrite.io/docs/products/auth/server-side-rendering",
    ),
    "user_jwt_creation_denied": (
        403,
        "A JWT cannot be created from a request authorized with a JWT. Authenticate with a "
        "session cookie or session header instead.",
    ),
}

# The type a bare status code most plausibly carries, for faults that only name a status.
_TYPE_FOR_STATUS: Mapping[int, str] = {
    400: "general_bad_request",
    401: "general_unauthorized_scope",
    403: "general_access_forbidden",
    404: "general_route_not_found",
    429: "general_rate_limit_exceeded",
    500: "general_unknown",
}

# Appwrite marks every error response uncacheable.
_NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Expires": "0", "Pragma": "no-cache"}


class AppwriteError(Exception):
    """An error the emulator answers in Appwrite's shape; raised anywhere inside a handler."""

    def __init__(
        self,
        type_: str,
        message: str | None = None,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        default_status, default_message = CATALOGUE[type_]
        self.type = type_
        self.message = default_message if message is None else message
        self.status = default_status if status is None else status
        self.headers = dict(headers or {})
        super().__init__(self.message)


def type_for_status(status: int) -> str:
    if status in _TYPE_FOR_STATUS:
        return _TYPE_FOR_STATUS[status]
    return "general_server_error" if status >= 500 else "general_bad_request"


def blocked_error(config: EmulatorConfig) -> AppwriteError:
    """`user_blocked` as the server generation renders it: 1.8.1 has 401 and a longer message."""
    if config.blocked_status == 401:
        return AppwriteError("user_blocked", _BLOCKED_MESSAGE_1_8, status=401)
    return AppwriteError("user_blocked")


_BLOCKED_MESSAGE_1_8 = (
    "The current user has been blocked. You can unblock the user by making a request to the User "
    "API's \"Update User Status\" endpoint or in the Appwrite Console's Auth section."
)


def error_body(error: AppwriteError, version: str) -> dict[str, object]:
    return {"message": error.message, "code": error.status, "type": error.type, "version": version}


def error_response(error: AppwriteError, version: str) -> web.Response:
    response = web.json_response(error_body(error, version), status=error.status)
    response.headers.update(_NO_CACHE)
    response.headers.update(error.headers)
    return response
