"""Liveness and readiness: cheap, and saying exactly what was checked."""

from __future__ import annotations

from aiohttp import web

from appwrite_token_exchange.keys import APPWRITE, APPWRITE_VERSION, HTTP, LIFECYCLE, READINESS_CHECKS

# Answers (and failures) are kept this long, so a tight readiness poll cannot turn into load on Appwrite.
_PROBE_CACHE_SECONDS = 5.0
_PROBE_TIMEOUT_SECONDS = 1.0


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"}, headers={"Cache-Control": "no-store"})


class Readiness:
    """Ready unless draining or without an HTTP client. Appwrite being down only degrades:
    taking every replica out of the load balancer would turn clear 503 answers into proxy errors.
    """

    async def upstream_version(self, request: web.Request) -> str | None:
        return await request.app[APPWRITE_VERSION].get(
            request.app[HTTP], max_age=_PROBE_CACHE_SECONDS, wait_seconds=_PROBE_TIMEOUT_SECONDS,
            failure_ttl=_PROBE_CACHE_SECONDS,
        )

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
