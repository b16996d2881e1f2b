"""The Realtime handshake's Origin check: registered Web platforms, what passes without one, and
the control API and setting that register them (Appwrite: app/realtime.php, Network/Validator/Origin)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from appwrite_token_exchange.demo.run import register_demo_platforms
from appwrite_token_exchange.emulator import EmulatorConfig, create_emulator_app
from appwrite_token_exchange.emulator.realtime.origin import hostname_allowed, origin_refusal

from tests.support.emulator_client import PROJECT, Emu, EmuFactory


def refusal(host: str) -> str:
    return f"Invalid Origin. Register your new client ({host}) as a new Web platform on your project console dashboard"


async def open_socket(emu: Emu, origin: str | None, **headers: str) -> ClientWebSocketResponse:
    sent = dict(headers)
    if origin is not None:
        sent["Origin"] = origin
    params = {"project": PROJECT, "channels[]": "documents"}
    return await emu.client.ws_connect("/v1/realtime", params=params, headers=sent)


async def first_frame(ws: ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=2)
    assert message.type == WSMsgType.TEXT, message
    return dict(json.loads(message.data))


async def assert_refused(ws: ClientWebSocketResponse, message: str) -> None:
    assert await first_frame(ws) == {"type": "error", "data": {"code": 1008, "message": message}}
    closing = await ws.receive(timeout=2)
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)


async def register(emu: Emu, hostname: str) -> Any:
    return await emu.control("POST", "/platforms", json={"hostname": hostname})


async def test_an_unregistered_origin_is_refused_and_recorded(emu: Emu) -> None:
    ws = await open_socket(emu, "https://app.example.com")
    await assert_refused(ws, refusal("app.example.com"))
    [connection] = await (await emu.control("GET", "/realtime/connections")).json()
    assert connection["origin"] == "https://app.example.com"
    assert connection["error"] == {"code": 1008, "message": refusal("app.example.com")}


async def test_no_origin_is_never_checked(emu: Emu) -> None:
    """Server-side clients (the relay) send no Origin; Appwrite skips the check."""
    assert (await first_frame(await open_socket(emu, None)))["type"] == "connected"
    assert (await first_frame(await open_socket(emu, "")))["type"] == "connected"


async def test_a_registered_platform_passes_on_any_port_and_scheme(emu: Emu) -> None:
    response = await register(emu, "App.Example.com")
    assert response.status == 201
    assert await response.json() == {"hostname": "app.example.com"}
    for origin in ("https://app.example.com", "http://app.example.com:8443", "https://APP.example.com"):
        assert (await first_frame(await open_socket(emu, origin)))["type"] == "connected", origin
    await assert_refused(await open_socket(emu, "https://other.example.com"), refusal("other.example.com"))


async def test_platforms_can_be_listed_removed_and_given_as_an_origin(emu: Emu) -> None:
    assert (await register(emu, "https://app.example.com:8443/path")).status == 201
    assert (await register(emu, "*.preview.example.com")).status == 201
    listed = await (await emu.control("GET", "/platforms")).json()
    assert listed == {"hostnames": ["app.example.com", "*.preview.example.com"]}
    assert (await emu.control("DELETE", "/platforms/app.example.com")).status == 204
    assert (await emu.control("DELETE", "/platforms/app.example.com")).status == 400
    await assert_refused(await open_socket(emu, "https://app.example.com"), refusal("app.example.com"))


@pytest.mark.parametrize("hostname", ["", "app example.com", "app.example.com/x", "-bad.example", "a..b"])
async def test_a_platform_must_be_a_hostname(emu: Emu, hostname: str) -> None:
    response = await register(emu, hostname)
    assert response.status == 400
    assert (await response.json())["type"] == "general_argument_invalid"


async def test_a_wildcard_platform_matches_one_label(emu: Emu) -> None:
    await register(emu, "*.example.com")
    assert (await first_frame(await open_socket(emu, "https://pr-1.example.com")))["type"] == "connected"
    await assert_refused(await open_socket(emu, "https://a.b.example.com"), refusal("a.b.example.com"))
    await assert_refused(await open_socket(emu, "https://example.com"), refusal("example.com"))


async def test_platforms_survive_a_reset(emu: Emu) -> None:
    await register(emu, "app.example.com")
    assert (await emu.control("POST", "/reset", json={"accounts": True})).status == 204
    assert (await first_frame(await open_socket(emu, "https://app.example.com")))["type"] == "connected"


async def test_the_servers_own_host_always_passes(emu: Emu) -> None:
    """1.8.1 trusts the request's host ("Current Host"); 1.9+ its `_APP_DOMAIN`."""
    own = emu.client.make_url("/").host
    assert (await first_frame(await open_socket(emu, f"http://{own}:1234")))["type"] == "connected"


