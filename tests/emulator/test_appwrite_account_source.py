"""REST behaviour that Appwrite's e2e suite does not assert but its source fixes, per server.

Each test names the appwrite/appwrite source it follows (file, and the refs read: `main` of
2026-08-21, `cl-1.9.6-1`, `1.9.6`, `1.9.0`, `1.8.1`; `2.2.0` follows `main` and `1.9.5` follows
1.9.6, both inferred) and the line of `../shared/appwrite-wire.md` it
proves. The ported e2e tests are in test_appwrite_account_ported.py.
"""

from __future__ import annotations

import json

import pytest
from appwrite_token_exchange.emulator.config import SERVERS, Server

from tests.support.appwrite_checks import assert_error, claims
from tests.support.emulator_client import EmuFactory

VERSION = {
    "main": "1.9.6",
    "2.2.0": "2.2.0",
    "cl-1.9.6": "1.9.6",
    "1.9.6": "1.9.6",
    "1.9.5": "1.9.5",
    "1.9.0": "1.9.0",
    "1.8.1": "1.8.1",
}
# `main` and what plays it (2.x: its source is not read, so inferred from `main`).
NEWEST = ("main", "2.2.0")


@pytest.mark.parametrize("server", SERVERS)
async def test_error_body_keys_in_the_error_models_order(emu_factory: EmuFactory, server: Server) -> None:
    """src/Appwrite/Utopia/Response/Model/Error.php (all refs): rules message, code, type, version,
    whatever order app/controllers/general.php builds them in."""
    emu = await emu_factory(mode=server)
    response = await emu.client.get("/v1/account", headers=emu.headers())
    body = await assert_error(response, 401, "general_unauthorized_scope", version=VERSION[server])
    assert list(json.loads(json.dumps(body))) == ["message", "code", "type", "version"]


@pytest.mark.parametrize("server", SERVERS)
async def test_blocked_user_status_and_message(emu_factory: EmuFactory, server: Server) -> None:
    """app/config/errors.php USER_BLOCKED: 401 with the long message on 1.8.1, 403 since 1.9.0."""
    emu = await emu_factory(mode=server)
    user, _, cookie = emu.signed_in()
    emu.state.block_user(user.id)
    status = 401 if server == "1.8.1" else 403
    for response in (await emu.mint(cookie), await emu.client.get("/v1/account", headers=emu.headers(cookie))):
        body = await assert_error(response, status, "user_blocked", version=VERSION[server])
        assert body["message"].startswith("The current user has been blocked.")
        assert ("Update User Status" in body["message"]) is (server == "1.8.1")


@pytest.mark.parametrize("server", SERVERS)
async def test_a_jwt_next_to_a_session(emu_factory: EmuFactory, server: Server) -> None:
    """app/init/resources.php (1.8.1, 1.9.0), app/init/resources/request.php (1.9.6+): the
    `user_jwt_and_cookie_set` check exists since 1.9.0; on 1.8.1 the JWT's user replaces the
    session's, so another user's JWT wins."""
    emu = await emu_factory(mode=server)
    _, _, ada_cookie = emu.signed_in("ada@example.com")
    eve, _, eve_cookie = emu.signed_in("eve@example.com")
    eve_jwt = (await (await emu.mint(eve_cookie)).json())["jwt"]
    response = await emu.client.get("/v1/account", headers=emu.headers(ada_cookie, X_Appwrite_JWT=eve_jwt))
    if server == "1.8.1":
        assert response.status == 200
        assert (await response.json())["$id"] == eve.id
    else:
        await assert_error(response, 403, "user_jwt_and_cookie_set", version=VERSION[server])


async def test_on_1_8_a_jwt_with_its_own_session_can_still_mint(emu_factory: EmuFactory) -> None:
    """1.8.1 app/controllers/api/account.php createJWT: `sessionVerify` reads the secret still in the
    store (from the cookie), so a JWT sent with its own user's session mints; a JWT alone is 404."""
    emu = await emu_factory(mode="1.8.1")
    _, session_id, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    both = await emu.mint(cookie, X_Appwrite_JWT=token)
    assert both.status == 201
    assert claims((await both.json())["jwt"])["sessionId"] == session_id
    alone = await emu.client.post("/v1/account/jwts", json={}, headers=emu.headers(X_Appwrite_JWT=token))
    await assert_error(alone, 404, "user_session_not_found", version="1.8.1")


@pytest.mark.parametrize("server", SERVERS)
async def test_duration_zero(emu_factory: EmuFactory, server: Server) -> None:
    """app/controllers/api/account.php createJWT: since 1.9.0 `Range(0, 3600)` admits 0 and
    `new JWT($key, 'HS256', 0, 0)` throws (adhocore/jwt: maxAge must be > 0), a 500
    `general_unknown` "Server Error"; 1.8.1 has no `duration` and issues a 900 s token."""
    emu = await emu_factory(mode=server)
    _, _, cookie = emu.signed_in()
    response = await emu.mint(cookie, {"duration": 0})
    if server == "1.8.1":
        assert response.status == 201
        assert claims((await response.json())["jwt"])["exp"] == int(emu.clock.now) + 900
    else:
        body = await assert_error(response, 500, "general_unknown", version=VERSION[server])
        assert body["message"] == "Server Error"
        # The abuse limit counted the call before the action failed.
        assert response.headers["X-RateLimit-Remaining"] == "119"


