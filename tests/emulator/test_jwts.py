"""`POST /v1/account/jwts`: the token, its claims, and every way Appwrite refuses to mint one."""

from __future__ import annotations

import json

import jwt as pyjwt
import pytest
from appwrite.models import Jwt

from tests.support.appwrite_checks import assert_error, claims, segment, validate
from tests.support.emulator_client import KEY, PROJECT, Emu, EmuFactory

SCOPE_MESSAGE = 'User (role: guests) missing scopes (["account"])'


async def test_mints_a_jwt_bound_to_the_session(emu: Emu) -> None:
    user, session_id, cookie = emu.signed_in()
    response = await emu.mint(cookie, {"duration": 60})
    assert response.status == 201
    body = await response.json()
    assert list(body) == ["jwt"]
    token = validate(Jwt, body).jwt
    assert segment(token, 0) == b'{"typ":"JWT","alg":"HS256"}'
    assert json.loads(segment(token, 1)) == {"userId": user.id, "sessionId": session_id, "exp": int(emu.clock.now) + 60}
    assert list(claims(token)) == ["userId", "sessionId", "exp"]
    # Signed with the instance key: an independent JWT library agrees.
    decoded = pyjwt.decode(token, KEY, algorithms=["HS256"], options={"verify_exp": False})
    assert decoded["userId"] == user.id
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(
            token, "another-key-of-thirty-two-bytes-or-more", algorithms=["HS256"], options={"verify_exp": False}
        )


