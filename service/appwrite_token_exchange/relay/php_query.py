"""Query strings read the way PHP reads them, which is how Appwrite's Realtime server reads its URL.

Appwrite runs on Swoole, which fills `$request->get` with PHP's own parser (php_variables.c,
`php_register_variable_ex`). That parser gives one parameter many spellings: `channels`,
`channels[]`, `channels[0]`, `channels[x]`, `channels%5B%5D`, ` channels[]`, `channels[ ]`,
`channels[0]junk` and `channels%00junk` all name `channels`. The relay reads its page's query
with the same rules, so it sees every parameter Appwrite would, and writes back only the ones it
checked, each in one canonical spelling.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

# What C's isspace() accepts in the "C" locale: PHP skips one of these right after a `[`.
_C_SPACE = " \t\n\v\f\r"


@dataclass(frozen=True)
class PhpKey:
    """A parameter's name as PHP stores it: the variable, then one index per `[...]` (None: `[]`)."""

    name: str
    path: tuple[str | None, ...] = ()

    def spelled(self) -> str:
        """One spelling of this key, percent-encoded, that PHP reads back as this same key."""
        indexes = "".join("[]" if index is None else f"[{_quote(index)}]" for index in self.path)
        return _quote(self.name) + indexes


def parse_query(raw_query: str) -> list[tuple[PhpKey, str]]:
    """Every parameter PHP registers from a raw (still percent-encoded) query string, in order."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        key = parse_key(php_urldecode(name))
        if key is not None:
            pairs.append((key, php_urldecode(value)))
    return pairs


def encode_query(pairs: Iterable[tuple[PhpKey, str]]) -> str:
    """A query string of these parameters, every key and value percent-encoded."""
    return "&".join(f"{key.spelled()}={_quote(value)}" for key, value in pairs)


def php_urldecode(text: str) -> str:
    """PHP's urldecode(): `+` is a space, `%XX` a byte, anything else literal. Bytes that are not
    UTF-8 are kept as surrogate escapes, so they are written back unchanged."""
    raw = unquote_to_bytes(text.replace("+", " ").encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "surrogateescape")


def parse_key(decoded: str) -> PhpKey | None:
    """The key PHP registers for a decoded parameter name; None when PHP drops the parameter."""
    # PHP handles the name as a C string (a NUL ends it) and skips leading spaces.
    name = decoded.split("\0", 1)[0].lstrip(" ")
    bracket = name.find("[")
    head = _mangle(name if bracket < 0 else name[:bracket], " .")
    if not head:
        return None
    if bracket < 0:
        return PhpKey(head)
    path: list[str | None] = []
    at = bracket  # always on a `[`
    while True:
        start = at + 1
        skip = start + 1 if start < len(name) and name[start] in _C_SPACE else start
        if skip < len(name) and name[skip] == "]":
            path.append(None)
            close = skip
        else:
            close = name.find("]", skip)
            if close < 0:
                if not path:
                    # An unclosed first bracket is no index: the whole name is one variable.
                    return PhpKey(f"{head}_{_mangle(name[start:], ' .[')}")
                break  # an unclosed later bracket is ignored, with everything after it
            path.append(name[start:close])
        at = close + 1
        if at >= len(name) or name[at] != "[":
            break  # anything after the last `]` that does not open another index is ignored
    return PhpKey(head, tuple(path))


def _mangle(text: str, characters: str) -> str:
    for character in characters:
        text = text.replace(character, "_")
    return text


def _quote(text: str) -> str:
    return quote(text.encode("utf-8", "surrogateescape"), safe="")
