"""REDIS_URL taken apart: one server, a Sentinel set or a Cluster, with passwords given beside it.

Every error names the variable and never repeats any part of the URL: a password with a character
a URL reserves (`#`, `/`, `?`, `@`) that is not percent-encoded spills into the host, the port,
the path or the options, so none of them is quoted back, nor an option's value. An option is
named only when it is one of the options this service takes (a fixed list, never the caller's
text). The single-server forms go on to redis-py's own URL parser: it must read them exactly as
checked here, and every option they take is checked with redis-py's own reading of it, so nothing
in the URL fails later, at the first command, with an error of redis-py's quoting it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlsplit

from appwrite_token_exchange.env import EnvReader, SettingsError

RedisKind = Literal["redis", "redis-sentinel", "redis-cluster"]
_REDIS_SCHEMES: dict[str, tuple[RedisKind, bool]] = {
    "redis": ("redis", False), "rediss": ("redis", True), "unix": ("redis", False),
    "redis+sentinel": ("redis-sentinel", False), "rediss+sentinel": ("redis-sentinel", True),
    "redis+cluster": ("redis-cluster", False), "rediss+cluster": ("redis-cluster", True),
}
_SENTINEL_PORT = 26379
_REDIS_PORT = 6379
_DIGITS = re.compile(r"[0-9]{1,9}")  # int() alone takes '+1', ' 1', '1_0' and non-ASCII digits
_TLS_SCHEMES = "rediss://, rediss+sentinel:// or rediss+cluster://"
_ENCODE = "percent-encode a '#', '/', '?', '@' or '%' in the user name or password (e.g. '#' as %23)"
# The single-server forms take redis-py's own URL options (each read by redis-py's parser for it),
# a client name, and for unix:// the credentials (the socket's URL has no user part).
_TEXT_OPTIONS = frozenset({"client_name"})
_TLS_OPTIONS = frozenset({"ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs"})
_SOCKET_OPTIONS = frozenset({"username", "password"})
_CERT_REQS = ("none", "optional", "required")
_OPTIONS_LISTED = 5  # a longer list (redis-py's) is named, not listed
_WHAT_PARSERS_TAKE: Mapping[object, str] = {int: "a whole number", float: "a number"}


@dataclass(frozen=True)
class RedisConfig:
    """REDIS_URL taken apart. `url` is the original, for redis-py's own parser (single server)."""

    kind: RedisKind
    url: str = field(repr=False)
    tls: bool = False
    hosts: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    master_name: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # ?ssl_ca_certs=: the CA bundle TLS servers are checked against


