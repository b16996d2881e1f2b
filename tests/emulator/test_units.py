"""The emulator's small pure parts: tokens, session values, channel rules, PHP query parsing, windows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from appwrite_token_exchange.emulator.config import EmulatorConfig
from appwrite_token_exchange.emulator.credentials import (
    decode_session_value,
    encode_session_value,
    php_base64_decode_strict,
    unique_id,
)
from appwrite_token_exchange.emulator.limits import FixedWindowLimiter, WindowDecision
from appwrite_token_exchange.emulator.realtime.channels import (
    convert_channels,
    parse_php_query,
    php_array,
    query_channels,
    rebind_account_channels,
    url_subscriptions,
)
from appwrite_token_exchange.emulator.realtime.wire import encode
from appwrite_token_exchange.emulator.tokens import TokenInvalid, mint, verify

KEY = "unit-test-instance-key-0123456789abcdef"


def forge(header: dict[str, object], claims: dict[str, object], key: str = KEY) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_a_minted_token_verifies_until_exp() -> None:
    token = mint("u", "s", 1000, KEY)
    assert verify(token, KEY, 999.9) == {"userId": "u", "sessionId": "s", "exp": 1000}
    with pytest.raises(TokenInvalid, match="Expired"):
        verify(token, KEY, 1000)
    with pytest.raises(TokenInvalid, match="Signature failed"):
        verify(token, "other-key", 0)


def test_hmac_tokens_verify_with_the_instance_key_whatever_the_header_says() -> None:
    # adhocore/jwt signs and verifies with its configured HS256 whatever `alg` the header names.
    token = forge({"typ": "JWT", "alg": "HS512"}, {"userId": "u", "exp": 2000})
    assert verify(token, KEY, 0)["userId"] == "u"


def test_iat_and_nbf_are_checked() -> None:
    with pytest.raises(TokenInvalid, match="Expired"):
        verify(forge({"alg": "HS256"}, {"iat": 0}), KEY, 3600)
    assert verify(forge({"alg": "HS256"}, {"iat": 0}), KEY, 3599) == {"iat": 0}
    with pytest.raises(TokenInvalid, match="Cannot accept now"):
        verify(forge({"alg": "HS256"}, {"nbf": 100}), KEY, 100)


def test_session_values_round_trip_and_decode_as_strictly_as_appwrite() -> None:
    value = encode_session_value("user1", "secret/with+chars")
    assert json.loads(base64.b64decode(value)) == {"id": "user1", "secret": "secret/with+chars"}
    assert decode_session_value(value) == ("user1", "secret/with+chars")
    # PHP's strict base64_decode: missing padding and whitespace pass ...
    assert decode_session_value(value.rstrip("=")) == ("user1", "secret/with+chars")
    assert decode_session_value(f" {value[:8]}\n{value[8:]}\t") == ("user1", "secret/with+chars")
    # ... but nothing outside the alphabet: percent-encoding, the URL-safe alphabet, stray characters.
    url_encoded = value.replace("=", "%3D").replace("+", "%2B").replace("/", "%2F")
    assert url_encoded != value
    for lax in (url_encoded, value.replace("e", "-"), f"{value[:8]}!{value[8:]}", f"{value}=A"):
        assert lax != value
        assert decode_session_value(lax) == ("", ""), lax
    for junk in ("", "%%%", base64.b64encode(b"[1]").decode(), base64.b64encode(b'{"id": 5}').decode()):
        assert decode_session_value(junk) == ("", "")


@pytest.mark.parametrize(
    "data",
    [b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256)), b"\xff\xfe\xfd"],
)
def test_strict_base64_reads_what_python_writes(data: bytes) -> None:
    encoded = base64.b64encode(data).decode()
    assert php_base64_decode_strict(encoded) == data
    assert php_base64_decode_strict(encoded.rstrip("=")) == data


@pytest.mark.parametrize("bad", ["A", "AAAAA", "AA=A", "AA===", "AAA==", "A=", "AA-_", "AA.A", "Zm9v\x0b"])
def test_strict_base64_refuses_what_php_refuses(bad: str) -> None:
    assert php_base64_decode_strict(bad) is None


def test_unique_ids_look_like_appwrites() -> None:
    first, second = unique_id(1_700_000_000.5), unique_id(1_700_000_000.5)
    assert len(first) == 20 and first != second
    assert first.startswith(f"{1_700_000_000:08x}")


@pytest.mark.parametrize(
    ("mode", "user", "channels", "expected"),
    [
        ("cloud", "u1", ["account"], ["account", "account.u1"]),
        ("cloud", "", ["account"], ["account"]),
        ("cloud", "u1", ["account.u2", "documents"], ["documents"]),
        ("cloud", "u1", ["account.update", "files"], ["files", "account.u1.update"]),
        ("cloud", "", ["account.update"], ["account.update"]),
        ("1.9", "u1", ["account.delete"], ["account.u1.delete"]),
        ("1.8", "u1", ["account.update", "account"], ["account", "account.u1"]),
        ("cloud", "u1", ["documents", "documents"], ["documents"]),
    ],
)
def test_channel_conversion(mode: str, user: str, channels: list[str], expected: list[str]) -> None:
    scope_actions = EmulatorConfig(mode=mode).account_action_channels  # type: ignore[arg-type]
    assert convert_channels(channels, user, scope_actions) == expected


def test_rebinding_account_channels() -> None:
    assert rebind_account_channels(["account", "account.update", "files"], "", "u1") == [
        "account",
        "account.u1.update",
        "files",
    ]
    assert rebind_account_channels(["account.u1", "account.u1.create"], "u1", "u2") == [
        "account.u2",
        "account.u2.create",
    ]
    assert rebind_account_channels(["account.u1"], "u1", "u1") == ["account.u1"]


def test_php_style_query_parsing() -> None:
    parsed = parse_php_query(
        [
            ("project", "p"),
            ("channels[]", "account"),
            ("channels[]", "databases.d.collections.c.documents"),
            ("account[0][]", "q0"),
            ("account[0][]", "q1"),
            ("databases.d.collections.c.documents[2][]", "q2"),
        ]
    )
    assert parsed["project"] == "p"
    assert query_channels(parsed) == ["account", "databases.d.collections.c.documents"]
    assert parsed["account"] == {0: {0: "q0", 1: "q1"}}
    assert parsed["databases_d_collections_c_documents"] == {2: {0: "q2"}}
    slots = url_subscriptions(["account", "databases.d.collections.c.documents", "files"], parsed)
    assert list(slots) == [0, 2]
    assert (slots[0].channels, slots[0].queries) == (["account", "files"], ["q0", "q1"])
    assert (slots[2].channels, slots[2].queries) == (["databases.d.collections.c.documents"], ["q2"])
    assert query_channels(parse_php_query([("channels", "solo")])) == ["solo"]


def test_php_arrays_become_lists_only_when_keys_count_from_zero() -> None:
    assert php_array({0: "a", 1: "b"}) == ["a", "b"]
    assert php_array({1: "a"}) == {"1": "a"}
    assert php_array({}) == []


def test_frames_are_encoded_like_php() -> None:
    assert (
        encode({"type": "error", "data": {"message": "a/b é"}}) == '{"type":"error","data":{"message":"a\\/b \\u00e9"}}'
    )


def test_fixed_windows() -> None:
    now = [120.0]
    limiter = FixedWindowLimiter(lambda: now[0])
    decisions = [limiter.hit("k", 2, 60) for _ in range(3)]
    assert [(d.allowed, d.remaining, d.reset) for d in decisions] == [(True, 1, 180), (True, 0, 180), (False, 0, 180)]
    assert limiter.hit("other", 2, 60).allowed
    now[0] = 179.9
    assert not limiter.hit("k", 2, 60).allowed
    now[0] = 180.0
    assert limiter.hit("k", 2, 60) == WindowDecision(allowed=True, limit=2, remaining=1, reset=240)
    limiter.clear()
    assert limiter.hit("k", 2, 60).remaining == 1
