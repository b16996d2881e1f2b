"""What read_claims accepts, one bad claim at a time (issue 29): each refusal says which claim, and
never quotes the token. A JWT whose claims it misread would be handed to a page, or refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from appwrite_token_exchange.appwrite.claims import ClaimsError, read_claims

NOW = 1_800_000_000
KEY = "instance-key-for-these-tests-0123456789"
GOOD = {"userId": "u1", "sessionId": "s1", "exp": NOW + 900}


def unsigned(payload: Any, header: dict[str, Any] | None = None) -> str:
    """A token with any JSON payload (PyJWT would refuse to encode a non-object)."""
    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'HS256', 'typ': 'JWT'} if header is None else header)}.{part(payload)}.c2ln"


def test_good_claims_are_read() -> None:
    claims = read_claims(jwt.encode(GOOD, KEY), KEY, now=NOW)
    assert (claims.user_id, claims.session_id, claims.expires_at) == ("u1", "s1", NOW + 900)
    assert claims.expires_in(NOW) == 900


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({**GOOD, "userId": None}, "no userId"),
        ({k: v for k, v in GOOD.items() if k != "userId"}, "no userId"),
        ({**GOOD, "userId": ""}, "no userId"),
        ({**GOOD, "userId": 7}, "no userId"),
        ({**GOOD, "sessionId": None}, "no sessionId"),
        ({k: v for k, v in GOOD.items() if k != "sessionId"}, "no sessionId"),
        ({**GOOD, "sessionId": ""}, "no sessionId"),
        ({**GOOD, "sessionId": ["s1"]}, "no sessionId"),
        ({k: v for k, v in GOOD.items() if k != "exp"}, "no integer exp"),
        ({**GOOD, "exp": True}, "no integer exp"),
        ({**GOOD, "exp": float(NOW + 900)}, "no integer exp"),
        ({**GOOD, "exp": str(NOW + 900)}, "no integer exp"),
        ({**GOOD, "exp": NOW}, "already expired"),
        ({**GOOD, "exp": NOW - 1}, "already expired"),
    ],
)
def test_each_bad_claim_is_refused_by_name(claims: dict[str, Any], reason: str) -> None:
    token = unsigned(claims)
    with pytest.raises(ClaimsError) as refused:
        read_claims(token, None, now=NOW)
    assert reason in str(refused.value)
    assert token not in str(refused.value)


@pytest.mark.parametrize("payload", [["u1", "s1"], "claims", 42, None], ids=["list", "string", "number", "null"])
def test_claims_that_are_not_an_object_are_refused(payload: Any) -> None:
    with pytest.raises(ClaimsError, match="not an object"):
        read_claims(unsigned(payload), None, now=NOW)


@pytest.mark.parametrize("header", [{"alg": "none"}, {"alg": "HS512"}, {"alg": "RS256"}, {}])
def test_a_token_that_is_not_hs256_is_refused(header: dict[str, Any]) -> None:
    with pytest.raises(ClaimsError):
        read_claims(unsigned(GOOD, header), None, now=NOW)


@pytest.mark.parametrize("token", ["", "a.b", "not a token", "a.b.c.d", "é.é.é"])
def test_what_is_not_a_jwt_is_refused(token: str) -> None:
    with pytest.raises(ClaimsError, match="does not decode"):
        read_claims(token, None, now=NOW)
