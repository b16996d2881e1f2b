"""The contract check: every answer the service gives in a test must match openapi.yaml.

`contract_middleware(failures)` is an aiohttp server middleware. Put it outermost (first) in an
application's middlewares and it checks each request/response pair against openapi.yaml with
openapi-core: the status is documented for the operation, every header the spec marks required
is there, every documented header present matches its schema, the content type is documented and
the body matches its schema. A mismatch appends a readable message to `failures`; the middleware
never raises and never changes the response, so the test that provoked it runs on unchanged.

Requests outside the documented paths and methods are checked against the spec's `x-unrouted`
answers (404 for an unknown path, 405 for a method a path does not take), and a CORS preflight on
any path against the documented preflight, as openapi.yaml says the service answers them.

The spec is read and prepared once per process, at import (never inside the event loop).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from jsonschema.exceptions import best_match  # type: ignore[import-untyped,unused-ignore]
from multidict import CIMultiDict, CIMultiDictProxy
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.media_types.util import json_loads
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.validation.exceptions import ValidationError
from openapi_core.validation.response.exceptions import HeaderValidationError, MissingRequiredHeader
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from openapi_spec_validator.readers import read_from_filename

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
PROBLEM_TYPE_PREFIX = "tag:appwrite-token-exchange,2026:problem/"
PREFLIGHT_PATH = "/v1/realtime/token"
# Synthetic paths, added to a private copy of the spec only, that carry the `x-unrouted` answers.
_NOT_FOUND_PATH = "/__contract__/unrouted/not-found"
_NOT_ALLOWED_PATH = "/__contract__/unrouted/method-not-allowed"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    spec, _ = read_from_filename(str(path))
    if not isinstance(spec, dict):
        raise ValueError(f"{path} is not an OpenAPI document")
    return dict(spec)


@dataclass(frozen=True)
class Contract:
    spec: dict[str, Any]
    openapi: OpenAPI

    @classmethod
    def build(cls, spec: dict[str, Any]) -> Contract:
        checked = copy.deepcopy(spec)
        unrouted = checked["x-unrouted"]["responses"]
        checked["paths"][_NOT_FOUND_PATH] = {"get": {"responses": {"404": unrouted["404"]}}}
        checked["paths"][_NOT_ALLOWED_PATH] = {"get": {"responses": {"405": unrouted["405"]}}}
        # OpenAPI() validates the document itself first: a broken spec fails at import.
        # openapi-core reads only application/json as JSON out of the box.
        config = Config(extra_media_type_deserializers={"application/problem+json": json_loads})
        return cls(spec, OpenAPI.from_dict(checked, config=config))

    def documented_response(self, path: str, method: str, status: int) -> dict[str, Any] | None:
        """The spec's response object for a literal path (this API has no path templates)."""
        operation = self.spec["paths"].get(path, {}).get(method)
        if not operation:
            return None
        response = operation["responses"].get(str(status))
        return self.resolve(response) if response is not None else None

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node


CONTRACT = Contract.build(load_spec())


@dataclass
class CheckedRequest:
    """The request as openapi-core's Request protocol needs it to find the operation (only the
    method and path matter for checking a response; the path may be rewritten, see below)."""

    method: str
    path: str
    parameters: RequestParameters = field(default_factory=RequestParameters)
    host_url: str = "http://127.0.0.1"
    body: bytes | None = None
    content_type: str = ""


@dataclass(frozen=True)
class CheckedResponse:
    """An aiohttp response as openapi-core's Response protocol sees it."""

    status_code: int
    data: bytes | None
    headers: CIMultiDict[str] | CIMultiDictProxy[str]
    content_type: str


