"""The control API's guard against web pages (emulator/guard.py): Host, Origin, content type, and
the CLI's refusal to bind beyond loopback. The Appwrite routes stay open to any host and origin."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from appwrite_token_exchange import cli
from appwrite_token_exchange.emulator import EmulatorConfig, control
from appwrite_token_exchange.emulator.guard import is_loopback_host

from tests.support.emulator_client import PROJECT, Emu, EmuFactory

USER = {"email": "ada@example.com", "password": "password-123", "userId": "ada"}


async def assert_problem(response: Any, status: int, code: str) -> None:
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/problem+json"
    body = json.loads(text)
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"].endswith(f"/{code}")
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_cross_site_text_plain_post_creates_no_user(emu: Emu) -> None:
    # What a form or a `no-cors` fetch from any site can send without a preflight.
    plain = {"Content-Type": "text/plain"}
    answer = await emu.control("POST", "/users", data=json.dumps(USER), headers=plain)
    await assert_problem(answer, 415, "json_required")
    cross_site = {**plain, "Origin": "https://attacker.example"}
    answer = await emu.control("POST", "/users", data=json.dumps(USER), headers=cross_site)
    await assert_problem(answer, 403, "origin_not_allowed")
    for form in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        answer = await emu.control("POST", "/users", data=b"a=b", headers={"Content-Type": form})
        await assert_problem(answer, 415, "json_required")
    assert emu.state.users == {}


@pytest.mark.parametrize(
    "origin", ["https://attacker.example", "http://127.0.0.1.attacker.example:8081", "null", "http://[::1"]
)
async def test_a_foreign_origin_is_refused_even_with_json(emu: Emu, origin: str) -> None:
    answer = await emu.control("POST", "/users", json=USER, headers={"Origin": origin})
    await assert_problem(answer, 403, "origin_not_allowed")
    assert emu.state.users == {}


@pytest.mark.parametrize("host", ["attacker.example:8081", "attacker.example", "127.0.0.1.nip.io", "0.0.0.0:8081", ""])
async def test_a_rebound_host_reads_no_recorded_session(emu: Emu, host: str) -> None:
    _, _, cookie = emu.signed_in()
    assert (await emu.mint(cookie)).status == 201  # recorded, session header included
    answer = await emu.control("GET", "/requests", headers={"Host": host})
    await assert_problem(answer, 421, "host_not_allowed")
    assert cookie not in await answer.text()
    answer = await emu.control("POST", "/users", json=USER, headers={"Host": host})
    await assert_problem(answer, 421, "host_not_allowed")


@pytest.mark.parametrize("host", ["localhost:8081", "LOCALHOST", "127.0.0.1", "127.1.2.3:9", "[::1]:8081", "localhost."])
async def test_loopback_json_still_works(emu: Emu, host: str) -> None:
    answer = await emu.control(
        "POST", "/users", json=USER, headers={"Host": host, "Origin": "http://localhost:3000"}
    )
    assert (answer.status, await answer.json()) == (201, {"userId": "ada"})
    assert (await emu.control("GET", "/requests", headers={"Host": host})).status == 200
    # A body-less call needs no content type; charset parameters are fine.
    assert (await emu.control("POST", "/users/ada/block", headers={"Host": host})).status == 200
    sent = {"Host": host, "Content-Type": "application/json; charset=utf-8"}
    assert (await emu.control("POST", "/reset", data=b"{}", headers=sent)).status == 204


async def test_hosts_listed_in_the_config_are_allowed(emu_factory: EmuFactory) -> None:
    emu = await emu_factory(control_hosts=("emulator", "fd00::1"))
    for host in ("emulator:8081", "[fd00::1]:8081"):
        answer = await emu.control("GET", "/stats", headers={"Host": host, "Origin": f"http://{host}"})
        assert answer.status == 200, host
    await assert_problem(await emu.control("GET", "/stats", headers={"Host": "other:8081"}), 421, "host_not_allowed")


async def test_every_control_route_is_guarded(emu: Emu) -> None:
    for route in control.routes:
        path = route.path.replace("{user_id}", "ada").replace("{session_id}", "s").replace("{hostname}", "h")
        answer = await emu.client.request(route.method, path, headers={"Host": "attacker.example"})
        await assert_problem(answer, 421, "host_not_allowed")


async def test_the_appwrite_routes_answer_any_host_and_origin(emu: Emu) -> None:
    _, _, cookie = emu.signed_in()
    foreign = {"Host": "appwrite.example", "Origin": "https://app.example", "Content-Type": "text/plain"}
    answer = await emu.client.post("/v1/account/jwts", data=b"", headers={**emu.headers(cookie), **foreign})
    assert answer.status == 201
    version = await emu.client.get("/v1/health/version", headers={"Host": "appwrite.example"})
    assert version.status == 200


def test_control_hosts_from_the_environment() -> None:
    config = EmulatorConfig.from_env({"EMULATOR_CONTROL_HOSTS": " Emulator ,[FD00::1], 10.0.0.2"})
    assert config.control_hosts == ("emulator", "fd00::1", "10.0.0.2")
    for bad in ("*.example.com", "emulator:8081", "http://emulator"):
        with pytest.raises(ValueError, match="EMULATOR_CONTROL_HOSTS"):
            EmulatorConfig.from_env({"EMULATOR_CONTROL_HOSTS": bad})


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.9.9.9", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("localhost.example", False), ("example", False)],
)
def test_which_binds_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """cli.main's `emulator` up to where it would serve: what it would have served with."""
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(web, "run_app", lambda app, **kwargs: served.append(kwargs))
    monkeypatch.setattr(cli, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setenv("EMULATOR_PROJECT_ID", PROJECT)
    return served


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "emulator.internal"])
def test_a_non_loopback_bind_needs_allow_remote(
    no_serving: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], host: str
) -> None:
    assert cli.main(["emulator", "--host", host, "--port", "1"]) == 2
    assert no_serving == []
    assert "--allow-remote" in capsys.readouterr().err

    assert cli.main(["emulator", "--host", host, "--port", "1", "--allow-remote"]) == 0
    assert [served["host"] for served in no_serving] == [host]
    assert "warning" in capsys.readouterr().err


def test_a_loopback_bind_needs_no_flag(no_serving: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["emulator", "--port", "1"]) == 0
    assert cli.main(["emulator", "--host", "localhost", "--port", "1"]) == 0
    assert [served["host"] for served in no_serving] == ["127.0.0.1", "localhost"]
    assert capsys.readouterr().err == ""
