"""Session cookies that a web framework wrote percent-encoded (issue 12, item 1).

Nuxt/h3 and Express write cookies with the `cookie`/`cookie-es` serializers, whose default encoder
is `encodeURIComponent`: base64's `=` padding arrives as `%3D` (and `+`, `/` as `%2B`, `%2F`).
Appwrite decodes `X-Appwrite-Session` with strict base64, and so does the emulator, so forwarding
the raw value makes the user a guest. The service reads the value as those frameworks' readers do:
`decodeURIComponent` when it holds a `%`, the raw value when that throws, and nothing more.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import pytest
from appwrite_token_exchange.access.session_cookie import framework_decode

from tests.support.helpers import assert_problem, upstream_requests
from tests.support.service import COOKIE, PROJECT, Emulator, exchange


def _user_with_padding(emulator: Emulator, padding: str) -> tuple[str, str]:
    """(user id, cookie value) of a new user whose session value ends in exactly `padding`: custom
    user ids of other lengths than Appwrite's default 20 characters give padding."""
    for length in range(1, 37):
        user_id = f"pad{length}".ljust(length, "x") if length >= len(f"pad{length}") else None
        if user_id is None or user_id in emulator.state.users:
            continue
        user = emulator.state.create_user(f"{user_id}@example.com", "password-123", user_id=user_id)
        _, value = emulator.state.create_session(user.id)
        if len(value) - len(value.rstrip("=")) == len(padding):
            return user.id, value
    raise AssertionError(f"no user id gives {padding!r} padding")


def _sent_session(request: dict[str, Any]) -> str:
    return str({k.lower(): v for k, v in request["headers"].items()}["x-appwrite-session"])


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("eyJpZCI6ImEifQ", "eyJpZCI6ImEifQ"),  # no `%`: untouched
        ("abc%3D%3D", "abc=="),
        ("abc%3d", "abc="),  # lowercase hex is an escape too
        ("a+b%3D", "a+b="),  # `+` is not a space for decodeURIComponent
        ("a%2Bb%2Fc%3D", "a+b/c="),  # what encodeURIComponent makes of base64
        ("%253D", "%3D"),  # decoded once, as the framework does
        ("%C3%A9t%C3%A9", "été"),  # escapes are UTF-8
        ("%F0%9F%98%80", "\U0001f600"),
        # decodeURIComponent throws, and the reader keeps the raw value:
        ("abc%ZZ", "abc%ZZ"),  # not two hex digits
        ("abc%3", "abc%3"),  # cut short
        ("abc%", "abc%"),
        ("abc%3D%", "abc%3D%"),  # one bad escape keeps every escape raw
        ("a%E0%A4", "a%E0%A4"),  # truncated UTF-8 sequence
        ("a%E0%A4b%A4", "a%E0%A4b%A4"),  # a sequence broken by a literal character
        ("%C0%AF", "%C0%AF"),  # overlong encoding
        ("%ED%A0%80", "%ED%A0%80"),  # an encoded UTF-16 surrogate
        ("%FF", "%FF"),
    ],
)
def test_the_value_is_decoded_as_decodeURIComponent_does(raw: str, decoded: str) -> None:
    assert framework_decode(raw) == decoded


@pytest.mark.parametrize("padding", ["=", "=="])
@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda v: v.replace("=", "%3D"), id="padding-escaped"),
        pytest.param(lambda v: v.replace("=", "%3d"), id="padding-escaped-lowercase"),
        pytest.param(lambda v: quote(v, safe=""), id="encodeURIComponent"),
    ],
)
async def test_a_percent_encoded_session_cookie_is_the_users_session(service, emulator, padding, encode) -> None:
    user_id, value = _user_with_padding(emulator, padding)
    written = encode(value)
    assert written != value
    response = await exchange(service, written)
    assert response.status == 200, await response.text()
    assert (await response.json())["userId"] == user_id
    # Appwrite was sent the value it can decode: the framework's reading, not the raw cookie.
    [sent] = await upstream_requests(emulator)
    assert _sent_session(sent) == value


async def test_a_plus_stays_a_plus(service, emulator) -> None:
    # Emulator sessions never hold a `+` (hex secrets, Appwrite's id alphabet), so this one is made
    # up: Appwrite is asked, and must be sent the `+`. Read as a space (form decoding), it would be
    # skipped by PHP's base64 and decode to another session.
    value = base64.b64encode(b'{"id":"u>","secret":"s?>"}').decode()
    assert "+" in value and value.endswith("=")
    await assert_problem(await exchange(service, value.replace("=", "%3D")), 401, "session_invalid")
    [sent] = await upstream_requests(emulator)
    assert _sent_session(sent) == value


@pytest.mark.parametrize("bad_escape", ["%ZZ", "%E0%A4", "%"])
async def test_an_escape_decodeURIComponent_refuses_leaves_the_value_raw_and_refused(
    service, emulator, bad_escape
) -> None:
    _, value = _user_with_padding(emulator, "=")
    await assert_problem(await exchange(service, value.replace("=", "%3D") + bad_escape), 401, "session_invalid")
    # The raw value is no base64, so Appwrite is not asked.
    assert await upstream_requests(emulator) == []


async def test_a_decoded_line_break_is_no_session(service, emulator) -> None:
    # PHP's base64 would skip CR and LF, but no client can send them in X-Appwrite-Session.
    _, value = _user_with_padding(emulator, "=")
    cookie = f"{value[:8]}%0D%0A{value[8:]}"
    await assert_problem(await exchange(service, cookie), 401, "session_invalid")
    assert await upstream_requests(emulator) == []


async def test_a_quoted_and_percent_encoded_cookie(service, emulator) -> None:
    # The `cookie` package strips the DQUOTEs first, then decodes.
    user_id, value = _user_with_padding(emulator, "==")
    response = await exchange(service, '"' + value.replace("=", "%3D") + '"')
    assert response.status == 200, await response.text()
    assert (await response.json())["userId"] == user_id


async def test_the_relay_reads_a_percent_encoded_cookie_too(service, emulator) -> None:
    user_id, value = _user_with_padding(emulator, "=")
    headers = {"Origin": "https://app.example.com", "Cookie": f"{COOKIE}={quote(value, safe='')}"}
    ws = await service.ws_connect(f"/v1/realtime?project={PROJECT}&channels[]=account", headers=headers)
    try:
        message = await ws.receive_json(timeout=3)
        assert message["type"] == "connected", message
        assert message["data"]["user"]["$id"] == user_id
    finally:
        await ws.close()
