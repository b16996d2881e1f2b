"""What read_claims answers past the happy path: the lifetime left once a token is expired, and the
mismatch error's words. Each test fails on a mutant of appwrite/claims.py that test_claims.py and
test_claims_secrets.py let through (scripts/mutation; the equivalent ones are in
tests/mutation/equivalent.txt)."""

from __future__ import annotations

import jwt
import pytest
from appwrite_token_exchange.appwrite.claims import ClaimsError, SignatureMismatch, TokenClaims, read_claims

NOW = 1_800_000_000


def test_a_token_has_no_time_left_from_its_expiry_on() -> None:
    claims = TokenClaims(user_id="u", session_id="s", expires_at=NOW)
    assert claims.expires_in(NOW - 90.5) == 90
    assert claims.expires_in(NOW) == 0
    assert claims.expires_in(NOW + 30) == 0


def test_a_signature_no_key_verifies_says_how_many_keys_were_tried() -> None:
    token = jwt.encode({"userId": "u", "sessionId": "s", "exp": NOW + 60}, "the-real-key-0123456789abcdefghij")
    with pytest.raises(SignatureMismatch) as mismatch:
        read_claims(token, ["another-key-0123456789abcdefghijkl", "a-third-key-0123456789abcdefghijk"], now=NOW)
    assert str(mismatch.value) == "token signature matches none of the 2 configured instance key(s)"


def signed(payload: bytes, algorithm: str = "HS256") -> str:
    return jwt.PyJWS().encode(payload, "a-key-of-more-than-48-bytes-0123456789abcdefghijklmnopqrstuvwxyz", algorithm=algorithm)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("not a token", "token does not decode: DecodeError"),
        (signed(b'{"userId": "u", "sessionId": "s", "exp": 1800000060}', "HS384"), "token is not HS256"),
        (signed(b"[1]"), "token claims are not an object"),
        (signed(b'{"sessionId": "s", "exp": 1800000060}'), "token has no userId claim"),
        (signed(b'{"userId": "u", "exp": 1800000060}'), "token has no sessionId claim"),
        (signed(b'{"userId": "u", "sessionId": "s", "exp": true}'), "token has no integer exp claim"),
        (signed(b'{"userId": "u", "sessionId": "s", "exp": 1800000000}'), "token is already expired"),
    ],
)
def test_each_refusal_says_exactly_what_is_wrong(token: str, message: str) -> None:
    with pytest.raises(ClaimsError) as refused:
        read_claims(token, now=NOW)
    assert str(refused.value) == message
