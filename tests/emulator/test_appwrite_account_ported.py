"""Appwrite's own account e2e tests (REST side), ported and run against every server we emulate.

Each test names where it comes from: a file under `tests/e2e/` of appwrite/appwrite and a test
method, read at the refs `main` (2026-08-21), `cl-1.9.6-1`, `1.9.6`, `1.9.0` and `1.8.1`. A test
runs for the servers whose ref contains the Appwrite test; where the refs assert different things
(status codes, rate-limit headers, extra steps), the expectation follows the ref. The 2.x source
and the 1.9.5 tests were not read: `2.2.0` runs with `main`'s expectations and `1.9.5` with
1.9.6's (inferred, see the emulator README). Only assertions
about what the emulator serves are ported: steps through routes it does not have (`POST /account`,
`PATCH /users/{id}/status`, `GET /users/{id}`) become direct state or control-API calls, and
assertions on those routes are left out (each test says which).

Requests are made the way Appwrite's test client makes them: explicit `cookie` headers with the
value taken from `Set-Cookie`, `origin: http://localhost`, and no cookie jar.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient
from appwrite_token_exchange.emulator import EMULATOR_STATE, EmulatorConfig, EmulatorState, create_emulator_app
from appwrite_token_exchange.emulator.config import SERVERS, Server

from tests.support.emulator_client import API_KEY, KEY, PROJECT, FakeClock

ORIGIN = "http://localhost"
COOKIE = f"a_session_{PROJECT}"
# PHP's DateTime::createFromFormat('Y-m-d\TH:i:s.uP', ...): microseconds are 1-6 digits.
_EXPIRE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{1,6}[+-]\d{2}:\d{2}")

ALL: tuple[Server, ...] = SERVERS
# `main` and what plays it (2.x, inferred from `main`).
ONLY_MAIN: tuple[Server, ...] = ("main", "2.2.0")


@dataclass
class Answer:
    status: int
    headers: Any
    body: Any
    cookies: dict[str, str]


@dataclass
class Appwrite:
    """One emulated project, called like Appwrite's e2e `Client::call`."""

    client: TestClient[web.Request, web.Application]
    state: EmulatorState
    clock: FakeClock
    server: Server

    async def call(self, method: str, path: str, headers: dict[str, str], params: Any = None) -> Answer:
        response = await self.client.request(method, f"/v1{path}", headers=headers, json=params)
        text = await response.text()
        body: Any = await response.json() if text and response.content_type == "application/json" else text
        cookies: dict[str, str] = {}
        for header in response.headers.getall("Set-Cookie", []):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            cookies.update({name: morsel.value for name, morsel in jar.items()})
        return Answer(response.status, response.headers, body, cookies)

    def client_headers(self, cookie: str | None = None, **extra: str) -> dict[str, str]:
        """`origin`, `content-type`, `x-appwrite-project` (and a session cookie), as the tests send."""
        sent = {"origin": ORIGIN, "content-type": "application/json", "x-appwrite-project": PROJECT}
        if cookie is not None:
            sent["cookie"] = f"{COOKIE}={cookie}"
        sent.update({name.replace("_", "-"): value for name, value in extra.items()})
        return sent

    def create_account(self, email: str, password: str = "password", name: str = "User Name") -> str:
        """Stands in for `POST /account` (not emulated)."""
        return self.state.create_user(email, password, name=name).id

    async def login(self, email: str, password: str = "password") -> Answer:
        return await self.call(
            "POST", "/account/sessions/email", self.client_headers(), {"email": email, "password": password}
        )


AppwriteFactory = Callable[[Server], Awaitable[Appwrite]]


@pytest.fixture
async def appwrite_for(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
) -> AppwriteFactory:
    async def start(server: Server) -> Appwrite:
        clock = FakeClock()
        config = EmulatorConfig(project_id=PROJECT, jwt_secret=KEY, api_key=API_KEY, mode=server)
        app = create_emulator_app(config, clock=clock)
        client = await aiohttp_client(app, cookie_jar=DummyCookieJar())
        return Appwrite(client, app[EMULATOR_STATE], clock, server)

    return start


def blocked_status(server: Server) -> int:
    return 401 if server == "1.8.1" else 403


# --- tests/e2e/Services/Account/AccountCustomClientTest.php --------------------------------------