@pytest.mark.parametrize(
    ("mode", "trusted"),
    [("main", True), ("2.2.0", False), ("1.9.6", True), ("1.9.5", True), ("1.8.1", True), ("cl-1.9.6", False)],
)
async def test_localhost_is_trusted_by_self_hosted_servers_only(
    emu_factory: EmuFactory, mode: str, trusted: bool
) -> None:
    """Self-hosted Appwrite's default `_APP_DOMAIN` is `localhost`; on Cloud a page on localhost
    needs a `localhost` Web platform like any other. `cl-1.9.6` models that, and so does 2.2.0 (what
    the `cloud` alias plays): a page that passes Cloud's rule passes a self-hosted 2.x too."""
    emu = await emu_factory(mode=mode)
    ws = await open_socket(emu, "http://localhost:3000")
    if trusted:
        assert (await first_frame(ws))["type"] == "connected"
    else:
        await assert_refused(ws, refusal("localhost"))


async def test_the_auth_check_comes_before_the_origin_check(emu: Emu) -> None:
    """Appwrite resolves the user (a bad JWT is 401) before it looks at the Origin."""
    ws = await open_socket(emu, "https://evil.example", **{"X-Appwrite-JWT": "not-a-jwt"})
    frame = await first_frame(ws)
    assert frame["data"]["code"] == 401


async def test_the_platforms_setting(emu_factory: EmuFactory) -> None:
    emu = await emu_factory(platforms=("app.example.com",))
    assert (await first_frame(await open_socket(emu, "https://app.example.com")))["type"] == "connected"
    config = EmulatorConfig.from_env({"EMULATOR_PLATFORMS": " App.example.com, *.preview.example.com ,"})
    assert config.platforms == ("app.example.com", "*.preview.example.com")
    assert EmulatorConfig.from_env({}).platforms == ()
    with pytest.raises(ValueError, match="EMULATOR_PLATFORMS"):
        EmulatorConfig.from_env({"EMULATOR_PLATFORMS": "https://app.example.com"})


# --- the validator itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://app.example.com", None),
        ("chrome-extension://app.example.com", None),
        ("https://evil.example", refusal("evil.example")),
        (
            "chrome-extension://abcdef",
            "Invalid Origin. Register your new client (abcdef) as a new Web (Chrome Extension) platform"
            " on your project console dashboard",
        ),
        ("null", "Invalid Origin."),
        ("exp://192.168.0.5:8081", None),
        (f"appwrite-callback-{PROJECT}://done", None),
        (
            "myapp://callback",
            "Invalid Scheme. The scheme used (myapp) in the Origin (myapp://callback) is not supported."
            " If you are using a custom scheme, please change it to `appwrite-callback-<PROJECT_ID>`",
        ),
        (
            "appwrite-android://x",
            "Invalid Origin. Register your new client (x) as a new Android platform on your project console dashboard",
        ),
    ],
)
def test_origin_refusals(origin: str, expected: str | None) -> None:
    assert origin_refusal(origin, ["app.example.com"], PROJECT) == expected


def test_loopback_aliases_only_stand_for_an_allowed_localhost() -> None:
    """`main` lets 127.0.0.1 and [::1] pass where `localhost` is allowed; older servers do not."""
    assert origin_refusal("http://127.0.0.1:3000", ["localhost"], PROJECT, loopback_aliases=True) is None
    assert origin_refusal("http://[::1]:3000", ["localhost"], PROJECT, loopback_aliases=True) is None
    assert origin_refusal("http://127.0.0.1:3000", ["localhost"], PROJECT) == refusal("127.0.0.1")
    assert origin_refusal("http://127.0.0.1", ["app.example.com"], PROJECT, loopback_aliases=True) is not None
    assert origin_refusal("http://127.0.0.2", ["localhost"], PROJECT, loopback_aliases=True) is not None


def test_tauri_is_a_web_scheme_since_1_9_0() -> None:
    assert origin_refusal("tauri://localhost", ["localhost"], PROJECT, tauri=True) is None
    assert origin_refusal("tauri://localhost", ["localhost"], PROJECT).startswith("Invalid Scheme.")  # type: ignore[union-attr]


def test_hostname_patterns() -> None:
    assert hostname_allowed("a.example.com", ["*.example.com"])
    assert not hostname_allowed("example.com", ["*.example.com"])
    assert hostname_allowed("anything", ["*"])
    assert not hostname_allowed("a/b", ["*"])


def test_the_demo_registers_its_origins() -> None:
    """`token-exchange demo`: the page's own hosts, and behind a proxy DEMO_PUBLIC_ORIGIN's."""
    app = create_emulator_app(EmulatorConfig())
    assert register_demo_platforms(app, "127.0.0.1", "https://App.example.test") == [
        "127.0.0.1",
        "localhost",
        "app.example.test",
    ]
    assert register_demo_platforms(create_emulator_app(EmulatorConfig()), "127.0.0.1", None) == [
        "127.0.0.1",
        "localhost",
    ]
