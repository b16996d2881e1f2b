"""The session cookie: found in the raw Cookie header, and read the way Appwrite reads it.

The value is `base64(json({"id": userId, "secret": secret}))` (see appwrite-wire.md). Appwrite
decodes it with utopia-php's `Store::decode`: PHP's `base64_decode($value, true)`, then
`json_decode`. One session has many spellings that decode alike (JSON whitespace, key order and
escapes; base64 padding, whitespace and unused low bits), so the service keys a session by what
decodes, never by the spelling, and refuses what Appwrite could not decode without asking it.

Web frameworks that write the cookie themselves (Nuxt/h3, Express: the `cookie` and `cookie-es`
serializers) percent-encode it, so `=` padding arrives as `%3D`, which Appwrite's strict base64
refuses. Their own cookie readers undo that with `decodeURIComponent`, and so does the service
before it forwards the value: exactly that decoding, nothing looser.
"""

from __future__ import annotations

import binascii
import json
import re
from base64 import b64decode
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import hdrs, web

from appwrite_token_exchange.problems import ProblemError

# A real value is ~400 characters (a 36-character id and a 256-character secret); a value this
# long is not a session, and decoding it is not worth the CPU.
MAX_SESSION_VALUE_LENGTH = 4096
# PHP's json_decode depth as Appwrite calls it; deeper documents are refused, not decoded.
_PHP_JSON_DEPTH = 512
# What PHP's strict base64_decode skips rather than refuses.
_PHP_BASE64_WHITESPACE = str.maketrans("", "", " \t\r\n")
# After whitespace: the standard alphabet, then at most two `=`, with nothing after them.
_PHP_STRICT_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# A run of percent-escapes, or a `%` that does not start one (which decodeURIComponent throws on).
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+|%")


@dataclass(frozen=True)
class Session:
    """A session cookie Appwrite can decode. `value`, the cookie as the app's framework reads it
    (framework_decode), is forwarded to Appwrite unchanged; `user_id` is only what the cookie
    claims until Appwrite confirms it; `secret` identifies the session. Two spellings of one
    session compare equal."""

    value: str = field(repr=False, compare=False)
    user_id: str
    secret: str = field(repr=False)


def cookie_value(cookie_headers: Iterable[str], name: str) -> str | None:
    """The first value of the cookie `name` across the Cookie header lines, or None.

    Browsers send the most specific cookie (longest path, then oldest) first when two share a name,
    and PHP keeps the first, so the first is the one Appwrite would read. Only this one cookie is
    looked at: the others are never split or parsed, so a header of thousands of cookies costs a
    substring search, not thousands of parses. A DQUOTE-wrapped value (RFC 6265) loses its quotes.
    """
    for header in cookie_headers:
        at = header.find(name)
        while at != -1:
            value = _value_at(header, at, name)
            if value is not None:
                return value
            at = header.find(name, at + 1)
    return None


def _value_at(header: str, at: int, name: str) -> str | None:
    """The value if the cookie pair at `at` is named exactly `name`, else None."""
    before = at - 1
    while before >= 0 and header[before] in " \t":
        before -= 1
    if before >= 0 and header[before] != ";":
        return None  # `name` is the tail of another cookie's name, or inside a value
    after = at + len(name)
    while after < len(header) and header[after] in " \t":
        after += 1
    if after == len(header) or header[after] != "=":
        return None  # `name` is the head of another cookie's name, or a pair without "="
    end = header.find(";", after)
    value = header[after + 1 : end if end != -1 else len(header)].strip(" \t")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value


