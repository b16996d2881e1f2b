"""What people write today: an aiohttp route that builds an Appwrite SDK client for each request
and mints the JWT off the event loop (the SDK is synchronous, on `requests`).

    APPWRITE_ENDPOINT=... APPWRITE_PROJECT_ID=... PORT=... python -m bench.naive_app

No CSRF check, no limits, no logs, no metrics: the baseline the service is compared with. The SDK
(27.0.0) has no `Account.create_jwt`, so the route uses the client's generic `call`, which is what
the SDK's own services do (they also pass the project header themselves).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import uvloop
from aiohttp import web
from appwrite.client import Client
from appwrite.exception import AppwriteException

ENDPOINT = os.environ["APPWRITE_ENDPOINT"]
PROJECT = os.environ["APPWRITE_PROJECT_ID"]
COOKIE = f"a_session_{PROJECT}"


def mint(session: str) -> Any:
    client = Client().set_endpoint(ENDPOINT).set_project(PROJECT).set_session(session)
    return client.call(
        "post",
        "/account/jwts",
        {"X-Appwrite-Project": PROJECT, "content-type": "application/json"},
        {"duration": 60},
    )


async def token(request: web.Request) -> web.Response:
    session = request.cookies.get(COOKIE)
    if not session:
        return web.json_response({"message": "no session"}, status=401)
    try:
        answer = await asyncio.to_thread(mint, session)
    except AppwriteException as error:
        return web.json_response({"message": str(error)}, status=401 if error.code == 401 else 502)
    return web.json_response({"jwt": answer["jwt"]}, headers={"Cache-Control": "no-store"})


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/realtime/token", token)
    web.run_app(
        app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]), access_log=None, print=None,
        loop=uvloop.new_event_loop(),  # the service runs on uvloop: so does its baseline
    )


if __name__ == "__main__":
    main()