async def test_default_duration_is_900_seconds(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    assert claims(token)["exp"] == int(emu.clock.now) + 900


@pytest.mark.parametrize("duration", [1, 3600, "120"])
async def test_duration_range_is_inclusive(emu: Emu, duration: object) -> None:
    _, _, cookie = emu.signed_in()
    response = await emu.mint(cookie, {"duration": duration})
    assert response.status == 201
    assert claims((await response.json())["jwt"])["exp"] == int(emu.clock.now) + int(str(duration))


@pytest.mark.parametrize("duration", [-1, 3601, "abc", "1e2", True, 1.5, [60], {}])
async def test_duration_out_of_range_is_an_invalid_argument(emu: Emu, duration: object) -> None:
    _, _, cookie = emu.signed_in()
    response = await emu.mint(cookie, {"duration": duration})
    body = await assert_error(response, 400, "general_argument_invalid", version=emu.config.version)
    assert body["message"] == "Invalid `duration` param: Value must be a valid range between 0 and 3,600"
    assert response.headers["X-RateLimit-Limit"] == "120"


async def test_a_null_duration_means_the_default(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    response = await emu.mint(cookie, {"duration": None})
    assert claims((await response.json())["jwt"])["exp"] == int(emu.clock.now) + 900


async def test_zero_duration_passes_the_range_but_the_jwt_library_throws(emu: Emu) -> None:
    """Range(0, 3600) lets 0 through; adhocore/jwt then refuses maxAge 0 and Appwrite answers 500."""
    _, _, cookie = emu.signed_in()
    response = await emu.mint(cookie, {"duration": 0})
    body = await assert_error(response, 500, "general_unknown", version=emu.config.version)
    assert body["message"] == "Server Error"
    assert emu.state.jwts_issued == 0


async def test_the_alias_route_mints_too(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    response = await emu.client.post("/v1/account/jwt", json={}, headers=emu.headers(cookie))
    assert response.status == 201
    assert claims((await response.json())["jwt"])["exp"] == int(emu.clock.now) + 900


async def test_form_and_empty_bodies_are_read(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    form = await emu.client.post("/v1/account/jwts", data={"duration": "30"}, headers=emu.headers(cookie))
    assert claims((await form.json())["jwt"])["exp"] == int(emu.clock.now) + 30
    empty = await emu.client.post("/v1/account/jwts", headers=emu.headers(cookie))
    assert claims((await empty.json())["jwt"])["exp"] == int(emu.clock.now) + 900


async def test_without_a_session_the_scope_is_missing(emu: Emu) -> None:
    response = await emu.mint(None)
    body = await assert_error(response, 401, "general_unauthorized_scope", version=emu.config.version)
    assert body["message"] == SCOPE_MESSAGE
    # The scope check runs before the rate limiter, so a refused guest sees no limit headers.
    assert "X-RateLimit-Limit" not in response.headers


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "eyJpZCI6InUiLCJzZWNyZXQiOiJzIn0=",  # {"id":"u","secret":"s"}: no such user
        "",
    ],
)
async def test_a_bad_session_value_is_unauthorized(emu: Emu, value: str) -> None:
    emu.signed_in()
    await assert_error(await emu.mint(value), 401, "general_unauthorized_scope", version=emu.config.version)


async def test_a_wrong_secret_for_a_real_user_is_unauthorized(emu: Emu) -> None:
    from appwrite_token_exchange.emulator.credentials import encode_session_value

    user, _, _ = emu.signed_in()
    await assert_error(
        await emu.mint(encode_session_value(user.id, "0" * 256)),
        401,
        "general_unauthorized_scope",
        version=emu.config.version,
    )


async def test_an_expired_session_is_unauthorized(emu: Emu) -> None:
    user = emu.state.create_user("late@example.com", "password-123")
    _, cookie = emu.state.create_session(user.id, ttl_seconds=10)
    assert (await emu.mint(cookie)).status == 201
    emu.clock.advance(11)
    await assert_error(await emu.mint(cookie), 401, "general_unauthorized_scope", version=emu.config.version)


async def test_a_deleted_session_is_unauthorized(emu: Emu) -> None:
    _, session_id, cookie = emu.signed_in()
    assert emu.state.delete_session(session_id)
    await assert_error(await emu.mint(cookie), 401, "general_unauthorized_scope", version=emu.config.version)


async def test_a_blocked_user_is_forbidden_until_unblocked(emu: Emu) -> None:
    user, _, cookie = emu.signed_in()
    emu.state.block_user(user.id)
    await assert_error(await emu.mint(cookie), 403, "user_blocked", version=emu.config.version)
    emu.state.block_user(user.id, blocked=False)
    assert (await emu.mint(cookie)).status == 201


async def test_mfa_needs_a_second_factor(emu: Emu) -> None:
    user, _, cookie = emu.signed_in(mfa=True)
    await assert_error(await emu.mint(cookie), 401, "user_more_factors_required", version=emu.config.version)
    _, both_factors = emu.state.create_session(user.id, factors=["password", "totp"])
    assert (await emu.mint(both_factors)).status == 201


async def test_a_jwt_cannot_mint_a_jwt(emu_factory: EmuFactory) -> None:
    emu = await emu_factory(mode="main")
    _, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    response = await emu.client.post("/v1/account/jwts", json={}, headers=emu.headers(X_Appwrite_JWT=token))
    await assert_error(response, 403, "user_jwt_creation_denied", version=emu.config.version)
    assert response.headers["X-RateLimit-Remaining"] == "118"


async def test_a_jwt_next_to_a_valid_session_is_refused(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    response = await emu.mint(cookie, X_Appwrite_JWT=token)
    await assert_error(response, 403, "user_jwt_and_cookie_set", version=emu.config.version)


async def test_a_jwt_next_to_an_invalid_session_is_used_alone(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    response = await emu.client.get("/v1/account", headers=emu.headers("not-a-session", X_Appwrite_JWT=token))
    assert response.status == 200


async def test_the_project_must_be_named(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    missing = await emu.client.post("/v1/account/jwts", headers={"X-Appwrite-Session": cookie})
    await assert_error(missing, 404, "project_not_found", version=emu.config.version)
    wrong = await emu.client.post(
        "/v1/account/jwts", headers={"X-Appwrite-Project": "other", "X-Appwrite-Session": cookie}
    )
    await assert_error(wrong, 404, "project_not_found", version=emu.config.version)
    by_query = await emu.client.post(f"/v1/account/jwts?project={PROJECT}", headers={"X-Appwrite-Session": cookie})
    assert by_query.status == 201
