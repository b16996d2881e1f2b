"""The `/_emulator/` control API: users, sessions, blocking, recordings, stats, reset."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from appwrite_token_exchange.emulator import EMULATOR_STATE, EmulatorConfig, EmulatorState, create_emulator_app

from tests.support.appwrite_checks import assert_error
from tests.support.emulator_client import PROJECT, Emu, EmuFactory


async def test_users_and_sessions_through_the_control_api(emu: Emu) -> None:
    created = await emu.control(
        "POST", "/users", json={"email": "ada@example.com", "password": "password-123", "name": "Ada", "userId": "ada"}
    )
    assert (created.status, await created.json()) == (201, {"userId": "ada"})
    session = await emu.control("POST", "/sessions", json={"userId": "ada", "ttlSeconds": 60})
    assert session.status == 201
    body = await session.json()
    assert set(body) == {"sessionId", "secret"}
    assert (await emu.mint(body["secret"])).status == 201
    assert emu.state.sessions[body["sessionId"]].expire == emu.clock.now + 60

    assert (await emu.control("DELETE", f"/sessions/{body['sessionId']}")).status == 204
    await assert_error(await emu.mint(body["secret"]), 401, "general_unauthorized_scope", version=emu.config.version)
    await assert_error(
        await emu.control("DELETE", f"/sessions/{body['sessionId']}"),
        404,
        "user_session_not_found",
        version=emu.config.version,
    )


async def test_an_mfa_user_and_a_session_that_passed_it(emu: Emu) -> None:
    await emu.control(
        "POST", "/users", json={"email": "m@example.com", "password": "password-123", "userId": "m", "mfa": True}
    )
    one = await (await emu.control("POST", "/sessions", json={"userId": "m"})).json()
    two = await (await emu.control("POST", "/sessions", json={"userId": "m", "factors": ["password", "totp"]})).json()
    await assert_error(await emu.mint(one["secret"]), 401, "user_more_factors_required", version=emu.config.version)
    assert (await emu.mint(two["secret"])).status == 201


async def test_blocking_and_unblocking(emu: Emu) -> None:
    user, _, cookie = emu.signed_in()
    blocked = await emu.control("POST", f"/users/{user.id}/block", json={"blocked": True})
    assert await blocked.json() == {"userId": user.id, "blocked": True}
    await assert_error(await emu.mint(cookie), 403, "user_blocked", version=emu.config.version)
    await emu.control("POST", f"/users/{user.id}/block", json={"blocked": False})
    assert (await emu.mint(cookie)).status == 201
    # No body blocks, like the state method's default.
    await emu.control("POST", f"/users/{user.id}/block")
    assert (await emu.mint(cookie)).status == 403


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "type_"),
    [
        ("POST", "/users", {"email": "ada@example.com"}, 400, "general_argument_invalid"),
        ("POST", "/users", {"email": "not-an-email", "password": "password-123"}, 400, "general_argument_invalid"),
        (
            "POST",
            "/users",
            {"email": "ada@example.com", "password": "password-123", "mfa": "yes"},
            400,
            "general_argument_invalid",
        ),
        ("POST", "/users", {"email": "taken@example.com", "password": "password-123"}, 409, "user_already_exists"),
        ("POST", "/sessions", {"userId": "nobody"}, 404, "user_not_found"),
        ("POST", "/sessions", {"userId": "taken", "ttlSeconds": "long"}, 400, "general_argument_invalid"),
        ("POST", "/users/nobody/block", {"blocked": True}, 404, "user_not_found"),
        ("POST", "/realtime/publish", {"channels": []}, 400, "general_argument_invalid"),
        ("POST", "/realtime/disconnect", {"code": 5}, 400, "general_argument_invalid"),
    ],
)
async def test_control_api_refusals(
    emu: Emu, method: str, path: str, body: dict[str, object], status: int, type_: str
) -> None:
    emu.state.create_user("taken@example.com", "password-123", user_id="taken")
    await assert_error(await emu.control(method, path, json=body), status, type_, version=emu.config.version)


async def test_a_body_that_is_not_an_object_is_refused(emu: Emu) -> None:
    response = await emu.control("POST", "/users", data="[1, 2]", headers={"Content-Type": "application/json"})
    await assert_error(response, 400, "general_argument_invalid", version=emu.config.version)


async def test_recorded_requests_show_exactly_what_was_sent(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await emu.client.post(
        "/v1/account/jwts?x=1", json={"duration": 60}, headers={**emu.headers(cookie), "X-Custom": "yes"}
    )
    await emu.client.get("/v1/account", headers=emu.headers(cookie))
    recorded = await (await emu.control("GET", "/requests", params={"path": "/v1/account/jwts"})).json()
    assert len(recorded) == 1
    [entry] = recorded
    assert (entry["method"], entry["path"], entry["query"], entry["body"]) == (
        "POST",
        "/v1/account/jwts",
        {"x": "1"},
        {"duration": 60},
    )
    assert entry["headers"]["X-Appwrite-Session"] == cookie
    assert entry["headers"]["X-Custom"] == "yes"
    assert "Cookie" not in entry["headers"]
    everything = await (await emu.control("GET", "/requests")).json()
    assert [entry["path"] for entry in everything] == ["/v1/account/jwts", "/v1/account"]


async def test_recording_is_bounded(emu: Emu) -> None:
    from appwrite_token_exchange.emulator.keys import RECORDER

    recorder = emu.app[RECORDER]
    for _ in range(1005):
        recorder.add({"path": "/x"}, "GET /x")
    assert len(recorder.find("/x")) == 1000
    assert recorder.counts["GET /x"] == 1005


async def test_stats_count_per_route(emu: Emu) -> None:
    _, session_id, cookie = emu.signed_in()
    for _ in range(3):
        await emu.mint(cookie)
    await emu.client.post("/v1/account/jwt", json={}, headers=emu.headers(cookie))
    await emu.client.delete(f"/v1/account/sessions/{session_id}", headers=emu.headers(cookie))
    stats = await (await emu.control("GET", "/stats")).json()
    assert stats["requests"] == {
        "POST /v1/account/jwts": 3,
        "POST /v1/account/jwt": 1,
        "DELETE /v1/account/sessions/{session_id}": 1,
    }
    assert stats["jwtsIssued"] == 4
    assert (stats["mode"], stats["version"]) == ("cloud", "2.2.0")


async def test_reset_clears_faults_limits_and_recordings_but_keeps_accounts(emu_factory: EmuFactory) -> None:
    emu = await emu_factory(jwt_rate_limit=1)
    _, _, cookie = emu.signed_in()
    assert (await emu.mint(cookie)).status == 201
    assert (await emu.mint(cookie)).status == 429
    await emu.control("POST", "/faults", json={"kind": "status", "status": 503, "path": "/v1/account"})
    assert (await emu.control("POST", "/reset")).status == 204
    assert (await emu.mint(cookie)).status == 201
    assert (await emu.client.get("/v1/account", headers=emu.headers(cookie))).status == 200
    stats = await (await emu.control("GET", "/stats")).json()
    assert stats["requests"] == {"POST /v1/account/jwts": 1, "GET /v1/account": 1}
    assert stats["jwtsIssued"] == 1

    assert (await emu.control("POST", "/reset", json={"accounts": True})).status == 204
    assert emu.state.users == {} and emu.state.sessions == {}
    await assert_error(await emu.mint(cookie), 401, "general_unauthorized_scope", version=emu.config.version)


def test_state_api_directly() -> None:
    state = EmulatorState(EmulatorConfig(project_id=PROJECT), clock=lambda: 1_000_000.0)
    user = state.create_user("Ada@Example.com", "password-123", name="Ada", user_id="ada")
    assert (user.id, user.email, user.name) == ("ada", "ada@example.com", "Ada")
    with pytest.raises(ValueError, match="exists"):
        state.create_user("ada@example.com", "password-123")
    with pytest.raises(ValueError, match="exists"):
        state.create_user("other@example.com", "password-123", user_id="ada")
    session_id, cookie = state.create_session("ada", ttl_seconds=5)
    found = state.verify_session_value(cookie)
    assert found is not None and found[1].id == session_id
    state.block_user("ada")
    assert state.users["ada"].status is False
    with pytest.raises(KeyError):
        state.create_session("nobody")
    with pytest.raises(KeyError):
        state.block_user("nobody")
    assert state.delete_session(session_id) is True
    assert state.delete_session(session_id) is False
    assert state.verify_session_value(cookie) is None


async def test_shutdown_lets_hung_requests_go() -> None:
    app = create_emulator_app(EmulatorConfig(project_id=PROJECT))
    user = app[EMULATOR_STATE].create_user("ada@example.com", "password-123")
    _, cookie = app[EMULATOR_STATE].create_session(user.id)
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        await http.post(server.make_url("/_emulator/faults"), json={"kind": "hang"})
        stuck = asyncio.create_task(
            http.post(
                server.make_url("/v1/account/jwts"),
                headers={"X-Appwrite-Project": PROJECT, "X-Appwrite-Session": cookie},
            )
        )
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await server.close()
        assert time.monotonic() - started < 2
        # Let go with a 503 rather than held until the server's shutdown timeout.
        assert (await stuck).status == 503
