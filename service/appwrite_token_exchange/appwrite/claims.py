"""Reading the claims of a JWT that Appwrite minted: who it is for and when it expires."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

_JWS = jwt.PyJWS(algorithms=["HS256"])


class ClaimsError(ValueError):
    """The token is not a usable Appwrite JWT."""


class SignatureMismatch(ClaimsError):
    """A well-formed HS256 token whose signature no configured instance key verifies: most likely
    APPWRITE_JWT_SECRET is not this Appwrite's `_APP_OPENSSL_KEY_V1`, not Appwrite failing."""


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    session_id: str
    expires_at: int

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_at - now))

    @property
    def expires_at_rfc3339(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.expires_at))


def read_claims(token: str, secrets: str | Sequence[str] | None = (), now: float | None = None) -> TokenClaims:
    """Decode a freshly minted token; verify its HS256 signature when instance keys are known.

    `secrets` are the instance keys (`APPWRITE_JWT_SECRET`, several while one is rotated): the
    signature must verify under one of them, or SignatureMismatch says that none matched. With no
    key, the signature is not checked. The expiry always comes from the token itself, so it is
    true even when an older Appwrite ignored the duration we asked for.
    """
    # One key given as a plain string is one key, not a sequence of one-character keys.
    secrets = (secrets,) if isinstance(secrets, str) else tuple(secrets or ())
    try:
        # PyJWT's JWS layer parses the token; the claims are plain JSON after that.
        decoded = _verified(token, secrets) if secrets else _JWS.decode_complete(
            token, options={"verify_signature": False}
        )
        claims = orjson.loads(decoded["payload"])
    except SignatureMismatch:
        raise
    except (jwt.PyJWTError, ValueError) as error:
        # Neither message ever contains the token itself.
        raise ClaimsError(f"token does not decode: {type(error).__name__}") from None
    if decoded["header"].get("alg") != "HS256":
        raise ClaimsError("token is not HS256")
    if not isinstance(claims, dict):
        raise ClaimsError("token claims are not an object")
    user_id, session_id, exp = claims.get("userId"), claims.get("sessionId"), claims.get("exp")
    if not isinstance(user_id, str) or not user_id:
        raise ClaimsError("token has no userId claim")
    if not isinstance(session_id, str) or not session_id:
        raise ClaimsError("token has no sessionId claim")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise ClaimsError("token has no integer exp claim")
    if exp <= (time.time() if now is None else now):
        raise ClaimsError("token is already expired")
    return TokenClaims(user_id=user_id, session_id=session_id, expires_at=exp)


def _verified(token: str, secrets: Sequence[str]) -> dict[str, Any]:
    """The decoded token if one of the secrets verifies its signature."""
    for secret in secrets:
        try:
            return _JWS.decode_complete(token, secret, algorithms=["HS256"])
        except jwt.InvalidSignatureError:
            continue
    raise SignatureMismatch(f"token signature matches none of the {len(secrets)} configured instance key(s)")
