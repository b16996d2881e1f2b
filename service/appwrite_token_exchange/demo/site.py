"""The demo's web side: a page on the service's own origin to sign in and watch Realtime events.

It plays the app that the service sits next to. Signing in is server-side, as a Next.js or Nuxt app
does it: `POST /demo/login` creates the Appwrite session with the API key and stores its secret in
an httpOnly, SameSite=Lax `a_session_<project>` cookie, so page JavaScript never holds it. The page
then opens Realtime with the official web SDK, through the token route and the browser helper
(`clients/js/realtime-auth.js`) or through the relay (`?via=relay`), while a task publishes an event
every few seconds through the emulator's control API. Everything is served from here (no CDN): the
SDK's ESM build and the helper come from the package's own `vendor/` (which the build puts there:
see setup.py), or, in an editable checkout, from clients/js after `npm ci`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import structlog
from aiohttp import web

from appwrite_token_exchange.paths import TOKEN_PATH
from appwrite_token_exchange.problems import ProblemError

STATIC_DIR = Path(__file__).with_name("static")
# Where the demo finds the web SDK and the helper, first found wins (both can be overridden):
# what the build put in the package (a pruned node_modules plus the helper), then, in an editable
# checkout, clients/js (the repository root is three folders up from service/appwrite_token_exchange/demo/).
PACKAGED_VENDOR = Path(__file__).with_name("vendor")
_REPO_CLIENTS = Path(__file__).resolve().parents[3] / "clients" / "js"
_HELPER_NAME = "realtime-auth.js"
# The helper's other modules, found next to it: the shared mode's page side and hub.
_HELPER_MODULES = ("realtime-hub.js", "shared-realtime.js")
SDK_DIR_VARIABLE = "DEMO_SDK_DIR"
HELPER_VARIABLE = "DEMO_HELPER_JS"
PUBLIC_CHANNEL = "databases.demo.collections.public.documents"
# The first web SDK that puts the JWT on the Realtime URL (see README's compatibility table).
MIN_SDK_VERSION = (26, 1, 0)
# Only these page parameters survive the sign-in redirect.
_PAGE_PARAMS = ("via", "channels", "minRefresh", "shared")
_SAFE_PARAM = re.compile(r"^[A-Za-z0-9_.,*:-]{1,200}$")
_STATIC_FILES = {"app.js": "text/javascript", "realtime-worker.js": "text/javascript", "style.css": "text/css"}
# The SDK's one bare import, pointed at the demo's own module: a worker has no import map.
_SDK_IMPORT = re.compile(r"""(\bfrom\s*)(['"])json-bigint\2""")
_JS = "text/javascript; charset=utf-8"
_NO_STORE = {"Cache-Control": "no-store"}

_log = structlog.get_logger(logger_name="service.demo")


@dataclass(frozen=True)
class DemoSite:
    """What the demo routes need to know about the emulator, the demo user and the service."""

    appwrite_endpoint: str  # the emulator's /v1, as this process reaches it
    project_id: str
    api_key: str = field(repr=False)  # what an SSR app's server holds to create sessions
    cookie_name: str
    user_id: str  # the demo user, for the events published to its `account` channel
    email: str
    password: str = field(repr=False)
    mode: str = "cloud"
    token_ttl_seconds: int = 30
    relay_revalidate_seconds: float = 300.0
    relay_channels_allow: tuple[str, ...] = ()
    publish_interval_seconds: float = 2.0
    # Where the page finds things, when the demo plays the app of a deployment behind a proxy
    # (`token-exchange demo --site-only`). The defaults are this origin.
    public_origin: str | None = None  # the page's origin as the browser sees it, e.g. https://app.example.com
    browser_appwrite_endpoint: str | None = None  # Appwrite's /v1 as the browser reaches it
    token_url: str = TOKEN_PATH
    relay_endpoint: str | None = None  # the relay's wss://host/v1; None: this origin
    cookie_domain: str | None = None  # Domain= of the session cookie (a parent domain for subdomains)
    # The service's internal kick, as the app's server reaches it ("Sign out everywhere"); None: not offered.
    revocation_url: str | None = None
    revocation_secret: str | None = field(default=None, repr=False)

    @property
    def control_url(self) -> str:
        """The emulator's control API, next to its /v1."""
        return self.appwrite_endpoint.removesuffix("/v1") + "/_emulator"


@dataclass(frozen=True)
class DemoAssets:
    """The browser code the page imports; `problem` says how to install it when it is missing."""

    files: Mapping[str, Path]
    json_bigint: str = ""
    sdk: str = ""
    sdk_version: str | None = None
    problem: str | None = None


DEMO_SITE: web.AppKey[DemoSite] = web.AppKey("demo_site")
DEMO_ASSETS: web.AppKey[DemoAssets] = web.AppKey("demo_assets")
DEMO_HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("demo_http")


def setup_demo(app: web.Application, site: DemoSite, env: Mapping[str, str] | None = None) -> None:
    """Add the demo page and its routes to the service's app (same origin as the token route)."""
    app[DEMO_SITE] = site
    overrides = dict(os.environ if env is None else env)

    async def load(app: web.Application) -> None:
        # Looking for and reading package files is disk I/O: keep it off the event loop.
        app[DEMO_ASSETS] = await asyncio.to_thread(lambda: load_assets(*asset_locations(overrides)))

    app.on_startup.append(load)
    app.cleanup_ctx.append(_http_client)
    app.cleanup_ctx.append(_publisher)
    app.router.add_get("/", index)
    app.router.add_get("/demo/config", page_config)
    app.router.add_get("/demo/static/{name}", static_file)
    app.router.add_get("/demo/vendor/{name}", vendor_file)
    app.router.add_get(r"/demo/{name:(?:realtime-auth|realtime-hub|shared-realtime)}.js", helper_file)
    app.router.add_post("/demo/login", login)
    app.router.add_post("/demo/logout", logout)
    app.router.add_post("/demo/logout-everywhere", logout_everywhere)
    app.router.add_post("/demo/publish", publish_now)


# --- browser code ---------------------------------------------------------------------------------


def asset_locations(
    env: Mapping[str, str], packaged: Path = PACKAGED_VENDOR, checkout: Path = _REPO_CLIENTS
) -> tuple[Path, Path]:
    """(node_modules holding `appwrite`, realtime-auth.js): from the environment, the package, or
    the checkout (a directory that exists: the file checks and their hint come later)."""
    if packaged.is_dir():
        sdk_dir, helper = packaged, packaged / _HELPER_NAME
    else:
        sdk_dir, helper = checkout / "node_modules", checkout / _HELPER_NAME
    if env.get(SDK_DIR_VARIABLE):
        sdk_dir = Path(env[SDK_DIR_VARIABLE])
    if env.get(HELPER_VARIABLE):
        helper = Path(env[HELPER_VARIABLE])
    return sdk_dir, helper


def load_assets(sdk_dir: Path, helper: Path) -> DemoAssets:
    """Find the SDK's ESM build, its one dependency chain and the helper (blocking: run in a thread)."""
    files = {
        "appwrite.js": sdk_dir / "appwrite" / "dist" / "esm" / "sdk.js",
        "bignumber.js": sdk_dir / "bignumber.js" / "bignumber.mjs",
        "helper": helper,
        **{name: helper.with_name(name) for name in _HELPER_MODULES},
    }
    parts = {name: sdk_dir / "json-bigint" / "lib" / f"{name}.js" for name in ("parse", "stringify")}
    missing = [path for path in (*files.values(), *parts.values()) if not path.is_file()]
    if missing:
        return DemoAssets(files={}, problem=_install_hint(missing))
    version = _package_version(sdk_dir / "appwrite" / "package.json")
    if version is None or _version_tuple(version) < MIN_SDK_VERSION:
        return DemoAssets(
            files={},
            sdk_version=version,
            problem=(
                f"The installed web SDK is appwrite {version or '(unknown version)'}; the demo needs 26.1.0 or "
                "newer, the first that puts the JWT on the Realtime URL. Run `npm ci` in clients/js."
            ),
        )
    bundle = json_bigint_module(parts["parse"].read_text("utf-8"), parts["stringify"].read_text("utf-8"))
    sdk = _SDK_IMPORT.sub(r"\1\2/demo/vendor/json-bigint.js\2", files["appwrite.js"].read_text("utf-8"))
    return DemoAssets(files=files, json_bigint=bundle, sdk=sdk, sdk_version=version)


def _install_hint(missing: list[Path]) -> str:
    names = ", ".join(path.name for path in missing)
    if _REPO_CLIENTS.is_dir():
        fix = "This is an editable checkout: run `npm ci` in clients/js, then start the demo again"
    else:
        fix = (
            "This installation was built without them (its build found no npm to fetch the web SDK): "
            "install Node.js 20 or newer and run `pip install .` again from the checkout"
        )
    return (
        f"The page needs the Appwrite web SDK and the browser helper, and these files are missing: {names}. "
        f"{fix}; or set {SDK_DIR_VARIABLE} to a node_modules directory holding `appwrite` (>= 26.1.0) "
        f"and {HELPER_VARIABLE} to realtime-auth.js."
    )


def _package_version(package_json: Path) -> str | None:
    try:
        version = json.loads(package_json.read_text("utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


def _version_tuple(version: str) -> tuple[int, ...]:
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)", version)
    return tuple(int(part) for part in match.groups()) if match else (0,)


def json_bigint_module(parse_source: str, stringify_source: str) -> str:
    """json-bigint (CommonJS, the SDK's only import) as an ES module the browser can import.

    The SDK's ESM build does `import JSONbigModule from 'json-bigint'`; the page's import map points
    that name here. Each CommonJS file runs in its own function with `module`, `exports` and a
    `require` that knows only bignumber.js (served from its own ESM build).
    """
    return f"""// json-bigint's CommonJS files, wrapped by the demo as an ES module. Do not edit.
import BigNumber from '/demo/vendor/bignumber.js';

function require(name) {{
  if (name === 'bignumber.js') return BigNumber;
  throw new Error('json-bigint (demo wrapper): cannot require ' + name);
}}
function load(factory) {{
  const module = {{ exports: {{}} }};
  factory(module, module.exports, require);
  return module.exports;
}}
const stringify = load(function (module, exports, require) {{
{stringify_source}
}}).stringify;
const parse = load(function (module, exports, require) {{
{parse_source}
}});

export default function JSONbig(options) {{
  return {{ parse: parse(options), stringify }};
}}
JSONbig.parse = parse();
JSONbig.stringify = stringify;
"""


async def index(request: web.Request) -> web.StreamResponse:
    headers = {**_NO_STORE, "Content-Type": "text/html; charset=utf-8"}
    return web.FileResponse(STATIC_DIR / "index.html", headers=headers)


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _STATIC_FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC_DIR / name, headers={**_NO_STORE, "Content-Type": _STATIC_FILES[name]})


async def vendor_file(request: web.Request) -> web.StreamResponse:
    assets, name = request.app[DEMO_ASSETS], request.match_info["name"]
    if name == "json-bigint.js" and assets.json_bigint:
        return web.Response(text=assets.json_bigint, content_type="text/javascript", charset="utf-8")
    if name == "appwrite.js" and assets.sdk:
        return web.Response(text=assets.sdk, content_type="text/javascript", charset="utf-8")
    if name != "bignumber.js" or name not in assets.files:
        raise web.HTTPNotFound()
    return web.FileResponse(assets.files[name], headers={"Content-Type": _JS})


async def helper_file(request: web.Request) -> web.StreamResponse:
    assets, name = request.app[DEMO_ASSETS], request.match_info["name"] + ".js"
    key = "helper" if name == _HELPER_NAME else name
    if key not in assets.files:
        raise web.HTTPNotFound()
    return web.FileResponse(assets.files[key], headers={**_NO_STORE, "Content-Type": _JS})


# --- the page's view of the world -------------------------------------------------------------


async def page_config(request: web.Request) -> web.Response:
    """What the page needs to start: never the session value, only whether there is a live one."""
    site, assets = request.app[DEMO_SITE], request.app[DEMO_ASSETS]
    account = await _account(request)
    body = {
        "project": site.project_id,
        "mode": site.mode,
        "endpoint": site.browser_appwrite_endpoint or browser_endpoint(site.appwrite_endpoint, request.url.host or ""),
        "tokenUrl": site.token_url,
        "relayEndpoint": site.relay_endpoint,
        "signedIn": account is not None,
        "user": account,
        "demoUser": {"email": site.email, "password": site.password},
        "publicChannel": PUBLIC_CHANNEL,
        "tokenTtlSeconds": site.token_ttl_seconds,
        "relayRevalidateSeconds": site.relay_revalidate_seconds,
        "relayChannelsAllow": list(site.relay_channels_allow),
        "signOutEverywhere": site.revocation_url is not None,
        "sdk": {"version": assets.sdk_version, "problem": assets.problem},
    }
    return web.json_response(body, headers=_NO_STORE)


def browser_endpoint(endpoint: str, page_host: str) -> str:
    """The emulator's endpoint as the page must reach it: under the *other* loopback name.

    Cookies are scoped to a host, not a port. Were the page and Appwrite both on 127.0.0.1, the
    browser would send the app's session cookie on the Realtime handshake too, which Appwrite
    refuses next to a JWT (user_jwt_and_cookie_set) and which would hide a server that ignores
    `?jwt=`. A real app and its Appwrite live on different hosts; so do these two.
    """
    parts = urlsplit(endpoint)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        return endpoint
    other = "127.0.0.1" if page_host == "localhost" else "localhost"
    netloc = f"{other}:{parts.port}" if parts.port else other
    return parts._replace(netloc=netloc).geturl()


async def _account(request: web.Request) -> dict[str, str] | None:
    """The signed-in user (id, name, email), asked of Appwrite with the cookie's session."""
    site = request.app[DEMO_SITE]
    value = request.cookies.get(site.cookie_name)
    if not value:
        return None
    try:
        async with request.app[DEMO_HTTP].get(
            f"{site.appwrite_endpoint}/account", headers=_appwrite_headers(site, session=value)
        ) as response:
            if response.status != 200:
                return None
            account = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    return {key: str(account.get(name, "")) for key, name in (("id", "$id"), ("name", "name"), ("email", "email"))}


# --- signing in and out, as a server-rendered app does ---------------------------------------------


async def login(request: web.Request) -> web.StreamResponse:
    """Sign in with the API key and keep the session secret in an httpOnly cookie; back to the page."""
    _check_same_origin(request)
    site = request.app[DEMO_SITE]
    form = await request.post()
    page_query = str(form.get("page", ""))
    credentials = {"email": str(form.get("email", "")), "password": str(form.get("password", ""))}
    try:
        async with request.app[DEMO_HTTP].post(
            f"{site.appwrite_endpoint}/account/sessions/email",
            json=credentials,
            headers=_appwrite_headers(site, api_key=True),
        ) as response:
            answer = await response.json() if response.status == 201 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        raise ProblemError("upstream_unavailable", "Appwrite could not be reached.") from None
    session: dict[str, Any] = answer if isinstance(answer, dict) else {}
    secret = session.get("secret")
    if not isinstance(secret, str) or not secret:
        return _see_other(page_path(page_query, login_failed=True))
    redirect = _see_other(page_path(page_query))
    redirect.set_cookie(
        site.cookie_name,
        secret,
        path="/",
        domain=site.cookie_domain,
        httponly=True,
        samesite="Lax",
        secure=_served_over_https(request),
        max_age=_seconds_until(session.get("expire")),
    )
    return redirect


async def logout(request: web.Request) -> web.Response:
    """Delete the session in Appwrite (as the session itself), then clear the cookie."""
    _check_same_origin(request)
    site = request.app[DEMO_SITE]
    value = request.cookies.get(site.cookie_name)
    if value:
        try:
            async with request.app[DEMO_HTTP].delete(
                f"{site.appwrite_endpoint}/account/sessions/current", headers=_appwrite_headers(site, session=value)
            ):
                pass  # 204, or 401 for a session that was already gone: either way it is over
        except (aiohttp.ClientError, TimeoutError):
            raise ProblemError("upstream_unavailable", "Appwrite could not be reached.") from None
    answer = web.Response(status=204, headers=_NO_STORE)
    answer.del_cookie(
        site.cookie_name, path="/", domain=site.cookie_domain, samesite="Lax", secure=_served_over_https(request)
    )
    return answer


async def logout_everywhere(request: web.Request) -> web.Response:
    """What an app's server does for "sign out everywhere": every session of the user deleted in
    Appwrite, then the service's internal kick, so every relayed socket of the user (every tab,
    every device, every replica) closes now instead of at the next re-check."""
    _check_same_origin(request)
    site = request.app[DEMO_SITE]
    value = request.cookies.get(site.cookie_name)
    account = await _account(request)
    if site.revocation_url is None or site.revocation_secret is None or account is None or not value:
        raise ProblemError("session_invalid", "Not signed in, or no service to tell.")
    http = request.app[DEMO_HTTP]
    try:
        async with http.delete(f"{site.appwrite_endpoint}/account/sessions",
                               headers=_appwrite_headers(site, session=value)):
            pass
        async with http.delete(f"{site.revocation_url}/internal/v1/users/{account['id']}/sockets",
                               headers={"Authorization": f"Bearer {site.revocation_secret}"}) as response:
            kicked = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        raise ProblemError("upstream_unavailable", "Appwrite or the service could not be reached.") from None
    answer = web.json_response({"kick": kicked}, headers=_NO_STORE)
    answer.del_cookie(
        site.cookie_name, path="/", domain=site.cookie_domain, samesite="Lax", secure=_served_over_https(request)
    )
    return answer


def page_path(raw_query: str, *, login_failed: bool = False) -> str:
    """`/` plus the page parameters worth keeping (anything else is dropped: no open redirect)."""
    kept = []
    for key, value in _parse_query(raw_query):
        if key in _PAGE_PARAMS and _SAFE_PARAM.match(value):
            kept.append((key, value))
    if login_failed:
        kept.append(("login", "failed"))
    return "/?" + urlencode(kept) if kept else "/"


def _parse_query(raw: str) -> list[tuple[str, str]]:
    return parse_qsl(raw.removeprefix("?"), keep_blank_values=False)[: len(_PAGE_PARAMS) * 2]


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **_NO_STORE})


