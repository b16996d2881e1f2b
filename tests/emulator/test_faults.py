"""Injected faults: each kind, how long it lasts, and which paths it hits."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import jwt as pyjwt
import pytest

from tests.support.appwrite_checks import assert_error, claims
from tests.support.emulator_client import KEY, Emu


async def fault(emu: Emu, kind: str, **options: Any) -> dict[str, Any]:
    response = await emu.control("POST", "/faults", json={"kind": kind, **options})
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def test_latency_delays_then_answers(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "latency", ms=200)
    started = time.monotonic()
    response = await emu.mint(cookie)
    assert time.monotonic() - started >= 0.2
    assert response.status == 201


@pytest.mark.parametrize(
    ("status", "type_"), [(500, "general_unknown"), (502, "general_server_error"), (503, "general_server_error")]
)
async def test_status_is_an_appwrite_error(emu: Emu, status: int, type_: str) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "status", status=status)
    await assert_error(await emu.mint(cookie), status, type_, version=emu.config.version)


async def test_status_can_carry_any_known_type_and_message(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "status", status=501, type="user_auth_method_unsupported", message="JWT auth is off")
    body = await assert_error(await emu.mint(cookie), 501, "user_auth_method_unsupported", version=emu.config.version)
    assert body["message"] == "JWT auth is off"


async def test_rate_limit_is_a_429_with_reset(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "rate_limit")
    response = await emu.mint(cookie)
    await assert_error(response, 429, "general_rate_limit_exceeded", version=emu.config.version)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > emu.clock.now


async def test_drop_closes_the_connection_without_an_answer(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "drop", times=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await emu.mint(cookie)
    assert (await emu.mint(cookie)).status == 201


async def test_garbage_is_unparsable_json(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "garbage")
    response = await emu.mint(cookie)
    assert response.status == 201
    assert response.content_type == "application/json"
    with pytest.raises(ValueError):
        json.loads(await response.read())


async def test_not_json_is_an_html_page(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "not_json")
    response = await emu.mint(cookie)
    assert (response.status, response.content_type) == (201, "text/html")
    assert (await response.text()).startswith("<!DOCTYPE html>")


async def test_no_jwt_is_an_empty_object(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "no_jwt")
    response = await emu.mint(cookie)
    assert (response.status, await response.json()) == (201, {})


async def test_bad_signature_is_the_real_token_signed_with_another_key(emu: Emu) -> None:
    user, session_id, cookie = emu.signed_in()
    await fault(emu, "bad_signature")
    response = await emu.mint(cookie, {"duration": 60})
    assert response.status == 201
    assert response.headers["X-RateLimit-Limit"] == "120"
    token = (await response.json())["jwt"]
    assert claims(token) == {"userId": user.id, "sessionId": session_id, "exp": int(emu.clock.now) + 60}
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(token, KEY, algorithms=["HS256"], options={"verify_exp": False})
    rejected = await emu.client.get("/v1/account", headers=emu.headers(X_Appwrite_JWT=token))
    await assert_error(rejected, 401, "user_jwt_invalid", version=emu.config.version)


async def test_bad_signature_leaves_refusals_alone(emu: Emu) -> None:
    await fault(emu, "bad_signature")
    await assert_error(await emu.mint(None), 401, "general_unauthorized_scope", version=emu.config.version)


async def hanging(emu: Emu) -> int:
    return int((await (await emu.control("GET", "/stats")).json())["hanging"])


async def wait_for_hanging(emu: Emu, count: int) -> None:
    for _ in range(100):
        if await hanging(emu) == count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"hanging stayed at {await hanging(emu)}, not {count}")


@pytest.mark.slow
async def test_hang_never_answers_and_lets_go_when_the_client_gives_up(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "hang", times=1)
    stuck = asyncio.create_task(
        emu.client.post(
            "/v1/account/jwts",
            json={},
            headers=emu.headers(cookie),
            timeout=aiohttp.ClientTimeout(total=0.5),
        )
    )
    await wait_for_hanging(emu, 1)
    with pytest.raises(asyncio.TimeoutError):
        await stuck
    await wait_for_hanging(emu, 0)
    assert (await emu.mint(cookie)).status == 201


async def test_times_counts_down_and_clearing_ends_faults(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "status", status=503, times=2)
    assert [(await emu.mint(cookie)).status for _ in range(3)] == [503, 503, 201]

    await fault(emu, "status", status=500)
    listed = await (await emu.control("GET", "/faults")).json()
    assert [(entry["kind"], entry["status"], entry["path"]) for entry in listed] == [
        ("status", 500, "/v1/account/jwts")
    ]
    assert [(await emu.mint(cookie)).status for _ in range(2)] == [500, 500]
    assert (await emu.control("DELETE", "/faults")).status == 204
    assert (await emu.mint(cookie)).status == 201
    assert await (await emu.control("GET", "/faults")).json() == []


async def test_faults_hit_only_their_path(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "status", status=503)
    assert (await emu.client.get("/v1/account", headers=emu.headers(cookie))).status == 200
    assert (await emu.client.post("/v1/account/jwt", json={}, headers=emu.headers(cookie))).status == 503
    # The control API is never faulted, whatever the path says.
    await fault(emu, "status", status=500, path="*")
    assert (await emu.control("GET", "/stats")).status == 200
    assert (await emu.client.get("/v1/health/version")).status == 500


async def test_a_prefix_path(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "status", status=502, path="/v1/account/sessions*")
    assert (await emu.client.get("/v1/account/sessions/current", headers=emu.headers(cookie))).status == 502
    assert (await emu.mint(cookie)).status == 201


async def test_faulted_requests_are_still_recorded(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    await fault(emu, "drop")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await emu.mint(cookie, {"duration": 42})
    recorded = await (await emu.control("GET", "/requests", params={"path": "/v1/account/jwts"})).json()
    assert [entry["body"] for entry in recorded] == [{"duration": 42}]


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "explode"},
        {},
        {"kind": "status", "status": 42},
        {"kind": "latency", "ms": -1},
        {"kind": "status", "times": 0},
        {"kind": "status", "type": "no_such_type"},
        {"kind": "status", "path": ""},
    ],
)
async def test_bad_faults_are_refused(emu: Emu, body: dict[str, Any]) -> None:
    response = await emu.control("POST", "/faults", json=body)
    await assert_error(response, 400, "general_argument_invalid", version=emu.config.version)
    assert await (await emu.control("GET", "/faults")).json() == []