def parse_redis_url(url: str) -> RedisConfig:
    """One server (`redis://`, `rediss://`, `unix://`), Sentinel (`redis+sentinel://`, with
    `rediss+sentinel://` for TLS) or Cluster (`redis+cluster://`, `rediss+cluster://`).
    Every error names REDIS_URL and never repeats any part of the URL: it may hold a password."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _REDIS_SCHEMES:
        raise SettingsError(
            "REDIS_URL",
            "must start with redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, "
            "redis+cluster:// or rediss+cluster://",
        )
    kind, tls = _REDIS_SCHEMES[scheme.lower()]
    if kind == "redis" and "#" in url:
        # redis-py's parser ends the URL there; this one reads a Sentinel's or a Cluster's whole.
        raise SettingsError("REDIS_URL", "holds a '#', where the Redis client's URL ends: write a '#' as %23")
    # The query first: its values (a CA file's path) may hold slashes.
    rest, _, query_string = rest.partition("?")
    query = _options(query_string, _known_options(scheme.lower(), kind), tls)
    if scheme.lower() == "unix":
        if not rest.partition("/")[2]:
            raise SettingsError("REDIS_URL", "needs the socket's path: unix:///path/to/redis.sock")
        socket = RedisConfig("redis", url, username=query.get("username") or None,
                             password=query.get("password") or None, db=_query_db(query))
        return _checked_by_redis_py(socket)
    netloc, _, path = rest.partition("/")
    if "@" in path:
        # A '/' in the user name or password ended the hosts early: what follows it would be read
        # as the database or the master name (which check-config prints).
        raise SettingsError("REDIS_URL", f"has an '@' after the hosts: {_ENCODE}")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    default_port = _SENTINEL_PORT if kind == "redis-sentinel" else _REDIS_PORT
    hosts = tuple(_host_port(part, default_port) for part in hostlist.split(","))
    if kind == "redis" and len(hosts) > 1:
        raise SettingsError("REDIS_URL", "names several hosts; use redis+sentinel:// or redis+cluster:// for those")
    segments = [unquote(segment) for segment in path.split("/")] if path else []
    master_name = None
    if kind == "redis-sentinel":
        if not segments or not segments[0]:
            raise SettingsError("REDIS_URL", "needs the Sentinel master name: redis+sentinel://host:26379/<master-name>")
        master_name, segments = segments[0], segments[1:]
    db = 0
    if len(segments) > 1 or (segments and segments[0] and not _DIGITS.fullmatch(segments[0])):
        raise SettingsError("REDIS_URL", "the database must be a number, like /0")
    if segments and segments[0]:
        if "db" in query:
            raise SettingsError("REDIS_URL", "gives the database twice: as /N and as ?db=N")
        db = int(segments[0])
    elif kind == "redis":
        db = _query_db(query)
    if kind == "redis-cluster" and db != 0:
        raise SettingsError("REDIS_URL", "Redis Cluster has only database 0; remove the /N from the URL")
    ca_file = query.get("ssl_ca_certs") or None
    config = RedisConfig(
        kind, url, tls, hosts, username, password, db, master_name,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
        ca_file=ca_file,
    )
    return _checked_by_redis_py(config) if kind == "redis" else config


def _redis_py_options() -> Mapping[str, Callable[[str], object]]:
    """redis-py's URL options and its reader of each. Imported when a REDIS_URL is read, so that
    settings without one load no Redis client (tests/test_architecture.py)."""
    from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS

    return URL_QUERY_ARGUMENT_PARSERS


def _known_options(scheme: str, kind: RedisKind) -> frozenset[str]:
    if kind == "redis-sentinel":
        return frozenset({"sentinel_password", "sentinel_username", "ssl_ca_certs"})
    if kind == "redis-cluster":
        return frozenset({"ssl_ca_certs"})
    known = {*_redis_py_options(), *_TEXT_OPTIONS, *_TLS_OPTIONS}
    return frozenset(known | _SOCKET_OPTIONS if scheme == "unix" else known)


def _options(query_string: str, known: Collection[str], tls: bool) -> dict[str, str]:
    """The URL's options: each one of `known`, given once, with a value its reader takes."""
    options: dict[str, str] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if name not in known:
            # Not named: the text after a '?' that belongs to a password lands here.
            takes = ", ".join(sorted(known)) if len(known) <= _OPTIONS_LISTED else "redis-py's URL options"
            raise SettingsError("REDIS_URL", f"has an option this form does not take (it takes {takes}); {_ENCODE}")
        if name in options:
            raise SettingsError("REDIS_URL", f"gives the option {name} more than once")
        if name.startswith("ssl_") and not tls:
            raise SettingsError("REDIS_URL", f"{name} needs a TLS scheme: {_TLS_SCHEMES}")
        _check_value(name, value)
        options[name] = value
    return options


def _check_value(name: str, value: str) -> None:
    """An option's value as redis-py will read it; the error names the option, never the value."""
    if name == "db" and not _DIGITS.fullmatch(value):
        raise SettingsError("REDIS_URL", "the database must be a number, like ?db=0")
    if name == "ssl_cert_reqs" and value.lower() not in _CERT_REQS:
        raise SettingsError("REDIS_URL", f"the option ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}")
    read = _redis_py_options().get(name)
    if read is None:
        return
    try:
        parsed = read(value)
    except (TypeError, ValueError):
        what = _WHAT_PARSERS_TAKE.get(read, "a value redis-py takes for it")
        raise SettingsError("REDIS_URL", f"the option {name} must be {what}") from None
    if name == "protocol" and parsed not in (2, 3):
        raise SettingsError("REDIS_URL", "the option protocol must be 2 or 3")


