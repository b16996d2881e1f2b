"""The session credential's wire format, secret hashing and Appwrite-style IDs.

A session value is `base64(json({"id": userId, "secret": secret}))`, the same string Appwrite puts
in the `a_session_<project>` cookie, in `session.secret` for API-key callers, and expects in
`X-Appwrite-Session`. Only a hash of the secret is kept, as Appwrite does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from urllib.parse import unquote

# Appwrite's session secrets are 256 characters long.
_SECRET_BYTES = 128


def encode_session_value(user_id: str, secret: str) -> str:
    raw = json.dumps({"id": user_id, "secret": secret}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode("ascii")


def decode_session_value(value: str) -> tuple[str, str]:
    """(user id, secret), or two empty strings for anything that is not a session value.

    Appwrite's cookies are URL-encoded on the way out (its `=` padding becomes `%3D`), so a value
    copied from a Set-Cookie header is accepted as well as the plain one.
    """
    if "%" in value:
        value = unquote(value)
    padded = value.strip() + "=" * (-len(value.strip()) % 4)
    try:
        decoded = json.loads(base64.b64decode(padded, validate=False))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return "", ""
    if not isinstance(decoded, dict):
        return "", ""
    user_id, secret = decoded.get("id", ""), decoded.get("secret", "")
    if not isinstance(user_id, str) or not isinstance(secret, str):
        return "", ""
    return user_id, secret


def new_secret() -> str:
    return secrets.token_hex(_SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def hash_password(password: str, salt: str) -> str:
    # A test double: a salted SHA-256 is enough, and unlike a real KDF it never stalls the loop.
    return hashlib.sha256(f"{salt}:{password}".encode()).hexdigest()


def unique_id(now: float) -> str:
    """Like Appwrite's ID::unique(): PHP uniqid() (13 hex chars of time) plus 7 random hex chars."""
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000)
    return f"{seconds:08x}{micros:05x}{secrets.token_hex(4)[:7]}"
