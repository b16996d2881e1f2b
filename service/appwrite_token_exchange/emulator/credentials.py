"""The session credential's wire format, secret hashing and Appwrite-style IDs.

A session value is `base64(json({"id": userId, "secret": secret}))`, the same string Appwrite puts
in the `a_session_<project>` cookie, in `session.secret` for API-key callers, and expects in
`X-Appwrite-Session`. Only a hash of the secret is kept, as Appwrite does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string

# Appwrite's session secrets are 256 characters long.
_SECRET_BYTES = 128
_BASE64_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
_BASE64_DIGITS = {char: digit for digit, char in enumerate(_BASE64_ALPHABET)}


def encode_session_value(user_id: str, secret: str) -> str:
    raw = json.dumps({"id": user_id, "secret": secret}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode("ascii")


def decode_session_value(value: str) -> tuple[str, str]:
    """(user id, secret), or two empty strings where Appwrite finds no session in the value.

    As utopia-php's `Store::decode`: PHP's strict `base64_decode`, then `json_decode`. Nothing is
    percent-decoded here: a `%3D` in `X-Appwrite-Session` makes a guest, as in Appwrite. (Cookies
    are percent-decoded before they get here, as Swoole does; see auth.py.)
    """
    raw = php_base64_decode_strict(value)
    if raw is None:
        return "", ""
    try:
        decoded = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "", ""
    if not isinstance(decoded, dict):
        return "", ""
    user_id, secret = decoded.get("id", ""), decoded.get("secret", "")
    if not isinstance(user_id, str) or not isinstance(secret, str):
        return "", ""
    return user_id, secret


def php_base64_decode_strict(value: str) -> bytes | None:
    """PHP's `base64_decode($value, true)`, following its C loop: None where PHP returns false.

    Spaces, tabs, CR and LF are skipped; any other character outside the standard alphabet fails,
    as does anything but whitespace after `=`, a last group of one character, or padding that
    does not complete the group. Missing padding passes; spare low bits are dropped unchecked.
    """
    out = bytearray()
    bits = held = groups = padding = 0
    for char in value:
        if char == "=":
            padding += 1
            continue
        if char in " \t\r\n":
            continue
        digit = _BASE64_DIGITS.get(char)
        if digit is None or padding:
            return None
        bits, held, groups = (bits << 6) | digit, held + 6, groups + 1
        if held >= 8:
            held -= 8
            out.append(bits >> held)
            bits &= (1 << held) - 1
    if groups % 4 == 1 or (padding and (padding > 2 or (groups + padding) % 4)):
        return None
    return bytes(out)


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
