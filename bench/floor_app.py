"""The floor: the least an aiohttp service can do to mint a token. One pooled aiohttp call to
Appwrite, its answer passed back as it came, and nothing else (no checks, limits, logs, metrics).

    APPWRITE_ENDPOINT=... APPWRITE_PROJECT_ID=... PORT=... python -m bench.floor_app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

ENDPOINT = os.environ["APPWRITE_ENDPOINT"]
PROJECT = os.environ["APPWRITE_PROJECT_ID"]
COOKIE = f"a_session_{PROJECT}"
BODY = b'{"duration":60}'
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")


async def token(request: web.Request) -> web.Response:
    headers = {"X-Appwrite-Session": request.cookies.get(COOKIE, ""), "Content-Type": "application/json"}
    async with request.app[HTTP].post(f"{ENDPOINT}/account/jwts", data=BODY, headers=headers) as answer:
        raw = await answer.read()
        status = 200 if answer.status == 201 else 502
    return web.Response(body=raw, status=status, content_type="application/json")


async def http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64), headers={"X-Appwrite-Project": PROJECT}
    ) as http:
        app[HTTP] = http
        yield


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/realtime/token", token)
    app.cleanup_ctx.append(http_session)
    web.run_app(
        app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]), access_log=None, print=None,
        loop=uvloop.new_event_loop(),  # the service runs on uvloop: so does its baseline
    )


if __name__ == "__main__":
    main()
