"""The emulator's app factory and the middlewares that make every answer look like Appwrite's."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from appwrite_token_exchange.emulator import account, control
from appwrite_token_exchange.emulator.config import EmulatorConfig
from appwrite_token_exchange.emulator.errors import AppwriteError, error_response
from appwrite_token_exchange.emulator.faults import FaultStore, apply_faults
from appwrite_token_exchange.emulator.keys import (
    EMULATOR_CONFIG,
    EMULATOR_STATE,
    FAULTS,
    REALTIME,
    RECORDER,
    SHUTTING_DOWN,
)
from appwrite_token_exchange.emulator.realtime.handler import realtime
from appwrite_token_exchange.emulator.realtime.hub import RealtimeHub
from appwrite_token_exchange.emulator.recorder import RequestRecorder, record_requests
from appwrite_token_exchange.emulator.state import EmulatorState

logger = logging.getLogger(__name__)


@web.middleware
async def appwrite_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = request.app[EMULATOR_CONFIG].version
    try:
        return await handler(request)
    except AppwriteError as error:
        return error_response(error, version)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        # Appwrite's wildcard route answers every unknown path and method alike.
        return error_response(AppwriteError("general_route_not_found"), version)
    except web.HTTPException:
        raise
    except Exception:
        logger.exception("emulator handler failed")
        return error_response(AppwriteError("general_unknown"), version)


@web.middleware
async def require_project(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every REST call names the project. The version probe may leave it out (Appwrite falls back
    to its console project there); Realtime reads `?project=` and refuses with an error frame."""
    if request.path.startswith("/v1/") and request.path != "/v1/realtime":
        project = request.headers.get("X-Appwrite-Project") or request.query.get("project", "")
        exempt = not project and request.path == "/v1/health/version"
        if not exempt and project != request.app[EMULATOR_CONFIG].project_id:
            raise AppwriteError("project_not_found")
    return await handler(request)


async def _on_shutdown(app: web.Application) -> None:
    app[SHUTTING_DOWN].set()
    await app[REALTIME].close_all()


def create_emulator_app(
    config: EmulatorConfig | None = None, *, clock: Callable[[], float] | None = None
) -> web.Application:
    """A complete emulated Appwrite project; `clock` (unix seconds) lets tests move time."""
    config = config or EmulatorConfig()
    app = web.Application(middlewares=[record_requests, appwrite_errors, apply_faults, require_project])
    state = EmulatorState(config, clock or time.time)
    app[EMULATOR_CONFIG] = config
    app[EMULATOR_STATE] = state
    app[FAULTS] = FaultStore()
    app[RECORDER] = RequestRecorder()
    app[REALTIME] = RealtimeHub(config, state)
    app[SHUTTING_DOWN] = asyncio.Event()
    app.add_routes(account.routes)
    app.add_routes(control.routes)
    app.router.add_get("/v1/realtime", realtime)
    app.on_shutdown.append(_on_shutdown)
    return app
