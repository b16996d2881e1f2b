"""The demo page's routes: server-side sign-in into an httpOnly cookie, sign-out, the page's config,
and the browser code it serves (the SDK's ESM build, its json-bigint dependency, the helper)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.demo.site import (
    DemoSite,
    asset_locations,
    browser_endpoint,
    json_bigint_module,
    load_assets,
    page_path,
    setup_demo,
)
from appwrite_token_exchange.emulator.config import DEFAULT_API_KEY

from tests.support.helpers import assert_problem, inject_fault
from tests.support.service import COOKIE, PROJECT, Emulator, exchange, service_settings

EMAIL, PASSWORD = "demo@example.com", "demo-password"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
def node_modules(tmp_path: Path) -> Path:
    """A stand-in for clients/js/node_modules with just the files the demo serves."""
    files = {
        "appwrite/package.json": json.dumps({"name": "appwrite", "version": "28.0.0"}),
        "appwrite/dist/esm/sdk.js": "import JSONbigModule from 'json-bigint';\nexport class Client {}\n",
        "bignumber.js/bignumber.mjs": "export default function BigNumber() {}\n",
        "json-bigint/lib/parse.js": "module.exports = function (options) { return JSON.parse; };\n",
        "json-bigint/lib/stringify.js": "var JSON = module.exports; JSON.stringify = globalThis.JSON.stringify;\n",
        "realtime-auth.js": "export function realtimeAuth() {}\n",
        "realtime-hub.js": "export function serveSharedRealtime() {}\n",
        "shared-realtime.js": "export function sharedRealtime() {}\n",
    }
    for name, text in files.items():
        path = tmp_path / "node_modules" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "node_modules"


@pytest.fixture
async def demo_factory(
    emulator: Emulator,
    node_modules: Path,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> Callable[..., Awaitable[tuple[Client, str]]]:
    """The service with the demo routes in front of the emulator: (client, demo user id)."""

    async def start(sdk_dir: Path | None = None, checkout_defaults: bool = False) -> tuple[Client, str]:
        user = emulator.state.create_user(EMAIL, PASSWORD, name="Demo User")
        settings = service_settings(emulator)
        app = create_app(settings)
        site = DemoSite(
            appwrite_endpoint=settings.appwrite_endpoint,
            project_id=PROJECT,
            api_key=DEFAULT_API_KEY,
            cookie_name=COOKIE,
            user_id=user.id,
            email=EMAIL,
            password=PASSWORD,
            publish_interval_seconds=0,
        )
        helper = node_modules / "realtime-auth.js"
        overrides = {"DEMO_SDK_DIR": str(sdk_dir or node_modules), "DEMO_HELPER_JS": str(helper)}
        setup_demo(app, site, {} if checkout_defaults else overrides)
        client = await aiohttp_client(app)
        return client, user.id

    return start


def origin(client: Client) -> dict[str, str]:
    return {"Origin": str(client.make_url("/")).rstrip("/")}


async def sign_in(client: Client, password: str = PASSWORD, page: str = "") -> Any:
    response = await client.post(
        "/demo/login",
        data={"email": EMAIL, "password": password, "page": page},
        headers=origin(client),
        allow_redirects=False,
    )
    client.session.cookie_jar.clear()  # every test sends the cookie it means to send
    return response


def session_cookie(response: Any) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        cookie.load(header)
    return cookie


async def test_sign_in_sets_an_httponly_lax_cookie_holding_a_working_session(demo_factory: Any) -> None:
    client, user_id = await demo_factory()
    response = await sign_in(client, page="via=relay&evil=https://x.example&minRefresh=2")
    assert response.status == 303
    assert response.headers["Location"] == "/?via=relay&minRefresh=2"
    assert await response.text() == ""
    morsel = session_cookie(response)[COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/"
    assert int(morsel["max-age"]) > 0

    token = await exchange(client, morsel.value)
    assert token.status == 200
    assert (await token.json())["userId"] == user_id


async def test_wrong_password_sets_no_cookie(demo_factory: Any) -> None:
    client, _ = await demo_factory()
    response = await sign_in(client, password="wrong-password")
    assert response.status == 303
    assert response.headers["Location"] == "/?login=failed"
    assert "Set-Cookie" not in response.headers


async def test_cross_origin_posts_are_refused(demo_factory: Any) -> None:
    client, _ = await demo_factory()
    for path in ("/demo/login", "/demo/logout", "/demo/publish"):
        response = await client.post(path, headers={"Origin": "https://evil.example"}, allow_redirects=False)
        await assert_problem(response, 403, "origin_not_allowed")
        assert "Set-Cookie" not in response.headers


async def test_config_says_who_is_signed_in_but_never_carries_the_session(demo_factory: Any) -> None:
    client, user_id = await demo_factory()
    anonymous = await client.get("/demo/config")
    assert anonymous.headers["Cache-Control"] == "no-store"
    body = await anonymous.json()
    assert body["signedIn"] is False and body["user"] is None
    assert body["sdk"] == {"version": "28.0.0", "problem": None}

    value = session_cookie(await sign_in(client))[COOKIE].value
    signed_in = await client.get("/demo/config", headers={"Cookie": f"{COOKIE}={value}"})
    text = await signed_in.text()
    body = json.loads(text)
    assert body["signedIn"] is True
    assert body["user"] == {"id": user_id, "name": "Demo User", "email": EMAIL}
    assert value not in text
    # The page reaches Appwrite under the other loopback name, so the app's cookie stays home.
    assert body["endpoint"].startswith("http://localhost:")


async def test_sign_out_deletes_the_session_in_appwrite_and_clears_the_cookie(demo_factory: Any) -> None:
    client, _ = await demo_factory()
    value = session_cookie(await sign_in(client))[COOKIE].value
    response = await client.post("/demo/logout", headers={**origin(client), "Cookie": f"{COOKIE}={value}"})
    assert response.status == 204
    cleared = session_cookie(response)[COOKIE]
    assert cleared.value == "" and cleared["max-age"] == "0"
    # The old value is dead in Appwrite itself, not just forgotten by the browser.
    await assert_problem(await exchange(client, value), 401, "session_invalid")


async def test_publish_now_answers_how_many_subscriptions_got_it(demo_factory: Any) -> None:
    client, _ = await demo_factory()
    response = await client.post("/demo/publish", headers=origin(client))
    assert response.status == 200
    assert await response.json() == {"delivered": 0}


async def test_serves_the_page_the_sdk_the_helper_and_wrapped_json_bigint(demo_factory: Any) -> None:
    client, _ = await demo_factory()
    page = await client.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    assert '"appwrite": "/demo/vendor/appwrite.js"' in await page.text()
    scripts = ("/demo/static/app.js", "/demo/static/realtime-worker.js", "/demo/vendor/appwrite.js", "/demo/vendor/bignumber.js",
               "/demo/realtime-auth.js", "/demo/realtime-hub.js", "/demo/shared-realtime.js")
    for path in scripts:
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == "text/javascript", path
    # A worker has no import map: the SDK's one bare import points at the demo's own module.
    sdk = await (await client.get("/demo/vendor/appwrite.js")).text()
    assert sdk.startswith("import JSONbigModule from '/demo/vendor/json-bigint.js';")
    wrapped = await client.get("/demo/vendor/json-bigint.js")
    text = await wrapped.text()
    assert "import BigNumber from '/demo/vendor/bignumber.js';" in text
    assert "export default function JSONbig" in text
    for path in ("/demo/static/index.html", "/demo/static/..%2Fdemo.py", "/demo/vendor/sdk.js", "/demo/realtime-other.js",
                 "/demo/realtime-auth.js.js"):
        assert (await client.get(path)).status == 404, path


async def test_in_a_checkout_the_page_finds_the_sdk_and_the_helper_without_settings(demo_factory: Any) -> None:
    # What `token-exchange demo` does from a checkout: no DEMO_* variables, clients/js found by path.
    client, _ = await demo_factory(checkout_defaults=True)
    for path in ("/demo/vendor/appwrite.js", "/demo/realtime-auth.js"):
        response = await client.get(path)
        assert response.status == 200, path


def test_the_page_code_comes_from_the_package_then_the_checkout_and_the_environment_overrides_both(
    tmp_path: Path,
) -> None:
    packaged, checkout = tmp_path / "vendor", tmp_path / "clients-js"
    # An editable checkout: the build put nothing in the package, clients/js has it after npm ci.
    assert asset_locations({}, packaged, checkout) == (checkout / "node_modules", checkout / "realtime-auth.js")
    # An installed wheel: the build put the SDK and the helper in the package (setup.py).
    packaged.mkdir()
    assert asset_locations({}, packaged, checkout) == (packaged, packaged / "realtime-auth.js")
    env = {"DEMO_SDK_DIR": str(tmp_path / "sdk"), "DEMO_HELPER_JS": str(tmp_path / "helper.js")}
    assert asset_locations(env, packaged, checkout) == (tmp_path / "sdk", tmp_path / "helper.js")


async def test_without_the_sdk_the_page_says_how_to_install_it(demo_factory: Any, tmp_path: Path) -> None:
    client, _ = await demo_factory(sdk_dir=tmp_path / "nowhere")
    body = await (await client.get("/demo/config")).json()
    assert "npm ci" in body["sdk"]["problem"] and "DEMO_SDK_DIR" in body["sdk"]["problem"]
    assert (await client.get("/demo/vendor/appwrite.js")).status == 404
    assert (await client.get("/demo/vendor/json-bigint.js")).status == 404


def test_an_sdk_too_old_for_jwt_realtime_is_refused(node_modules: Path) -> None:
    (node_modules / "appwrite" / "package.json").write_text(json.dumps({"version": "26.0.2"}))
    assets = load_assets(node_modules, node_modules / "realtime-auth.js")
    assert assets.problem is not None and "26.1.0" in assets.problem
    assert not assets.files


def test_page_path_keeps_only_known_safe_parameters() -> None:
    assert page_path("") == "/"
    assert page_path("?via=relay&channels=account,files") == "/?via=relay&channels=account%2Cfiles"
    assert page_path("next=//evil.example&via=<script>") == "/"
    assert page_path("via=jwt", login_failed=True) == "/?via=jwt&login=failed"


def test_browser_endpoint_uses_the_other_loopback_name() -> None:
    assert browser_endpoint("http://127.0.0.1:8081/v1", "127.0.0.1") == "http://localhost:8081/v1"
    assert browser_endpoint("http://127.0.0.1:8081/v1", "localhost") == "http://127.0.0.1:8081/v1"
    assert browser_endpoint("https://cloud.appwrite.io/v1", "app.example.com") == "https://cloud.appwrite.io/v1"


def test_json_bigint_wrapper_runs_each_commonjs_file_in_its_own_scope() -> None:
    module = json_bigint_module("PARSE_SOURCE", "STRINGIFY_SOURCE")
    assert module.index("STRINGIFY_SOURCE") < module.index("PARSE_SOURCE")
    assert module.count("load(function (module, exports, require) {") == 2


async def test_sign_in_with_appwrite_down_is_a_503_problem(demo_factory: Any, emulator: Emulator) -> None:
    client, _ = await demo_factory()
    await inject_fault(emulator, "drop", path="/v1/account/sessions/email")
    response = await client.post(
        "/demo/login", data={"email": EMAIL, "password": PASSWORD}, headers=origin(client), allow_redirects=False
    )
    await assert_problem(response, 503, "upstream_unavailable")
    assert "Set-Cookie" not in response.headers


def test_demo_adds_the_users_allowed_origins_to_its_own() -> None:
    """An app whose dev proxy rewrites Host (Next.js's rewrites) reaches the demo's service
    cross-origin: `ALLOWED_ORIGINS=http://localhost:3000 token-exchange demo` lets it in."""
    from appwrite_token_exchange.demo.run import demo_settings
    from appwrite_token_exchange.emulator.config import EmulatorConfig

    def origins(env: dict[str, str]) -> set[str]:
        return set(demo_settings("127.0.0.1", 8080, 8081, EmulatorConfig(), env).allowed_origins)

    own = {"http://127.0.0.1:8080", "http://localhost:8080"}
    assert origins({}) == own
    assert origins({"ALLOWED_ORIGINS": "http://localhost:3000"}) == own | {"http://localhost:3000"}