def contract_middleware(failures: list[str]) -> Middleware:
    """A middleware that appends a message to `failures` for every answer outside openapi.yaml."""

    @web.middleware
    async def check_contract(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            # An HTTP exception that escaped every other middleware is still an answer.
            failures.extend(check_exchange(request, error))
            raise
        except Exception as error:
            failures.append(
                f"{request.method} {request.rel_url.path}: {type(error).__name__} escaped the service's "
                "middlewares; aiohttp answers a bare 500, which the contract does not describe"
            )
            raise
        failures.extend(check_exchange(request, response))
        return response

    return check_contract


def check_exchange(request: web.Request, response: web.StreamResponse) -> list[str]:
    """Every way this request/response pair departs from the contract, as readable messages."""
    method = request.method.lower()
    path = request.rel_url.path
    where = f"{request.method} {path} -> {response.status}"
    checked_path = path
    is_preflight = method == "options" and bool(request.headers.get("Access-Control-Request-Method"))
    if is_preflight:
        checked_path = PREFLIGHT_PATH
    elif method not in _METHODS:
        return [f"{where}: {request.method} is not a method OpenAPI can describe"]
    checked_request = CheckedRequest(method=method, path=checked_path)
    body = _body(response)
    headers = response.headers
    checked_response = CheckedResponse(
        status_code=response.status,
        data=body,
        headers=headers,
        content_type=headers.get("Content-Type", ""),
    )
    errors = list(CONTRACT.openapi.iter_response_errors(checked_request, checked_response))
    if errors and isinstance(errors[0], PathNotFound | OperationNotFound):
        # Not a documented operation: the service must answer as `x-unrouted` says.
        unrouted = _NOT_FOUND_PATH if isinstance(errors[0], PathNotFound) else _NOT_ALLOWED_PATH
        checked_path = unrouted
        checked_request = CheckedRequest(method="get", path=unrouted)
        errors = list(CONTRACT.openapi.iter_response_errors(checked_request, checked_response))
    problems = [_describe(error) for error in errors]
    if not errors:
        problems += list(_semantic_errors(request, response, checked_path, body))
    # One message per answer, naming the request, with every way it departs from the contract.
    return [f"{where}: " + " | ".join(problems)] if problems else []


def _body(response: web.StreamResponse) -> bytes | None:
    if isinstance(response, web.Response) and not isinstance(response, web.WebSocketResponse):
        body = response.body
        if isinstance(body, bytes):
            return body
        if isinstance(body, bytearray | memoryview):
            return bytes(body)
        if body is None:
            return None
        text = response.text
        return text.encode() if text is not None else None
    return None


def _semantic_errors(
    request: web.Request, response: web.StreamResponse, checked_path: str, body: bytes | None
) -> Iterator[str]:
    """What a JSON Schema cannot say but openapi.yaml does."""
    method = request.method.lower()
    documented = CONTRACT.documented_response(
        checked_path, "get" if checked_path.startswith("/__contract__/") else method, response.status
    )
    if documented is not None and "content" not in documented and body and method != "head":
        yield f"sent a {len(body)}-byte body where the contract documents none"
    if response.headers.get("Content-Type", "").startswith("application/problem+json") and body:
        problem = json.loads(body)
        if isinstance(problem, Mapping) and problem.get("type") != PROBLEM_TYPE_PREFIX + str(problem.get("code")):
            yield f"problem type {problem.get('type')!r} does not name its code {problem.get('code')!r}"


def _describe(error: BaseException) -> str:
    """One line for an openapi-core error, with the JSON Schema errors it wraps."""
    prefix = f"header {error.name}: " if isinstance(error, HeaderValidationError) else ""
    if isinstance(error, MissingRequiredHeader):
        return f"required header {error.name} is missing"
    cause = error.__cause__
    schema_errors = list(getattr(cause, "schema_errors", None) or [])
    if isinstance(cause, InvalidSchemaValue) and schema_errors:
        what = prefix or "body: "
        value = cause.value if isinstance(cause.value, str) and prefix else None
        details = []
        for schema_error in schema_errors:
            location = "/".join(str(part) for part in getattr(schema_error, "absolute_path", ())) or "(root)"
            message = getattr(schema_error, "message", str(schema_error))
            context = getattr(schema_error, "context", None)
            if context:
                message += f" ({best_match(context).message})"
            details.append(f"at {location}: {_short(message)}")
        shown = f"value {value!r} " if value is not None else ""
        return f"{what}{shown}does not match the schema: " + "; ".join(details)
    text = str(cause) if isinstance(error, ValidationError) and cause is not None else str(error)
    return prefix + _short(text or type(error).__name__)


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
