"""What differs between `main`, 2.x (Cloud now), the old Cloud line (cl-1.9.6), self-hosted 1.9.6,
1.9.5, 1.9.0 and 1.8.1."""

from __future__ import annotations

import pytest

from tests.support.appwrite_checks import assert_error, claims
from tests.support.emulator_client import EmuFactory


@pytest.mark.parametrize(
    ("mode", "version"),
    [
        ("main", "1.9.6"),
        ("2.2.0", "2.2.0"),
        ("2.x", "2.2.0"),
        ("cloud", "2.2.0"),
        ("cl-1.9.6", "1.9.6"),
        ("1.9.6", "1.9.6"),
        ("1.9", "1.9.6"),
        ("1.9.5", "1.9.5"),
        ("1.9.0", "1.9.0"),
        ("1.8.1", "1.8.1"),
        ("1.8", "1.8.1"),
    ],
)
async def test_each_mode_reports_its_version(emu_factory: EmuFactory, mode: str, version: str) -> None:
    emu = await emu_factory(mode=mode)
    assert await (await emu.client.get("/v1/health/version")).json() == {"version": version}
    await assert_error(await emu.mint(None), 401, "general_unauthorized_scope", version=version)


@pytest.mark.parametrize("duration", [0, 60, 3600, 99999, -5])
async def test_old_servers_ignore_the_duration(emu_factory: EmuFactory, duration: int) -> None:
    emu = await emu_factory(mode="1.8")
    _, _, cookie = emu.signed_in()
    response = await emu.mint(cookie, {"duration": duration})
    assert response.status == 201
    assert claims((await response.json())["jwt"])["exp"] - emu.clock.now == pytest.approx(900, abs=1)


@pytest.mark.parametrize("mode", ["main", "2.x", "cl-1.9.6", "1.9", "1.9.5", "1.9.0"])
async def test_newer_servers_honour_the_duration(emu_factory: EmuFactory, mode: str) -> None:
    emu = await emu_factory(mode=mode)
    _, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie, {"duration": 60})).json())["jwt"]
    assert claims(token)["exp"] == int(emu.clock.now) + 60


@pytest.mark.parametrize(
    ("mode", "limit", "window"),
    [
        ("main", 120, 60),
        ("2.x", 120, 60),
        ("cl-1.9.6", 120, 60),
        ("1.9", 120, 60),
        ("1.9.5", 120, 60),
        ("1.9.0", 120, 60),
        ("1.8", 100, 3600),
    ],
)
async def test_the_per_user_jwt_limit(emu_factory: EmuFactory, mode: str, limit: int, window: int) -> None:
    emu = await emu_factory(mode=mode)
    _, _, cookie = emu.signed_in()
    _, _, other_cookie = emu.signed_in("eve@example.com")
    window_end = str(int(emu.clock.now) // window * window + window)
    for used in range(limit):
        response = await emu.mint(cookie)
        assert response.status == 201
        assert response.headers["X-RateLimit-Limit"] == str(limit)
        assert response.headers["X-RateLimit-Remaining"] == str(limit - used - 1)
        assert response.headers["X-RateLimit-Reset"] == window_end
    refused = await emu.mint(cookie)
    await assert_error(refused, 429, "general_rate_limit_exceeded", version=emu.config.version)
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Reset"] == window_end
    # The window is per user...
    assert (await emu.mint(other_cookie)).status == 201
    # ...and fixed: still closed a second before it ends, open again when it does.
    emu.clock.now = int(window_end) - 1
    assert (await emu.mint(cookie)).status == 429
    emu.clock.now = int(window_end)
    reopened = await emu.mint(cookie)
    assert reopened.status == 201
    assert reopened.headers["X-RateLimit-Remaining"] == str(limit - 1)


async def test_the_limit_can_be_lowered_or_switched_off(emu_factory: EmuFactory) -> None:
    low = await emu_factory(jwt_rate_limit=2)
    _, _, cookie = low.signed_in()
    assert [(await low.mint(cookie)).status for _ in range(3)] == [201, 201, 429]

    off = await emu_factory(jwt_rate_limit=0)
    _, _, cookie = off.signed_in()
    responses = [await off.mint(cookie) for _ in range(130)]
    assert {response.status for response in responses} == {201}
    assert "X-RateLimit-Limit" not in responses[-1].headers


@pytest.mark.parametrize(
    ("mode", "status", "type_"),
    [
        ("main", 403, "user_jwt_creation_denied"),
        ("2.x", 403, "user_jwt_creation_denied"),
        ("cloud", 403, "user_jwt_creation_denied"),
        ("cl-1.9.6", 404, "user_session_not_found"),
        ("1.9", 404, "user_session_not_found"),
        ("1.9.5", 404, "user_session_not_found"),
        ("1.9.0", 404, "user_session_not_found"),
        ("1.8", 404, "user_session_not_found"),
    ],
)
async def test_minting_with_a_jwt(emu_factory: EmuFactory, mode: str, status: int, type_: str) -> None:
    emu = await emu_factory(mode=mode)
    _, _, cookie = emu.signed_in()
    token = (await (await emu.mint(cookie)).json())["jwt"]
    response = await emu.client.post("/v1/account/jwts", json={}, headers=emu.headers(X_Appwrite_JWT=token))
    await assert_error(response, status, type_, version=emu.config.version)


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("main", 401),
        ("2.x", 401),
        ("cloud", 401),
        ("cl-1.9.6", 200),
        ("1.9", 200),
        ("1.9.5", 200),
        ("1.9.0", 200),
        ("1.8", 200),
    ],
)
async def test_a_jwt_of_an_expired_session(emu_factory: EmuFactory, mode: str, status: int) -> None:
    """`main` (and 2.x, inferred) drops a JWT whose session has expired; the old Cloud line and
    self-hosted 1.9.x only check it exists."""
    emu = await emu_factory(mode=mode)
    user = emu.state.create_user("ada@example.com", "password-123")
    _, cookie = emu.state.create_session(user.id, ttl_seconds=30)
    token = (await (await emu.mint(cookie, {"duration": 3600})).json())["jwt"]
    emu.clock.advance(60)
    response = await emu.client.get("/v1/account", headers=emu.headers(X_Appwrite_JWT=token))
    assert response.status == status
