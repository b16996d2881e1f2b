"""Minting and checking Appwrite JWTs the way Appwrite's JWT library (adhocore/jwt) does.

Tokens are HS256 over `{"typ":"JWT","alg":"HS256"}` and exactly the claims userId, sessionId and
exp. Checking uses zero leeway: a token is expired from the second its `exp` is reached. The
failure messages are the library's, prefixed the way Appwrite reports them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

_HEADER = {"typ": "JWT", "alg": "HS256"}
# Algorithms the library accepts in a header; whatever the header says, HMAC tokens are then
# verified with the server's configured HS256 key.
_KNOWN_ALGORITHMS = frozenset({"HS256", "HS384", "HS512", "RS256", "RS384", "RS512"})
_MAX_AGE = 3600  # the library's maxAge, which bounds tokens that carry `iat`


class TokenInvalid(Exception):
    """The JWT failed verification; the message is what Appwrite puts in user_jwt_invalid."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _sign(signing_input: str, key: str) -> str:
    return _b64(hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest())


def mint(user_id: str, session_id: str, exp: int, key: str) -> str:
    signing_input = f"{_b64(_json(_HEADER))}.{_b64(_json({'userId': user_id, 'sessionId': session_id, 'exp': exp}))}"
    return f"{signing_input}.{_sign(signing_input, key)}"


def _segment_json(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_unb64(segment))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise TokenInvalid("Failed to verify JWT. JSON failed: Syntax error, malformed JSON") from None
    if not isinstance(value, dict):
        raise TokenInvalid("Failed to verify JWT. Invalid token: Incomplete segments")
    return value


def verify(token: str, key: str, now: float) -> dict[str, Any]:
    """The claims of a valid token; TokenInvalid otherwise."""
    if token.count(".") < 2:
        raise TokenInvalid("Failed to verify JWT. Invalid token: Incomplete segments")
    header_segment, payload_segment, signature = token.split(".", 2)
    header = _segment_json(header_segment)
    algorithm = header.get("alg")
    if not algorithm:
        raise TokenInvalid("Failed to verify JWT. Invalid token: Missing header algo")
    if algorithm not in _KNOWN_ALGORITHMS:
        raise TokenInvalid("Failed to verify JWT. Invalid token: Unsupported header algo")
    expected = _sign(f"{header_segment}.{payload_segment}", key)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise TokenInvalid("Failed to verify JWT. Invalid token: Signature failed")
    claims = _segment_json(payload_segment)
    timestamp = int(now)
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if isinstance(exp, int | float) and timestamp >= exp:
        raise TokenInvalid("Failed to verify JWT. Invalid token: Expired")
    if isinstance(iat, int | float) and timestamp >= iat + _MAX_AGE:
        raise TokenInvalid("Failed to verify JWT. Invalid token: Expired")
    if isinstance(nbf, int | float) and timestamp <= nbf:
        raise TokenInvalid("Failed to verify JWT. Invalid token: Cannot accept now")
    return claims
