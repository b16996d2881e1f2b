"""Hostile session cookies (issue 11, items 3, 4, 7 and 11): one session written many ways, values
Appwrite could not decode, forged cookies naming another user, huge Cookie headers, duplicate
session cookies, and the memory a flood of distinct sessions may take."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import sys
import textwrap
from typing import Any

import aiohttp.web_request
import pytest
from aiocache.serializers import NullSerializer
from aiohttp import web
from appwrite_token_exchange.access.session_cookie import cookie_value, decode_session_value
from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.state.lru import LRU
from appwrite_token_exchange.state.sliding_window import Check
from appwrite_token_exchange.state.store import BoundedMemoryCache, State

from tests.support.contract import contract_middleware
from tests.support.helpers import assert_problem, upstream_requests
from tests.support.service import COOKIE, exchange, service_settings

# What `token-exchange serve` allows for one header line (aiohttp's default is 8190 bytes).
SERVE_MAX_LINE_BYTES = 32 * 1024
ONLY_THE_SESSION_LIMIT = {"RATE_LIMIT_IP": "off", "RATE_LIMIT_USER": "off", "RATE_LIMIT_SESSION": "10/minute"}


def _b64(document: str, padded: bool = True) -> str:
    encoded = base64.b64encode(document.encode()).decode()
    return encoded if padded else encoded.rstrip("=")


def respellings(value: str, count: int) -> list[str]:
    """`count` different cookie values that Appwrite's strict decoder reads as the same session:
    JSON whitespace and key order, padding or none, whitespace inside the base64, escapes."""
    decoded = json.loads(base64.b64decode(value))
    user_id, secret = decoded["id"], decoded["secret"]
    spellings: list[str] = []
    for i in range(count):
        pad = " " * (i // 2 + 1)
        escaped_id = "".join(f"\\u{ord(c):04x}" for c in user_id) if i % 3 == 0 else user_id
        if i % 2:
            document = f'{{{pad}"secret":"{secret}",{pad}"id":"{escaped_id}"}}'
        else:
            document = f'{{"id":{pad}"{escaped_id}","secret":"{secret}"{pad}}}'
        encoded = _b64(document, padded=i % 4 < 2)
        if i % 5 == 4:
            # PHP's strict base64_decode still skips spaces.
            encoded = f"{encoded[:8]} {encoded[8:]}"
        spellings.append(encoded)
    assert len(set(spellings)) == count and value not in spellings
    return spellings


@pytest.mark.slow
async def test_a_respelled_session_meets_the_session_limit(service_factory, emulator) -> None:
    service = await service_factory(**ONLY_THE_SESSION_LIMIT)
    _, _, cookie = emulator.signed_in_user()
    statuses = [(await exchange(service, spelling)).status for spelling in respellings(cookie, 45)]
    assert statuses == [200] * 10 + [429] * 35
    # Appwrite took every spelling that was let through: they really are one session.
    assert len(await upstream_requests(emulator)) == 10


async def test_the_user_limit_applies_from_a_sessions_first_exchange(service_factory, emulator) -> None:
    service = await service_factory(RATE_LIMIT_USER="2/minute")
    user = emulator.state.create_user("many@example.com", "password-123")
    cookies = [emulator.state.create_session(user.id)[1] for _ in range(3)]
    assert (await exchange(service, cookies[0])).status == 200
    assert (await exchange(service, cookies[1])).status == 200
    body = await assert_problem(await exchange(service, cookies[2]), 429, "rate_limited")
    assert body["scope"] == "user"
    assert len(await upstream_requests(emulator)) == 2


async def test_forged_cookies_naming_a_user_cost_that_user_nothing(service_factory, emulator) -> None:
    service = await service_factory(RATE_LIMIT_USER="2/minute", RATE_LIMIT_IP="off")
    victim, _, cookie = emulator.signed_in_user("victim@example.com")
    for _ in range(20):
        forged = _b64(json.dumps({"id": victim, "secret": secrets.token_hex(128)}))
        await assert_problem(await exchange(service, forged), 401, "session_invalid")
    assert [(await exchange(service, cookie)).status for _ in range(3)] == [200, 200, 429]


UNDECODABLE = {
    # The emulator used to ignore characters outside the alphabet, as PHP's lax decoder does.
    "outside the alphabet": lambda v: f"{v[:10]}!{v[10:]}",
    "url-safe alphabet": lambda v: _b64('{"id":"u>?","secret":"s?>"}').replace("+", "-").replace("/", "_"),
    # `%3D` padding is read as `=`, as the frameworks' cookie readers do (tests/test_cookie_encoding.py);
    # an escape decodeURIComponent refuses leaves the value raw, and raw it is no base64.
    "invalid percent escape": lambda v: _b64('{"id":"abc","secret":"s"}').replace("=", "%ZZ"),
    "data after padding": lambda v: _b64('{"id":"a","secret":"s"}') + "AAAA",
    "three padding characters": lambda v: _b64('{"id":"abc","secret":"s"}').rstrip("=") + "===",
    "truncated group": lambda v: v.rstrip("=") + "A" if len(v.rstrip("=")) % 4 == 0 else v.rstrip("=")[:-1],
    "not JSON": lambda v: _b64("not-a-session"),
    "a JSON list": lambda v: _b64('["id", "secret"]'),
    "a number as id": lambda v: _b64('{"id": 1, "secret": "s"}'),
    "no secret": lambda v: _b64('{"id": "u"}'),
    "empty secret": lambda v: _b64('{"id": "u", "secret": ""}'),
    "a lone surrogate": lambda v: _b64('{"id": "\\ud800", "secret": "s"}'),
    "not UTF-8": lambda v: base64.b64encode(b'{"id": "\xff", "secret": "s"}').decode(),
    "UTF-16 JSON": lambda v: base64.b64encode('{"id":"u","secret":"s"}'.encode("utf-16")).decode(),
    "nested deeper than PHP decodes": lambda v: _b64('{"id":"u","secret":"s","x":' + "[" * 600 + "]" * 600 + "}"),
    "nested past Python's recursion limit": lambda v: _b64("[" * 1500 + "]" * 1500),
    "longer than any session": lambda v: _b64(json.dumps({"id": "u", "secret": "s" * 4000})),
}


@pytest.mark.parametrize("spelling", list(UNDECODABLE))
async def test_values_appwrite_cannot_decode_are_refused_without_asking_it(service, emulator, spelling) -> None:
    _, _, cookie = emulator.signed_in_user()
    value = UNDECODABLE[spelling](cookie)
    response = await service.post("/v1/realtime/token", headers={"X-CSRF": "1", "Cookie": f"{COOKIE}={value}"})
    await assert_problem(response, 401, "session_invalid")
    assert await upstream_requests(emulator) == []


def test_the_decoder_reads_what_php_strict_base64_reads() -> None:
    document = '{"id":"u1","secret":"s/+"}'
    canonical = _b64(document)
    for spelling in (canonical, canonical.rstrip("="), f" {canonical[:4]}\t{canonical[4:]}\r\n", f"{canonical[:-1]} ="):
        session = decode_session_value(spelling)
        assert session is not None, spelling
        assert (session.user_id, session.secret) == ("u1", "s/+")
    # Non-zero bits after the last full byte are dropped, as PHP does: another spelling, same session.
    loose_bits = canonical.rstrip("=")[:-1] + chr(ord(canonical.rstrip("=")[-1]) + 1)
    assert decode_session_value(loose_bits) == decode_session_value(canonical)
    for refused in (f"\x0b{canonical}", f"é{canonical}", f"{canonical}=", canonical.replace("e", "-")):
        assert decode_session_value(refused) is None, refused
    # Duplicate keys: the last wins, in PHP's json_decode as in Python's.
    session = decode_session_value(_b64('{"id":"x","secret":"s","id":"u1"}'))
    assert session is not None and session.user_id == "u1"
    assert "s/+" not in repr(decode_session_value(canonical)), "a session's repr must not show its secret"


async def test_a_spelling_appwrite_accepts_is_forwarded_as_it_came(service, emulator) -> None:
    _, _, cookie = emulator.signed_in_user()
    spelled = f"{cookie[:12]} {cookie[12:]}".rstrip("=")
    response = await service.post("/v1/realtime/token", headers={"X-CSRF": "1", "Cookie": f"{COOKIE}={spelled}"})
    assert response.status == 200, await response.text()
    [sent] = await upstream_requests(emulator)
    assert {k.lower(): v for k, v in sent["headers"].items()}["x-appwrite-session"] == spelled


async def test_a_quoted_cookie_value_is_read_without_its_quotes(service, emulator, session_cookie) -> None:
    # RFC 6265 allows a DQUOTE-wrapped value; Python's cookie writers (aiohttp's set_cookie) quote
    # base64 that holds "/" or "=", and every framework's reader removes the quotes again.
    response = await service.post(
        "/v1/realtime/token", headers={"X-CSRF": "1", "Cookie": f'{COOKIE}="{session_cookie}"'}
    )
    assert response.status == 200, await response.text()


# --- Duplicate session cookies (item 11): the first one wins, as in Appwrite's PHP reader. ---


async def test_the_first_of_two_session_cookies_wins(service, emulator, session_cookie) -> None:
    _, dead_session, dead = emulator.signed_in_user("dead@example.com")
    emulator.state.delete_session(dead_session)
    first_live = await service.post(
        "/v1/realtime/token", headers={"X-CSRF": "1", "Cookie": f"{COOKIE}={session_cookie}; {COOKIE}={dead}"}
    )
    assert first_live.status == 200, await first_live.text()
    first_dead = await service.post(
        "/v1/realtime/token", headers={"X-CSRF": "1", "Cookie": f"{COOKIE}={dead}; {COOKIE}={session_cookie}"}
    )
    await assert_problem(first_dead, 401, "session_invalid")


async def test_two_cookie_header_lines_arrive_as_two(aiohttp_client) -> None:
    # HTTP/1.1 clients may send Cookie on two lines (HTTP/2 splits it into several fields, which a
    # proxy may pass on as lines); aiohttp does not join them.
    async def lines(request: web.Request) -> web.Response:
        return web.json_response(request.headers.getall("Cookie", []))

    app = web.Application()
    app.router.add_get("/", lines)
    client = await aiohttp_client(app)
    response = await client.get("/", headers=[("Cookie", "a=1; b=2"), ("Cookie", "a=3")])
    assert await response.json() == ["a=1; b=2", "a=3"]


async def test_the_first_of_two_cookie_header_lines_wins(service, session_cookie) -> None:
    garbage = _b64('{"id":"nobody","secret":"nothing"}')
    live, dead = ("Cookie", f"other=1; {COOKIE}={session_cookie}"), ("Cookie", f"{COOKIE}={garbage}")
    response = await service.post("/v1/realtime/token", headers=[("X-CSRF", "1"), live, dead])
    assert response.status == 200, await response.text()
    swapped = await service.post("/v1/realtime/token", headers=[("X-CSRF", "1"), dead, live])
    await assert_problem(swapped, 401, "session_invalid")


@pytest.mark.parametrize(
    ("header", "found"),
    [
        ("a_session_p=v", "v"),
        ("x=1;a_session_p=v;y=2", "v"),
        ("x=1;  a_session_p = v ; y=2", "v"),
        ("xa_session_p=bad; a_session_p=v", "v"),
        ("a_session_px=bad; a_session_p=v", "v"),
        ("x=a_session_p=bad; a_session_p=v", "v"),
        ('a_session_p="v"', "v"),
        ('a_session_p="v', '"v'),
        ("a_session_p=", ""),
        ("a_session_p", None),
        ("other=1", None),
        ("", None),
        ("a_session_p=first; a_session_p=second", "first"),
        ("a_session_p=%3D%3D", "%3D%3D"),
    ],
)
def test_the_cookie_reader(header: str, found: str | None) -> None:
    assert cookie_value([header], "a_session_p") == found


def test_the_cookie_reader_takes_the_first_line_that_has_the_cookie() -> None:
    assert cookie_value(["x=1", "a_session_p=one", "a_session_p=two"], "a_session_p") == "one"


# --- The IP limit comes before any parsing (item 7). ---


@pytest.fixture
def serve_big_headers(emulator, aiohttp_server, aiohttp_client, contract_failures):  # type: ignore[no-untyped-def]
    """The service, taking header lines as long as `serve` takes them."""

    async def start(**env: str) -> Any:
        app = create_app(service_settings(emulator, **env))
        app.middlewares.insert(0, contract_middleware(contract_failures))
        server = await aiohttp_server(app, max_line_size=SERVE_MAX_LINE_BYTES, max_field_size=SERVE_MAX_LINE_BYTES)
        return await aiohttp_client(server)

    return start


async def test_the_ip_limit_runs_before_the_request_is_read(serve_big_headers, emulator, session_cookie) -> None:
    service = await serve_big_headers(RATE_LIMIT_IP="1/minute")
    assert (await exchange(service, session_cookie)).status == 200
    many = "; ".join(f"c{i:04d}=1" for i in range(3000))
    for headers in (
        {"Cookie": f"{many}; {COOKIE}={session_cookie}"},  # expensive to parse
        {},  # no cookie: refused for the limit, not as session_missing
        {"Cookie": f"{COOKIE}=!!!"},  # refused for the limit, not as session_invalid
        {"Content-Type": "application/json"},  # a body too large is not even read
    ):
        body_bytes = b"x" * 5000 if headers.get("Content-Type") else None
        response = await exchange(service, None, headers=headers, data=body_bytes)
        body = await assert_problem(response, 429, "rate_limited")
        assert body["scope"] == "ip"
    assert len(await upstream_requests(emulator)) == 1


async def test_cross_site_requests_do_not_spend_the_ip_allowance(service_factory, session_cookie) -> None:
    # The CSRF and Origin checks (header comparisons, nothing parsed) come before the IP limit, so
    # a page on another site cannot make its visitors' browsers use up their IP's allowance.
    service = await service_factory(RATE_LIMIT_IP="1/minute")
    for _ in range(3):
        await assert_problem(await exchange(service, session_cookie, headers={"X-CSRF": ""}), 403, "csrf_header_missing")
        cross_site = {"Origin": "https://evil.example"}
        await assert_problem(await exchange(service, session_cookie, headers=cross_site), 403, "origin_not_allowed")
    assert (await exchange(service, session_cookie)).status == 200


async def test_the_session_cookie_is_found_without_parsing_every_cookie(
    serve_big_headers, session_cookie, monkeypatch
) -> None:
    parse_every_cookie = aiohttp.web_request.parse_cookie_header

    def refuse_the_big_header(header: str) -> Any:
        # The emulator in this process parses its (small) Cookie headers this way; that is fine.
        assert "c0000=" not in header, "every cookie of the request was parsed"
        return parse_every_cookie(header)

    monkeypatch.setattr(aiohttp.web_request, "parse_cookie_header", refuse_the_big_header)
    service = await serve_big_headers(RATE_LIMIT_IP="off")
    many = "; ".join(f"c{i:04d}=1" for i in range(3000))
    response = await exchange(service, None, headers={"Cookie": f"{many}; {COOKIE}={session_cookie}"})
    assert response.status == 200, await response.text()
    await assert_problem(await exchange(service, None, headers={"Cookie": many}), 401, "session_missing")


# --- Memory: a flood of distinct sessions stays within MEMORY_STATE_MAX_ENTRIES (item 4). ---


def test_the_lru_keeps_the_most_recently_used() -> None:
    lru: LRU[str, int] = LRU(3)
    for i, key in enumerate("abc"):
        lru.set(key, i)
    assert lru.get("a") == 0  # a is now the most recent; b is the least
    lru.set("d", 3)
    assert len(lru) == 3 and "b" not in lru and all(key in lru for key in "acd")
    with pytest.raises(ValueError):
        LRU(0)


async def test_memory_windows_and_caches_share_one_bound() -> None:
    state = State(None, lambda down: None, max_entries=100)
    five = RateLimit(5, 60)
    for i in range(150):
        await state.hit([Check("session", State.key("session", f"s{i}"), five)])
        await state.set_cached(f"user:s{i}", f"u{i}", 60)
    assert state.memory_entries == 100
    # The 50 most recent sessions kept their window and their cached user; the oldest kept neither.
    assert await state.get_cached(*(f"user:s{i}" for i in range(100, 150))) == [f"u{i}" for i in range(100, 150)]
    assert await state.get_cached("user:s0", "user:s99") == [None, None]
    recent = [Check("session", State.key("session", "s149"), five)]
    assert [(await state.hit(recent))[0].allowed for _ in range(5)] == [True] * 4 + [False]


async def test_a_cached_entry_ends_at_its_ttl_without_a_timer(monkeypatch) -> None:
    # aiocache's memory backend arms one event-loop timer per key; a flood of keys is a flood of timers.
    def no_timers(*args: object) -> None:
        raise AssertionError("a timer per cache entry")

    now = [1000.0]
    store: LRU[str, object] = LRU(10)
    cache = BoundedMemoryCache(store, clock=lambda: now[0], serializer=NullSerializer(), timeout=None)
    with monkeypatch.context() as patched:  # undone before the test's event loop shuts down
        patched.setattr(asyncio.get_running_loop(), "call_later", no_timers)
        await cache.set("invalid:x", "1", ttl=30)
        await cache.set("user:x", "u", ttl=86_400)
    assert await cache.multi_get(["invalid:x", "user:x"]) == ["1", "u"]
    now[0] += 30
    assert await cache.multi_get(["invalid:x", "user:x"]) == [None, "u"]
    assert len(store) == 1


_FLOOD = textwrap.dedent(
    """
    import asyncio, gc, json, sys
    from appwrite_token_exchange.access.limits import AccessLimits
    from appwrite_token_exchange.access.fingerprints import Fingerprinter
    from appwrite_token_exchange.observability.metrics import Metrics
    from appwrite_token_exchange.settings import Settings
    from appwrite_token_exchange.state.store import State

    def rss_mb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

    async def main(sessions, bound):
        settings = Settings.from_env({
            "APPWRITE_ENDPOINT": "http://127.0.0.1:9/v1", "APPWRITE_PROJECT_ID": "p",
            "MEMORY_STATE_MAX_ENTRIES": str(bound), "RATE_LIMIT_IP": "off",
        })
        fingerprinter = Fingerprinter(b"k" * 32)
        state = State(None, lambda down: None, max_entries=settings.memory_state_max_entries)
        limits = AccessLimits(settings, state, Metrics(), fingerprinter)
        gc.collect()
        before = rss_mb()
        for i in range(sessions):
            # Each session as the exchange sees it: its limits, then its user learned or its refusal.
            user_id = f"user{i:016d}"
            admission = await limits.admit("192.0.2.1", fingerprinter.of_session(f"secret-{i:0250d}"), user_id)
            if i % 2:
                await limits.issued(admission, user_id)
            else:
                await limits.rejected(admission)
        gc.collect()
        print(json.dumps({"before": before, "after": rss_mb(), "entries": state.memory_entries}))

    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
    """
)


async def _flood(sessions: int, bound: int) -> dict[str, float]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _FLOOD, str(sessions), str(bound),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return dict(json.loads(out))


@pytest.mark.subprocess
async def test_two_hundred_thousand_sessions_stay_within_the_memory_bound() -> None:
    measured = await _flood(200_000, 20_000)
    assert measured["entries"] == 20_000
    # Before the bound (aiocache's memory cache, a timer per key) this flood took 147 MB, and grew;
    # 20,000 entries take under 10 MB.
    assert measured["after"] - measured["before"] < 40, measured
