"""Reading the claims of a JWT that Appwrite minted: who it is for and when it expires."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import jwt

_JWS = jwt.PyJWS(algorithms=["HS256"])


class ClaimsError(ValueError):
    """The token is not a usable Appwrite JWT."""


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


def read_claims(token: str, secret: str | None, now: float | None = None) -> TokenClaims:
    """Decode a freshly minted token; verify its HS256 signature when the instance key is known.

    The expiry always comes from the token itself, so it is true even when an older Appwrite
    ignored the duration we asked for.
    """
    try:
        # PyJWT's JWS layer parses the token once; the claims are plain JSON after that.
        if secret is not None:
            decoded = _JWS.decode_complete(token, secret, algorithms=["HS256"])
        else:
            decoded = _JWS.decode_complete(token, options={"verify_signature": False})
        claims = json.loads(decoded["payload"])
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