@pytest.mark.parametrize("server", ALL)
async def test_custom_client_create_account_session(appwrite_for: AppwriteFactory, server: Server) -> None:
    """AccountCustomClientTest::testCreateAccountSession (all five refs). Left out: `GET /users/{id}`
    (`accessedAt`, needs an API-key route the emulator does not have)."""
    aw = await appwrite_for(server)
    aw.create_account("user@localhost.test")

    response = await aw.login("user@localhost.test")
    assert response.status == 201
    assert _EXPIRE.fullmatch(response.body["expire"])
    session = response.cookies[COOKIE]

    account = await aw.call("GET", "/account", aw.client_headers(session))
    assert account.status == 200
    assert account.body["email"] == "user@localhost.test"

    # The older alias of the route.
    response = await aw.call(
        "POST", "/account/sessions", aw.client_headers(), {"email": "user@localhost.test", "password": "password"}
    )
    assert response.status == 201
    assert response.body["secret"] == ""
    assert _EXPIRE.fullmatch(response.body["expire"])

    # FAILURE: already signed in, wrong email, wrong password, empty parameters.
    credentials = {"email": "user@localhost.test", "password": "password"}
    assert (await aw.call("POST", "/account/sessions/email", aw.client_headers(session), credentials)).status == 401
    wrong_email = {"email": "user@localhost.testx", "password": "password"}
    assert (await aw.call("POST", "/account/sessions/email", aw.client_headers(), wrong_email)).status == 401
    wrong_password = {"email": "user@localhost.test", "password": "passwordx"}
    assert (await aw.call("POST", "/account/sessions/email", aw.client_headers(), wrong_password)).status == 401
    empty = {"email": "", "password": ""}
    assert (await aw.call("POST", "/account/sessions/email", aw.client_headers(), empty)).status == 400


@pytest.mark.parametrize("server", ALL)
async def test_custom_client_get_account(appwrite_for: AppwriteFactory, server: Server) -> None:
    """AccountCustomClientTest::testGetAccount (all five refs)."""
    aw = await appwrite_for(server)
    user_id = aw.create_account("user@localhost.test", name="User Name")
    session = (await aw.login("user@localhost.test")).cookies[COOKIE]

    response = await aw.call("GET", "/account", aw.client_headers(session))
    assert response.status == 200
    assert response.body["$id"] == user_id
    assert _EXPIRE.fullmatch(response.body["registration"])
    assert (response.body["email"], response.body["name"]) == ("user@localhost.test", "User Name")
    assert response.body["accessedAt"]

    no_session = {"content-type": "application/json", "x-appwrite-project": PROJECT}
    assert (await aw.call("GET", "/account", no_session)).status == 401
    spoiled = {**no_session, "cookie": f"{COOKIE}={session}xx"}
    assert (await aw.call("GET", "/account", spoiled)).status == 401


@pytest.mark.parametrize("server", ALL)
async def test_custom_client_delete_account_session(appwrite_for: AppwriteFactory, server: Server) -> None:
    """AccountCustomClientTest::testDeleteAccountSession (all five refs)."""
    aw = await appwrite_for(server)
    aw.create_account("user@localhost.test")
    session = (await aw.login("user@localhost.test")).cookies[COOKIE]

    response = await aw.login("user@localhost.test")
    assert response.status == 201
    new_id, new_session = response.body["$id"], response.cookies[COOKIE]
    assert (await aw.call("GET", "/account", aw.client_headers(new_session))).status == 200
    deleted = await aw.call("DELETE", f"/account/sessions/{new_id}", aw.client_headers(new_session))
    assert deleted.status == 204
    assert (await aw.call("GET", "/account", aw.client_headers(session))).status == 200
    # FAILURE
    assert (await aw.call("GET", "/account", aw.client_headers(new_session))).status == 401


@pytest.mark.parametrize("server", ALL)
async def test_custom_client_delete_account_session_current(appwrite_for: AppwriteFactory, server: Server) -> None:
    """AccountCustomClientTest::testDeleteAccountSessionCurrent (all five refs)."""
    aw = await appwrite_for(server)
    aw.create_account("user@localhost.test")
    response = await aw.login("user@localhost.test")
    assert response.status == 201
    session = response.cookies[COOKIE]
    assert (await aw.call("GET", "/account", aw.client_headers(session))).status == 200
    assert (await aw.call("DELETE", "/account/sessions/current", aw.client_headers(session))).status == 204
    # FAILURE
    assert (await aw.call("GET", "/account", aw.client_headers(session))).status == 401


