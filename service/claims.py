"""Reading the claims of a JWT that Appwrite minted: who it is for and when it expires."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt


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
        return datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_claims(token: str, secret: str | None, now: float | None = None) -> TokenClaims:
    """Decode a freshly minted token; verify its HS256 signature when the instance key is known.

    The expiry always comes from the token itself, so it is true even when an older Appwrite
    ignored the duration we asked for.
    """
    try:
        if secret is not None:
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], options={"verify_exp": False, "require": ["exp"]}
            )
        else:
            if jwt.get_unverified_header(token).get("alg") != "HS256":
                raise ClaimsError("token is not HS256")
            claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        # The library's message never contains the token itself.
        raise ClaimsError(f"token does not decode: {type(error).__name__}") from None
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