@pytest.mark.parametrize("server", SERVERS)
async def test_delete_all_sessions(emu_factory: EmuFactory, server: Server) -> None:
    """app/controllers/api/account.php `DELETE /v1/account/sessions`: every session of the user
    goes; the caller's cookies expire; without a verified domain `X-Fallback-Cookies: []`."""
    emu = await emu_factory(mode=server)
    user, _, cookie = emu.signed_in()
    _, other = emu.state.create_session(user.id)
    _, _, eve_cookie = emu.signed_in("eve@example.com")
    response = await emu.client.delete("/v1/account/sessions", headers=emu.headers(cookie))
    assert response.status == 204
    assert response.headers["X-Fallback-Cookies"] == "[]"
    expired = {header.split("=", 1)[0]: header for header in response.headers.getall("Set-Cookie")}
    assert expired["a_session_emu-project"].startswith("a_session_emu-project=deleted;")
    assert expired["a_session_emu-project_legacy"].startswith("a_session_emu-project_legacy=deleted;")
    assert emu.state.sessions_of(user.id) == []
    for gone in (cookie, other):
        await assert_error(await emu.mint(gone), 401, "general_unauthorized_scope", version=VERSION[server])
    assert (await emu.mint(eve_cookie)).status == 201
    # Only for a signed-in user.
    await assert_error(
        await emu.client.delete("/v1/account/sessions", headers=emu.headers()),
        401,
        "general_unauthorized_scope",
        version=VERSION[server],
    )


@pytest.mark.parametrize("server", SERVERS)
async def test_email_login_fallback_cookies(emu_factory: EmuFactory, server: Server) -> None:
    """app/controllers/api/account.php createEmailPasswordSession + the `domainVerification`
    resource: without an Origin (or from another site, or on localhost) the answer repeats the
    session in `X-Fallback-Cookies` (JSON, PHP-escaped `/`), which the caller can send back."""
    emu = await emu_factory(mode=server)
    emu.state.create_user("ada@example.com", "password-123")
    credentials = {"email": "ada@example.com", "password": "password-123"}
    response = await emu.client.post("/v1/account/sessions/email", json=credentials, headers=emu.headers())
    assert response.status == 201
    raw = response.headers["X-Fallback-Cookies"]
    assert " " not in raw and "/" not in raw.replace("\\/", "")
    value = json.loads(raw)["a_session_emu-project"]
    emu.client.session.cookie_jar.clear()
    fallback = await emu.client.get("/v1/account", headers=emu.headers(X_Fallback_Cookies=raw))
    assert fallback.status == 200
    assert (await emu.mint(value)).status == 201


async def test_no_fallback_cookies_for_the_apis_own_site(emu_factory: EmuFactory) -> None:
    """`domainVerification` is true when the Origin's registrable domain is the API host's."""
    emu = await emu_factory()
    emu.state.create_user("ada@example.com", "password-123")
    credentials = {"email": "ada@example.com", "password": "password-123"}
    seen = {}
    for name, origin in (("own", "https://app.example.com"), ("other", "https://app.example.org"), ("none", "")):
        headers = emu.headers(Host="api.example.com", **({"Origin": origin} if origin else {}))
        response = await emu.client.post("/v1/account/sessions/email", json=credentials, headers=headers)
        assert response.status == 201
        seen[name] = "X-Fallback-Cookies" in response.headers
        emu.client.session.cookie_jar.clear()
    assert seen == {"own": False, "other": True, "none": True}


@pytest.mark.parametrize("server", SERVERS)
async def test_signing_in_while_signed_in(emu_factory: EmuFactory, server: Server) -> None:
    """app/controllers/shared/api.php, the `session` group's init hook: 401
    `user_session_already_exists` for a caller who already has a session."""
    emu = await emu_factory(mode=server)
    _, _, cookie = emu.signed_in()
    credentials = {"email": "ada@example.com", "password": "password-123"}
    response = await emu.client.post("/v1/account/sessions/email", json=credentials, headers=emu.headers(cookie))
    await assert_error(response, 401, "user_session_already_exists", version=VERSION[server])


@pytest.mark.parametrize("server", SERVERS)
async def test_a_jwt_whose_session_expired(emu_factory: EmuFactory, server: Server) -> None:
    """app/init/resources/request.php: `main` checks `sessionActive` (exists and unexpired); the
    Cloud line, 1.9.6, 1.9.0 and 1.8.1 only look the session up."""
    emu = await emu_factory(mode=server)
    user = emu.state.create_user("ada@example.com", "password-123")
    _, cookie = emu.state.create_session(user.id, ttl_seconds=30)
    token = (await (await emu.mint(cookie)).json())["jwt"]
    emu.clock.advance(60)
    response = await emu.client.get("/v1/account", headers=emu.headers(X_Appwrite_JWT=token))
    assert response.status == (401 if server in NEWEST else 200)
