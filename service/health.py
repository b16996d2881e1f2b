"""Liveness and readiness: cheap, and saying exactly what was checked."""

from __future__ import annotations

import time

from aiohttp import web

from service.appwrite_client import probe_version
from service.keys import APPWRITE, HTTP, LIFECYCLE, READINESS_CHECKS, SETTINGS

_PROBE_CACHE_SECONDS = 5.0
_PROBE_TIMEOUT_SECONDS = 1.0


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"}, headers={"Cache-Control": "no-store"})


class Readiness:
    """Ready unless draining or without an HTTP client. Appwrite being down only degrades:
    taking every replica out of the load balancer would turn clear 503 answers into proxy errors.
    """

    def __init__(self) -> None:
        self._probed_at = -_PROBE_CACHE_SECONDS
        self._version: str | None = None

    async def upstream_version(self, request: web.Request) -> str | None:
        # Probes are cached so a tight readiness poll cannot turn into load on Appwrite.
        now = time.monotonic()
        if now - self._probed_at >= _PROBE_CACHE_SECONDS:
            self._probed_at = now
            settings = request.app[SETTINGS]
            self._version = await probe_version(
                request.app[HTTP], settings.appwrite_endpoint, _PROBE_TIMEOUT_SECONDS
            )
        return self._version

    async def handle(self, request: web.Request) -> web.Response:
        checks: dict[str, object] = {}
        ready = True
        if request.app[LIFECYCLE].draining:
            checks["lifecycle"] = "draining"
            ready = False
        else:
            checks["lifecycle"] = "serving"
        http = request.app[HTTP]
        checks["http_client"] = "closed" if http.closed else "ok"
        ready = ready and not http.closed
        version = await self.upstream_version(request) if ready else None
        appwrite: dict[str, object] = {"status": "ok", "version": version} if version else {"status": "unreachable"}
        # Appwrite may answer and still refuse every user: the project or our settings are wrong.
        misconfigured = request.app[APPWRITE].misconfigurations.readiness() if APPWRITE in request.app else []
        if misconfigured:
            appwrite["misconfigured"] = misconfigured
            if version:
                appwrite["status"] = "misconfigured"
        checks["appwrite"] = appwrite
        for name, check in request.app[READINESS_CHECKS].items():
            checks[name] = check()
        degraded = version is None or any(
            isinstance(value, dict) and value.get("status") not in ("ok", None) for value in checks.values()
        )
        status = "unready" if not ready else ("degraded" if degraded else "ready")
        return web.json_response(
            {"status": status, "checks": checks},
            status=200 if ready else 503,
            headers={"Cache-Control": "no-store"},
        )