def _checked_by_redis_py(config: RedisConfig) -> RedisConfig:
    """A single server's URL goes to redis-py's own parser: it must read what was checked here."""
    from redis.asyncio.connection import parse_url as redis_py_parse_url

    try:
        read = redis_py_parse_url(config.url)
    except (TypeError, ValueError):  # its messages quote what it could not read (a port that is a password)
        raise SettingsError("REDIS_URL", f"cannot be read by the Redis client: {_ENCODE}") from None
    if config.hosts:
        [(host, port)] = config.hosts
        expected: dict[str, object] = {"host": unquote(host).lower(), "port": port, "username": config.username,
                                       "password": config.password or None}
        seen: dict[str, object] = {"host": str(read.get("host", "")).lower(), "port": read.get("port", _REDIS_PORT),
                                   "username": read.get("username"), "password": read.get("password")}
    else:  # unix://: the socket's path, and credentials from the query
        expected = {"path": True, "password": config.password}
        seen = {"path": bool(read.get("path")), "password": read.get("password")}
    if read.get("db", 0) != config.db or seen != expected:
        raise SettingsError("REDIS_URL", f"is not read the same way by the Redis client: {_ENCODE}")
    return config


def _query_db(query: Mapping[str, str]) -> int:
    return int(query["db"]) if "db" in query else 0


def with_redis_passwords(url: str, reader: EnvReader) -> str:
    """REDIS_URL with REDIS_PASSWORD and REDIS_SENTINEL_PASSWORD (or their _FILE forms) put in,
    so every client (redis-py's own URL parser for one server) sees one configuration."""
    password = reader.secret("REDIS_PASSWORD")
    sentinel_password = reader.secret("REDIS_SENTINEL_PASSWORD")
    if password is None and sentinel_password is None:
        return url
    config = parse_redis_url(url)
    if password is not None:
        if config.password is not None:
            raise SettingsError("REDIS_PASSWORD", "REDIS_URL already holds a password; give it in one place only")
        url = _url_with_password(url, config, password)
    if sentinel_password is not None:
        if config.kind != "redis-sentinel":
            raise SettingsError(
                "REDIS_SENTINEL_PASSWORD", "needs a redis+sentinel:// (or rediss+sentinel://) REDIS_URL"
            )
        if config.sentinel_password is not None:
            raise SettingsError(
                "REDIS_SENTINEL_PASSWORD", "REDIS_URL already holds sentinel_password; give it in one place only"
            )
        url = f"{url}{'&' if '?' in url else '?'}sentinel_password={quote(sentinel_password, safe='')}"
    return url


def _url_with_password(url: str, config: RedisConfig, password: str) -> str:
    encoded = quote(password, safe="")
    scheme, _, rest = url.partition("://")
    if scheme.lower() == "unix":
        # redis-py reads a socket's credentials from its query.
        if "password" in parse_qs(urlsplit(url).query):
            raise SettingsError("REDIS_PASSWORD", "REDIS_URL already holds a password; give it in one place only")
        return f"{url}{'&' if '?' in url else '?'}password={encoded}"
    # As parse_redis_url reads it: the host list ends at the first '/' or '?'.
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    hosts = rest[:end].rpartition("@")[2]
    user = quote(config.username, safe="") if config.username else ""
    return f"{scheme}://{user}:{encoded}@{hosts}{rest[end:]}"


def _host_port(part: str, default_port: int) -> tuple[str, int]:
    host, port = part, ""
    if part.startswith("["):
        host, _, after = part[1:].partition("]")
        port = after.removeprefix(":")
    elif part.count(":") == 1:
        host, _, port = part.partition(":")
    if not host:
        raise SettingsError("REDIS_URL", "has an empty host name")
    if port and not (_DIGITS.fullmatch(port) and 0 < int(port) < 65536):
        raise SettingsError("REDIS_URL", "has a port that is not a number from 1 to 65535")
    return host, int(port) if port else default_port