def framework_decode(value: str) -> str:
    """The cookie value as the `cookie` npm package's `parse` hands it to the app (and so to the
    Appwrite SDK): `decodeURIComponent(value)` when it contains a `%`, the raw value when that
    throws. DQUOTEs are already gone (cookie_value).

    decodeURIComponent turns every `%XX` run into the UTF-8 text it encodes and leaves everything
    else alone (`+` stays `+`). It throws on a `%` without two hex digits after it and on bytes that
    are not strict UTF-8 (a truncated or overlong sequence, an encoded surrogate), and so the whole
    value stays as it came. Python's strict UTF-8 codec refuses exactly what ECMAScript's Decode
    refuses, and a run decodes as its characters one by one would, because a character's bytes
    can only be escapes that follow each other.
    """
    if "%" not in value:
        return value
    try:
        return _PERCENT_RUN.sub(_decode_escapes, value)
    except ValueError:  # UnicodeDecodeError included: decodeURIComponent's URIError
        return value


def _decode_escapes(run: re.Match[str]) -> str:
    escapes = run.group()
    if escapes == "%":
        raise ValueError("a '%' that starts no escape")
    return bytes.fromhex(escapes.replace("%", "")).decode("utf-8")


def php_strict_base64_decode(value: str) -> bytes | None:
    """PHP's `base64_decode($value, true)`: None where PHP answers false.

    PHP skips spaces, tabs, CR and LF; refuses any other character outside the standard alphabet,
    data after `=`, more than two `=`, a last group of one character, and padding that does not
    complete a group. Missing padding is fine, and bits beyond the last whole byte are ignored.
    """
    compact = value.translate(_PHP_BASE64_WHITESPACE)
    if not compact.isascii() or not _PHP_STRICT_BASE64.fullmatch(compact):
        return None
    data = compact.rstrip("=")
    padding = len(compact) - len(data)
    if len(data) % 4 == 1 or (padding and (len(data) + padding) % 4):
        return None
    try:
        return b64decode(data + "=" * (-len(data) % 4))
    except binascii.Error:  # pragma: no cover - every input that reaches here is valid
        return None


def decode_session_value(value: str) -> Session | None:
    """The session Appwrite reads from this value, or None where Appwrite would find no session."""
    if len(value) > MAX_SESSION_VALUE_LENGTH:
        return None
    raw = php_strict_base64_decode(value)
    if raw is None:
        return None
    try:
        # PHP's json_decode takes UTF-8 only (Python's would guess UTF-16 and UTF-32 from bytes).
        document = json.loads(raw.decode("utf-8"), parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or _depth(document) > _PHP_JSON_DEPTH:
        return None
    user_id, secret = document.get("id"), document.get("secret")
    if not isinstance(user_id, str) or not isinstance(secret, str) or not user_id or not secret:
        return None
    if not _php_can_hold(user_id) or not _php_can_hold(secret):
        return None
    return Session(value, user_id, secret)


def _not_json(constant: str) -> None:
    """NaN and Infinity are Python's extensions to JSON; PHP refuses them."""
    raise ValueError(constant)


def _depth(document: object, limit: int = _PHP_JSON_DEPTH) -> int:
    """How deeply the document nests (a scalar is 0, `{}` is 1), counting no further than past `limit`."""
    deepest, level = 0, [(document, 1)]
    while level:
        node, depth = level.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            level.extend((child, depth + 1) for child in children)
    return deepest


def _php_can_hold(text: str) -> bool:
    """PHP's json_decode refuses a lone UTF-16 surrogate (`\\ud800`); Python's takes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def session_from_cookie(request: web.Request, cookie_name: str) -> Session:
    """The session, or a problem: no cookie, or a value Appwrite could not decode (never asked).

    The value is read as the app's framework reads it (framework_decode), so the session forwarded
    is the one the app's own Appwrite calls use, whichever way the framework spelled the cookie.
    """
    value = cookie_value(request.headers.getall(hdrs.COOKIE, ()), cookie_name)
    if not value:
        raise ProblemError("session_missing", f"The request carries no '{cookie_name}' cookie.")
    decoded = framework_decode(value)
    # Only a decoded value can hold CR or LF (a header cannot): PHP's base64 would skip them, but
    # no client can send them in X-Appwrite-Session, so this is no session anyone could use.
    session = None if "\r" in decoded or "\n" in decoded else decode_session_value(decoded)
    if session is None:
        raise ProblemError("session_invalid", "The session cookie is not a session Appwrite could read.")
    return session
