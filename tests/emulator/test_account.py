"""Account, sessions, version and unknown routes, checked against the Appwrite SDK's own models."""

from __future__ import annotations

import asyncio
import json
from http.cookies import SimpleCookie
from urllib.parse import unquote

import pytest
from appwrite.client import Client
from appwrite.exception import AppwriteException
from appwrite.models import Session, User
from appwrite.services.account import Account
from appwrite_token_exchange.emulator.credentials import decode_session_value

from tests.support.appwrite_checks import assert_error, validate
from tests.support.emulator_client import API_KEY, PROJECT, Emu


async def test_account_is_the_callers_user(emu: Emu) -> None:
    user, _, cookie = emu.signed_in(name="Ada")
    response = await emu.client.get("/v1/account", headers=emu.headers(cookie))
    assert response.status == 200
    account = validate(User, await response.json())
    assert (account.id, account.email, account.name, account.status, account.mfa) == (
        user.id,
        "ada@example.com",
        "Ada",
        True,
        False,
    )
    assert account.targets[0].identifier == "ada@example.com"
    assert account.createdat.endswith("+00:00")
    # The Account model never carries the password hash.
    assert "password" not in await response.json()


async def test_account_through_a_jwt_and_as_a_guest(emu: Emu) -> None:
    user, session_id, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    by_jwt = await emu.client.get("/v1/account", headers=emu.headers(X_Appwrite_JWT=token))
    assert (await by_jwt.json())["$id"] == user.id
    # Logging out turns the still-unexpired JWT into a guest, not an error.
    emu.state.delete_session(session_id)
    after = await emu.client.get("/v1/account", headers=emu.headers(X_Appwrite_JWT=token))
    await assert_error(after, 401, "general_unauthorized_scope", version=emu.config.version)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("not-a-jwt", "Invalid token: Incomplete segments"),
        ("e30.e30.c2ln", "Invalid token: Missing header algo"),
        ("eyJhbGciOiJub25lIn0.e30.", "Invalid token: Unsupported header algo"),
        ("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.e30.AAAA", "Invalid token: Signature failed"),
    ],
)
async def test_bad_jwts_are_invalid(emu: Emu, token: str, message: str) -> None:
    response = await emu.client.get("/v1/account", headers=emu.headers(X_Appwrite_JWT=token))
    body = await assert_error(response, 401, "user_jwt_invalid", version=emu.config.version)
    assert body["message"] == f"Failed to verify JWT. {message}"


async def test_a_jwt_expires_at_exp_with_no_leeway(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie, {"duration": 5})).json())["jwt"]
    emu.clock.advance(4)
    assert (await emu.client.get("/v1/account", headers=emu.headers(X_Appwrite_JWT=token))).status == 200
    emu.clock.advance(1)
    response = await emu.client.get("/v1/account", headers=emu.headers(X_Appwrite_JWT=token))
    await assert_error(response, 401, "user_jwt_invalid", version=emu.config.version)


async def test_credentials_are_found_in_appwrites_order(emu: Emu) -> None:
    user, _, cookie = emu.signed_in()
    cookie_name = f"a_session_{PROJECT}"
    ways = [
        {"Cookie": f"{cookie_name}={cookie}"},
        {"Cookie": f"{cookie_name}_legacy={cookie}"},
        {"X-Fallback-Cookies": json.dumps({cookie_name: cookie})},
        {"X-Appwrite-Session": cookie},
    ]
    for way in ways:
        response = await emu.client.get("/v1/account", headers={"X-Appwrite-Project": PROJECT, **way})
        assert (await response.json())["$id"] == user.id, way
    # A cookie that decodes to a session (even a wrong one) stops the search: the header is not read.
    from appwrite_token_exchange.emulator.credentials import encode_session_value

    stale = encode_session_value(user.id, "stale")
    shadowed = await emu.client.get(
        "/v1/account",
        headers={"X-Appwrite-Project": PROJECT, "Cookie": f"{cookie_name}={stale}", "X-Appwrite-Session": cookie},
    )
    await assert_error(shadowed, 401, "general_unauthorized_scope", version=emu.config.version)