def _seconds_until(expire: object) -> int | None:
    if not isinstance(expire, str):
        return None
    try:
        moment = datetime.fromisoformat(expire)
    except ValueError:
        return None
    seconds = int((moment - datetime.now(UTC)).total_seconds())
    return seconds if seconds > 0 else None


def _own_origin(request: web.Request) -> str:
    return request.app[DEMO_SITE].public_origin or f"{request.scheme}://{request.host}"


def _served_over_https(request: web.Request) -> bool:
    return _own_origin(request).startswith("https://")


def _check_same_origin(request: web.Request) -> None:
    """The demo's POST routes take calls from this origin only (a browser always sends Origin)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/").lower() != _own_origin(request).lower():
        raise ProblemError("origin_not_allowed", "The demo takes these calls from its own page only.")
    if origin is None and request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise ProblemError("origin_not_allowed", "The demo takes these calls from its own page only.")


def _appwrite_headers(site: DemoSite, *, session: str | None = None, api_key: bool = False) -> dict[str, str]:
    headers = {"X-Appwrite-Project": site.project_id}
    if session is not None:
        headers["X-Appwrite-Session"] = session
    if api_key:
        headers["X-Appwrite-Key"] = site.api_key
    return headers


# --- events ----------------------------------------------------------------------------------------


async def publish_now(request: web.Request) -> web.Response:
    _check_same_origin(request)
    delivered = await publish_events(request.app[DEMO_HTTP], request.app[DEMO_SITE], "button")
    return web.json_response({"delivered": delivered}, headers=_NO_STORE)


async def publish_events(http: aiohttp.ClientSession, site: DemoSite, source: str) -> int:
    """One event to the demo user's `account` channel and one to a public channel."""
    document_id = secrets.token_hex(6)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    calls: list[dict[str, Any]] = [
        {
            "userId": site.user_id,
            "events": [f"users.{site.user_id}.update.prefs", "users.*.update.prefs", "users.*.update", "users.*"],
            "payload": {"source": source, "kind": "account", "at": at},
        },
        {
            "channels": [PUBLIC_CHANNEL, f"{PUBLIC_CHANNEL}.{document_id}"],
            "events": [f"databases.demo.collections.public.documents.{document_id}.create"],
            # author.email: what the demo's event rules (static/event-rules.json) keep from relayed pages.
            "payload": {"$id": document_id, "source": source, "kind": "public", "at": at,
                        "author": {"name": "Demo User", "email": site.email}},
        },
    ]
    delivered = 0
    for body in calls:
        async with http.post(f"{site.control_url}/realtime/publish", json=body) as response:
            if response.status == 200:
                answer = await response.json()
                delivered += int(answer.get("delivered", 0))
    return delivered


async def _publisher(app: web.Application) -> AsyncIterator[None]:
    site = app[DEMO_SITE]
    task = asyncio.create_task(_publish_forever(app[DEMO_HTTP], site)) if site.publish_interval_seconds > 0 else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _publish_forever(http: aiohttp.ClientSession, site: DemoSite) -> None:
    while True:
        await asyncio.sleep(site.publish_interval_seconds)
        try:
            await publish_events(http, site, "timer")
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            # The emulator runs in this process; a miss here only costs one demo event.
            _log.debug("demo.publish_failed", error=type(error).__name__)


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    # Its own session with no cookie jar: Appwrite's Set-Cookie answers must never stick here.
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=5), cookie_jar=aiohttp.DummyCookieJar()
    ) as http:
        app[DEMO_HTTP] = http
        yield
