"""REDIS_URL taken apart: one server, a Sentinel set or a Cluster, with passwords given beside it.
Every error names the variable and never repeats the URL: it may hold a password."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

from appwrite_token_exchange.env import EnvReader, SettingsError

RedisKind = Literal["redis", "redis-sentinel", "redis-cluster"]
_REDIS_SCHEMES: dict[str, tuple[RedisKind, bool]] = {
    "redis": ("redis", False), "rediss": ("redis", True), "unix": ("redis", False),
    "redis+sentinel": ("redis-sentinel", False), "rediss+sentinel": ("redis-sentinel", True),
    "redis+cluster": ("redis-cluster", False), "rediss+cluster": ("redis-cluster", True),
}
_SENTINEL_PORT = 26379
_REDIS_PORT = 6379


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
    Every error names REDIS_URL and never repeats the URL: it may hold a password."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _REDIS_SCHEMES:
        raise SettingsError(
            "REDIS_URL",
            "must start with redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, "
            "redis+cluster:// or rediss+cluster://",
        )
    kind, tls = _REDIS_SCHEMES[scheme.lower()]
    if scheme.lower() == "unix":
        return RedisConfig("redis", url)
    # The query first: its values (a CA file's path) may hold slashes.
    rest, _, query_string = rest.partition("?")
    netloc, _, path = rest.partition("/")
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
    query = parse_qs(query_string, keep_blank_values=True)
    segments = [unquote(segment) for segment in path.split("/")] if path else []
    master_name = None
    if kind == "redis-sentinel":
        if not segments or not segments[0]:
            raise SettingsError("REDIS_URL", "needs the Sentinel master name: redis+sentinel://host:26379/<master-name>")
        master_name, segments = segments[0], segments[1:]
    db = 0
    if len(segments) > 1 or (segments and segments[0] and not segments[0].isdigit()):
        raise SettingsError("REDIS_URL", "the database must be a number, like /0")
    if segments and segments[0]:
        db = int(segments[0])
    elif "db" in query and kind == "redis":
        if not query["db"][-1].isdigit():
            raise SettingsError("REDIS_URL", "the database must be a number, like ?db=0")
        db = int(query["db"][-1])
    if kind == "redis-cluster" and db != 0:
        raise SettingsError("REDIS_URL", "Redis Cluster has only database 0; remove the /N from the URL")
    known = {"ssl_ca_certs"} | ({"sentinel_password", "sentinel_username"} if kind == "redis-sentinel" else set())
    unknown = set(query) - known
    if kind != "redis" and unknown:
        raise SettingsError("REDIS_URL", f"unknown option(s): {', '.join(sorted(unknown))}")
    ca_file = query.get("ssl_ca_certs", [None])[-1] or None
    if ca_file and not tls:
        raise SettingsError("REDIS_URL", "ssl_ca_certs needs a TLS scheme: rediss://, rediss+sentinel:// or rediss+cluster://")
    return RedisConfig(
        kind, url, tls, hosts, username, password, db, master_name,
        sentinel_username=query.get("sentinel_username", [None])[-1] or None,
        sentinel_password=query.get("sentinel_password", [None])[-1] or None,
        ca_file=ca_file,
    )


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
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise SettingsError("REDIS_URL", "has a port that is not a number from 1 to 65535")
    return host, int(port) if port else default_port