async def test_percent_encoding_is_undone_in_cookies_only(emu: Emu) -> None:
    # Swoole percent-decodes cookie values; X-Appwrite-Session reaches Store::decode as it is,
    # and `%` is not base64 (appwrite-wire.md: such a value decodes to nothing, a guest).
    user, _, cookie = emu.signed_in()
    encoded = "".join(f"%{ord(char):02X}" for char in cookie)
    as_cookie = await emu.client.get("/v1/account", headers=emu.headers(Cookie=f"a_session_{PROJECT}={encoded}"))
    assert (await as_cookie.json())["$id"] == user.id
    await assert_error(
        await emu.client.get("/v1/account", headers=emu.headers(encoded)),
        401,
        "general_unauthorized_scope",
        version=emu.config.version,
    )


async def test_a_cookie_for_another_project_is_ignored(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    response = await emu.client.get("/v1/account", headers=emu.headers(Cookie=f"a_session_other={cookie}"))
    await assert_error(response, 401, "general_unauthorized_scope", version=emu.config.version)


async def test_current_session_hides_its_secret(emu: Emu) -> None:
    user, session_id, cookie = emu.signed_in()
    response = await emu.client.get("/v1/account/sessions/current", headers=emu.headers(cookie))
    session = validate(Session, await response.json())
    assert (session.id, session.userid, session.current, session.secret) == (session_id, user.id, True, "")
    assert session.factors == ["password"]
    assert session.expire > session.createdat


async def test_current_session_through_a_jwt_is_not_found(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    response = await emu.client.get("/v1/account/sessions/current", headers=emu.headers(X_Appwrite_JWT=token))
    await assert_error(response, 404, "user_session_not_found", version=emu.config.version)


async def test_logout_ends_the_session_and_expires_the_cookies(emu: Emu) -> None:
    _, session_id, cookie = emu.signed_in()
    response = await emu.client.delete("/v1/account/sessions/current", headers=emu.headers(cookie))
    assert response.status == 204
    assert await response.read() == b""
    cookies = SimpleCookie()
    for header in response.headers.getall("Set-Cookie"):
        cookies.load(header)
    assert {f"a_session_{PROJECT}", f"a_session_{PROJECT}_legacy"} <= set(cookies)
    assert cookies[f"a_session_{PROJECT}"].value == "deleted"
    assert cookies[f"a_session_{PROJECT}"]["max-age"] == "0"
    assert session_id not in emu.state.sessions
    await assert_error(await emu.mint(cookie), 401, "general_unauthorized_scope", version=emu.config.version)


async def test_logout_by_id_only_for_ones_own_sessions(emu: Emu) -> None:
    user, _, cookie = emu.signed_in()
    other_session, _ = emu.state.create_session(user.id)
    _, stranger_session, _ = emu.signed_in("eve@example.com")
    refused = await emu.client.delete(f"/v1/account/sessions/{stranger_session}", headers=emu.headers(cookie))
    await assert_error(refused, 404, "user_session_not_found", version=emu.config.version)
    assert stranger_session in emu.state.sessions
    response = await emu.client.delete(f"/v1/account/sessions/{other_session}", headers=emu.headers(cookie))
    assert response.status == 204
    assert "Set-Cookie" not in response.headers  # not the current session: cookies stay
    assert (await emu.mint(cookie)).status == 201


async def test_email_login_sets_appwrites_cookies(emu: Emu) -> None:
    user = emu.state.create_user("ada@example.com", "password-123")
    response = await emu.client.post(
        "/v1/account/sessions/email",
        json={"email": "Ada@Example.com", "password": "password-123"},
        headers={"X-Appwrite-Project": PROJECT, "X-Forwarded-For": "203.0.113.9, 10.0.0.1"},
    )
    assert response.status == 201
    session = validate(Session, await response.json())
    assert (session.userid, session.secret, session.provider, session.ip) == (user.id, "", "email", "203.0.113.9")
    raw = {header.split("=", 1)[0]: header for header in response.headers.getall("Set-Cookie")}
    main = raw[f"a_session_{PROJECT}"]
    assert "HttpOnly" in main and "SameSite=None" in main and "Path=/" in main
    assert "SameSite" not in raw[f"a_session_{PROJECT}_legacy"]
    value = unquote(main.split("=", 1)[1].split(";", 1)[0])
    assert decode_session_value(value)[0] == user.id
    assert (await emu.mint(value)).status == 201


async def test_email_login_with_an_api_key_returns_the_secret(emu: Emu) -> None:
    emu.state.create_user("ada@example.com", "password-123")
    response = await emu.client.post(
        "/v1/account/sessions/email",
        json={"email": "ada@example.com", "password": "password-123"},
        headers={"X-Appwrite-Project": PROJECT, "X-Appwrite-Key": API_KEY},
    )
    secret = validate(Session, await response.json()).secret
    assert secret
    assert (await emu.mint(secret)).status == 201
    # The client kept the session cookie; signing in again with it would be refused.
    emu.client.session.cookie_jar.clear()
    wrong_key = await emu.client.post(
        "/v1/account/sessions/email",
        json={"email": "ada@example.com", "password": "password-123"},
        headers={"X-Appwrite-Project": PROJECT, "X-Appwrite-Key": "not-the-key"},
    )
    assert (await wrong_key.json())["secret"] == ""


@pytest.mark.parametrize(
    ("body", "status", "type_"),
    [
        ({"email": "ada@example.com", "password": "wrong-password"}, 401, "user_invalid_credentials"),
        ({"email": "nobody@example.com", "password": "password-123"}, 401, "user_invalid_credentials"),
        ({"email": "not-an-email", "password": "password-123"}, 400, "general_argument_invalid"),
        ({"email": "ada@example.com", "password": "short"}, 400, "general_argument_invalid"),
        ({}, 400, "general_argument_invalid"),
    ],
)
async def test_email_login_refusals(emu: Emu, body: dict[str, str], status: int, type_: str) -> None:
    emu.state.create_user("ada@example.com", "password-123")
    response = await emu.client.post("/v1/account/sessions/email", json=body, headers=emu.headers())
    await assert_error(response, status, type_, version=emu.config.version)
    assert "Set-Cookie" not in response.headers


async def test_a_blocked_user_cannot_log_in(emu: Emu) -> None:
    user = emu.state.create_user("ada@example.com", "password-123")
    emu.state.block_user(user.id)
    response = await emu.client.post(
        "/v1/account/sessions/email",
        json={"email": "ada@example.com", "password": "password-123"},
        headers=emu.headers(),
    )
    await assert_error(response, 403, "user_blocked", version=emu.config.version)


async def test_version(emu: Emu) -> None:
    """The default mode is `cloud`, which is the 2.x line now."""
    response = await emu.client.get("/v1/health/version")
    assert await response.json() == {"version": "2.2.0"}
    wrong_project = await emu.client.get("/v1/health/version", headers={"X-Appwrite-Project": "nope"})
    await assert_error(wrong_project, 404, "project_not_found", version=emu.config.version)


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/nothing/here"), ("PATCH", "/v1/account/jwts")])
async def test_unknown_routes_answer_like_appwrite(emu: Emu, method: str, path: str) -> None:
    response = await emu.client.request(method, path, headers=emu.headers())
    await assert_error(response, 404, "general_route_not_found", version=emu.config.version)


async def test_the_python_sdk_reads_every_answer(emu: Emu) -> None:
    """Appwrite's own (synchronous) SDK, run in a worker thread, against the emulator."""
    user, session_id, cookie = emu.signed_in()
    endpoint = str(emu.client.make_url("/v1"))

    def account(session: str) -> Account:
        return Account(Client().set_endpoint(endpoint).set_project(PROJECT).set_session(session))

    me = await asyncio.to_thread(account(cookie).get)
    assert isinstance(me, User) and me.id == user.id
    current = await asyncio.to_thread(account(cookie).get_session, "current")
    assert isinstance(current, Session) and current.id == session_id
    await asyncio.to_thread(account(cookie).delete_session, "current")
    with pytest.raises(AppwriteException) as refused:
        await asyncio.to_thread(account(cookie).get)
    assert (refused.value.code, refused.value.type) == (401, "general_unauthorized_scope")