@pytest.mark.parametrize("server", ALL)
async def test_custom_client_delete_account_sessions(appwrite_for: AppwriteFactory, server: Server) -> None:
    """AccountCustomClientTest::testDeleteAccountSessions (all five refs; on 1.8.1 it then signs in
    again for the tests that depend on it, which is ported as the last step)."""
    aw = await appwrite_for(server)
    aw.create_account("user@localhost.test")
    session = (await aw.login("user@localhost.test")).cookies[COOKIE]

    assert (await aw.call("DELETE", "/account/sessions", aw.client_headers(session))).status == 204
    # FAILURE
    assert (await aw.call("GET", "/account", aw.client_headers())).status == 401
    if server == "1.8.1":
        assert (await aw.login("user@localhost.test")).cookies[COOKIE]


@pytest.mark.parametrize("server", ONLY_MAIN)
async def test_custom_client_delete_account_sessions_with_jwt(appwrite_for: AppwriteFactory, server: Server) -> None:
    """AccountCustomClientTest::testDeleteAccountSessionsWithJWT (main only; 2.x inferred)."""
    aw = await appwrite_for(server)
    aw.create_account("user@localhost.test")
    response = await aw.login("user@localhost.test")
    assert response.status == 201
    session = response.cookies[COOKIE]

    minted = await aw.call("POST", "/account/jwt", aw.client_headers(session))
    assert minted.status == 201
    jwt = minted.body["jwt"]
    deleted = await aw.call("DELETE", "/account/sessions", aw.client_headers(x_appwrite_jwt=jwt))
    assert deleted.status == 204


@pytest.mark.parametrize("server", ALL)
async def test_custom_client_blocked_account(appwrite_for: AppwriteFactory, server: Server) -> None:
    """AccountCustomClientTest::testBlockedAccount (all five refs: 1.8.1 answers 401, the others
    403). `PATCH /users/{id}/status` is the control API's block call here."""
    aw = await appwrite_for(server)
    user_id = aw.create_account("user@localhost.test", name="User Name (blocked)")
    response = await aw.login("user@localhost.test")
    assert response.status == 201
    session = response.cookies[COOKIE]
    assert (await aw.call("GET", "/account", aw.client_headers(session))).status == 200

    blocked = await aw.client.post(f"/_emulator/users/{user_id}/block", json={"blocked": True})
    assert blocked.status == 200

    assert (await aw.call("GET", "/account", aw.client_headers(session))).status == blocked_status(server)
    assert (await aw.login("user@localhost.test")).status == blocked_status(server)


@pytest.mark.parametrize("server", ALL)
async def test_custom_client_create_jwt(appwrite_for: AppwriteFactory, server: Server) -> None:
    """AccountCustomClientTest::testCreateJWT (all five refs). The rate-limit header says 99 left on
    1.8.1 and 119 since 1.9.0; only `main` refuses minting with a JWT (403
    `user_jwt_creation_denied`); the custom-duration half exists since 1.9.0 (its `sleep(6)` is a
    clock move here)."""
    aw = await appwrite_for(server)
    aw.create_account("user@localhost.test", name="User Name (JWT)")
    response = await aw.login("user@localhost.test")
    assert response.status == 201
    session_id, session = response.body["$id"], response.cookies[COOKIE]
    assert (await aw.call("GET", "/account", aw.client_headers(session))).status == 200

    minted = await aw.call("POST", "/account/jwt", aw.client_headers(session))
    assert minted.status == 201
    assert minted.headers["x-ratelimit-remaining"] == ("99" if server == "1.8.1" else "119")
    assert isinstance(minted.body["jwt"], str) and minted.body["jwt"]
    jwt = minted.body["jwt"]

    assert (await aw.call("GET", "/account", aw.client_headers(x_appwrite_jwt="wrong-token"))).status == 401
    assert (await aw.call("GET", "/account", aw.client_headers(x_appwrite_jwt=jwt))).status == 200

    if server in ONLY_MAIN:
        # "Ensure a JWT cannot be created from a request authorized with a JWT"
        denied = await aw.call("POST", "/account/jwt", aw.client_headers(x_appwrite_jwt=jwt))
        assert denied.status == 403
        assert denied.body["type"] == "user_jwt_creation_denied"

    deleted = await aw.call("DELETE", f"/account/sessions/{session_id}", aw.client_headers(session))
    assert deleted.status == 204
    assert (await aw.call("GET", "/account", aw.client_headers(x_appwrite_jwt=jwt))).status == 401

    if server == "1.8.1":
        return
    # Test JWT with custom duration
    response = await aw.login("user@localhost.test")
    assert response.status == 201
    session = response.cookies[COOKIE]
    minted = await aw.call("POST", "/account/jwt", aw.client_headers(session), {"duration": 5})
    assert minted.status == 201
    jwt = minted.body["jwt"]
    assert (await aw.call("GET", "/account", aw.client_headers(x_appwrite_jwt=jwt))).status == 200
    aw.clock.advance(6)
    assert (await aw.call("GET", "/account", aw.client_headers(x_appwrite_jwt=jwt))).status == 401


# --- tests/e2e/Services/Account/AccountCustomServerTest.php --------------------------------------


@pytest.mark.parametrize("server", ALL)
async def test_custom_server_create_account_session(appwrite_for: AppwriteFactory, server: Server) -> None:
    """AccountCustomServerTest::testCreateAccountSession (all five refs): with an API key the new
    session's `secret` is filled in, and it works as `x-appwrite-session`. Left out: `GET /users/{id}`."""
    aw = await appwrite_for(server)
    aw.create_account("user@localhost.test")
    server_headers = {"content-type": "application/json", "x-appwrite-project": PROJECT, "x-appwrite-key": API_KEY}
    credentials = {"email": "user@localhost.test", "password": "password"}

    response = await aw.call("POST", "/account/sessions/email", server_headers, credentials)
    assert response.status == 201
    assert _EXPIRE.fullmatch(response.body["expire"])
    response = await aw.call("POST", "/account/sessions/email", server_headers, credentials)
    assert response.status == 201
    assert response.body["secret"]
    session = response.body["secret"]

    # FAILURE: signed in already (through the header), wrong email, wrong password, empty.
    with_session = {**server_headers, "x-appwrite-session": session}
    assert (await aw.call("POST", "/account/sessions/email", with_session, credentials)).status == 401
    wrong_email = {"email": "user@localhost.testx", "password": "password"}
    assert (await aw.call("POST", "/account/sessions/email", server_headers, wrong_email)).status == 401
    wrong_password = {"email": "user@localhost.test", "password": "passwordx"}
    assert (await aw.call("POST", "/account/sessions/email", server_headers, wrong_password)).status == 401
    empty = {"email": "", "password": ""}
    assert (await aw.call("POST", "/account/sessions/email", server_headers, empty)).status == 400


@pytest.mark.parametrize("server", ALL)
async def test_custom_server_get_account(appwrite_for: AppwriteFactory, server: Server) -> None:
    """AccountCustomServerTest::testGetAccount (all five refs): `x-appwrite-session` in place of the
    cookie."""
    aw = await appwrite_for(server)
    user_id = aw.create_account("user@localhost.test", name="User Name")
    server_headers = {"content-type": "application/json", "x-appwrite-project": PROJECT, "x-appwrite-key": API_KEY}
    login = await aw.call(
        "POST", "/account/sessions/email", server_headers, {"email": "user@localhost.test", "password": "password"}
    )
    session = login.body["secret"]

    response = await aw.call("GET", "/account", {**server_headers, "x-appwrite-session": session})
    assert response.status == 200
    assert response.body["$id"] == user_id
    assert _EXPIRE.fullmatch(response.body["registration"])
    assert (response.body["email"], response.body["name"]) == ("user@localhost.test", "User Name")
    assert response.body["accessedAt"]
    # FAILURE
    assert (
        await aw.call("GET", "/account", {"content-type": "application/json", "x-appwrite-project": PROJECT})
    ).status == 401


# --- tests/e2e/General/HooksTest.php ---------------------------------------------------------------


@pytest.mark.parametrize("server", ALL)
async def test_hooks_user_hooks_blocked_user(appwrite_for: AppwriteFactory, server: Server) -> None:
    """HooksTest::testUserHooks (all five refs), the account half: a blocked user's session gets
    `user_blocked`, 401 on 1.8.1 and 403 since 1.9.0. The user blocks themselves there
    (`PATCH /account/status`, not emulated): the control API blocks here; `GET /v1/locale` (not
    emulated) is `GET /v1/account`."""
    aw = await appwrite_for(server)
    user_id = aw.create_account("user@localhost.test")
    response = await aw.login("user@localhost.test")
    assert response.status == 201
    session = response.cookies[COOKIE]
    assert (await aw.call("GET", "/account", aw.client_headers(session))).status == 200
    await aw.client.post(f"/_emulator/users/{user_id}/block", json={})
    refused = await aw.call("GET", "/account", aw.client_headers(session))
    assert refused.status == blocked_status(server)
    assert refused.body["type"] == "user_blocked"
