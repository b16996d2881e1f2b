"""Service settings: one frozen object, read from the environment and validated at start."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

from service.rate_limits import RateLimit, parse_rate_limit
from service.tracing import TracingConfig, TracingSettingsError, tracing_config

_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$")
# RFC 6265 cookie-name: an RFC 7230 token.
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_LOG_LEVELS = ("debug", "info", "warning", "error")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    appwrite_endpoint: str
    project_id: str
    session_cookie_name: str
    token_ttl_seconds: int = 60
    allowed_origins: frozenset[str] = frozenset()
    host: str = "0.0.0.0"  # noqa: S104 - a container service listens on all interfaces
    port: int = 8080
    upstream_timeout_seconds: float = 3.0
    trusted_proxies: tuple[IpNetwork, ...] = ()
    # Instance keys a minted token may be signed with (several while one is rotated); () = unchecked.
    appwrite_jwt_secrets: tuple[str, ...] = field(default=(), repr=False)
    log_level: str = "info"
    log_format: Literal["json", "console"] = "json"
    drain_timeout_seconds: float = 20.0
    rate_limit_ip: RateLimit | None = RateLimit(60, 60)  # noqa: RUF009 - frozen, so sharing is safe
    rate_limit_session: RateLimit | None = RateLimit(10, 60)  # noqa: RUF009 - frozen, so sharing is safe
    rate_limit_user: RateLimit | None = RateLimit(30, 60)  # noqa: RUF009 - frozen, so sharing is safe
    invalid_session_cache_seconds: int = 30
    redis_url: str | None = field(default=None, repr=False)
    state_hash_key: bytes | None = field(default=None, repr=False)
    upstream_max_concurrency: int = 64
    circuit_failure_threshold: int = 5
    circuit_cooldown_seconds: float = 10.0
    relay_channels_allow: tuple[str, ...] = ()
    relay_revalidate_seconds: float = 300.0
    relay_max_sockets: int = 10_000
    # Per-caller shares of the relay's sockets, so one caller cannot take every slot.
    relay_max_sockets_per_user: int = 20
    relay_max_sockets_per_session: int = 10
    relay_max_sockets_per_ip: int = 100
    # Whether the relay must put a page's channels into the upstream URL itself (servers 1.8.x and
    # 1.9.0 refuse a socket without them); `auto` asks Appwrite its version.
    relay_channels_in_url: Literal["auto", "yes", "no"] = "auto"
    # Largest event the relay passes from Appwrite to a page. Appwrite caps only what clients send;
    # an event carries a whole document, which can hold megabytes of text. 16 MiB fits those while
    # bounding what one socket can make the relay hold in memory at once (one message at a time).
    relay_max_event_bytes: int = 16 * 1024 * 1024
    # What a request may cost before it is authenticated: time to send its headers and body,
    # and the bytes of all its header lines together.
    request_read_timeout_seconds: float = 10.0
    max_request_header_bytes: int = 64 * 1024
    # IPv6 clients are limited per network of this prefix length (one host usually owns a /64).
    ipv6_prefix_length: int = 64
    # Entries the in-memory state keeps at most (limit windows and caches together).
    memory_state_max_entries: int = 100_000
    # OpenTelemetry tracing from the standard OTEL_* variables; None = off (service/tracing.py).
    tracing: TracingConfig | None = None

    @property
    def jwt_url(self) -> str:
        return f"{self.appwrite_endpoint}/account/jwts"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from environment variables; raise SettingsError on the first bad one."""
        reader = _Reader(env)
        endpoint = reader.url("APPWRITE_ENDPOINT")
        project_id = reader.required("APPWRITE_PROJECT_ID")
        if not _PROJECT_ID.match(project_id):
            raise SettingsError("APPWRITE_PROJECT_ID", "must be 1-36 letters, digits, '.', '_' or '-'")
        cookie_name = reader.text("SESSION_COOKIE_NAME", f"a_session_{project_id}")
        if not _COOKIE_NAME.match(cookie_name):
            raise SettingsError("SESSION_COOKIE_NAME", "is not a valid cookie name")
        # A secret too: it may hold the password (the ha overlay reads it from REDIS_URL_FILE).
        redis_url = reader.secret("REDIS_URL")
        if redis_url is not None:
            parse_redis_url(redis_url)  # raises SettingsError naming REDIS_URL
            redis_url = _with_redis_passwords(redis_url, reader)
        hash_key = reader.secret("STATE_HASH_KEY")
        if redis_url is not None and hash_key is None:
            raise SettingsError("STATE_HASH_KEY", "is required with REDIS_URL: replicas must share it")
        if hash_key is not None and len(hash_key) < 16:
            raise SettingsError("STATE_HASH_KEY", "must be at least 16 characters")
        try:
            tracing = tracing_config(env)
        except TracingSettingsError as error:
            raise SettingsError(error.variable, error.problem) from None
        return cls(
            appwrite_endpoint=endpoint,
            project_id=project_id,
            session_cookie_name=cookie_name,
            token_ttl_seconds=reader.integer("TOKEN_TTL_SECONDS", 60, 1, 3600),
            allowed_origins=reader.origins("ALLOWED_ORIGINS"),
            host=reader.text("HOST", "0.0.0.0"),  # noqa: S104
            port=reader.integer("PORT", 8080, 1, 65535),
            upstream_timeout_seconds=reader.number("UPSTREAM_TIMEOUT_SECONDS", 3.0, 0.05, 60.0),
            trusted_proxies=reader.networks("TRUSTED_PROXIES"),
            appwrite_jwt_secrets=reader.secrets("APPWRITE_JWT_SECRET"),
            log_level=reader.choice("LOG_LEVEL", "info", _LOG_LEVELS),
            log_format="console" if reader.choice("LOG_FORMAT", "json", ("json", "console")) == "console" else "json",
            drain_timeout_seconds=reader.number("DRAIN_TIMEOUT_SECONDS", 20.0, 0.0, 600.0),
            rate_limit_ip=reader.rate_limit("RATE_LIMIT_IP", "60/minute"),
            rate_limit_session=reader.rate_limit("RATE_LIMIT_SESSION", "10/minute"),
            rate_limit_user=reader.rate_limit("RATE_LIMIT_USER", "30/minute"),
            invalid_session_cache_seconds=reader.integer("INVALID_SESSION_CACHE_SECONDS", 30, 0, 3600),
            redis_url=redis_url,
            state_hash_key=hash_key.encode() if hash_key is not None else None,
            upstream_max_concurrency=reader.integer("UPSTREAM_MAX_CONCURRENCY", 64, 1, 10_000),
            circuit_failure_threshold=reader.integer("CIRCUIT_FAILURE_THRESHOLD", 5, 1, 1000),
            circuit_cooldown_seconds=reader.number("CIRCUIT_COOLDOWN_SECONDS", 10.0, 0.1, 3600.0),
            relay_channels_allow=reader.patterns("RELAY_CHANNELS_ALLOW"),
            relay_revalidate_seconds=reader.number("RELAY_REVALIDATE_SECONDS", 300.0, 1.0, 86_400.0),
            relay_max_sockets=reader.integer("RELAY_MAX_SOCKETS", 10_000, 1, 1_000_000),
            relay_max_sockets_per_user=reader.integer("RELAY_MAX_SOCKETS_PER_USER", 20, 1, 1_000_000),
            relay_max_sockets_per_session=reader.integer("RELAY_MAX_SOCKETS_PER_SESSION", 10, 1, 1_000_000),
            relay_max_sockets_per_ip=reader.integer("RELAY_MAX_SOCKETS_PER_IP", 100, 1, 1_000_000),
            relay_channels_in_url=_channels_in_url(reader.choice("APPWRITE_REALTIME_CHANNELS_IN_URL", "auto", _IN_URL)),
            relay_max_event_bytes=reader.integer("RELAY_MAX_EVENT_BYTES", 16 * 1024 * 1024, 64_000, 1024 * 1024 * 1024),
            request_read_timeout_seconds=reader.number("REQUEST_READ_TIMEOUT_SECONDS", 10.0, 0.1, 600.0),
            max_request_header_bytes=reader.integer("MAX_REQUEST_HEADER_BYTES", 64 * 1024, 8 * 1024, 1024 * 1024),
            ipv6_prefix_length=reader.integer("IPV6_PREFIX_LENGTH", 64, 1, 128),
            memory_state_max_entries=reader.integer("MEMORY_STATE_MAX_ENTRIES", 100_000, 100, 100_000_000),
            tracing=tracing,
        )


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


def _with_redis_passwords(url: str, reader: _Reader) -> str:
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


_IN_URL = ("auto", "yes", "no")


def _channels_in_url(value: str) -> Literal["auto", "yes", "no"]:
    return "yes" if value == "yes" else "no" if value == "no" else "auto"


class _Reader:
    """Typed access to environment variables, each failure naming its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(name, "is required")
        return value

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(name, f"must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(name, f"must be between {low} and {high}, got {value}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, f"must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(name, f"must be between {low} and {high}, got {value}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            raise SettingsError(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def url(self, name: str) -> str:
        raw = self.required(name).rstrip("/")
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(name, "must be an http(s) URL such as https://cloud.appwrite.io/v1")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise SettingsError(name, "must not carry a query, fragment or credentials")
        return raw

    def origins(self, name: str) -> frozenset[str]:
        origins = set()
        for item in self.text(name, "").split(","):
            item = item.strip().rstrip("/")
            if not item:
                continue
            parts = urlsplit(item)
            if item == "*" or parts.scheme not in ("http", "https") or not parts.hostname:
                raise SettingsError(name, f"{item!r} is not an exact origin like https://app.example.com")
            if parts.path or parts.query or parts.fragment or parts.username:
                raise SettingsError(name, f"{item!r} must be scheme://host[:port] only")
            origins.add(f"{parts.scheme}://{parts.netloc.lower()}")
        return frozenset(origins)

    def networks(self, name: str) -> tuple[IpNetwork, ...]:
        networks = []
        for item in self.text(name, "").split(","):
            if item.strip():
                try:
                    networks.append(ipaddress.ip_network(item.strip(), strict=False))
                except ValueError:
                    raise SettingsError(name, f"{item.strip()!r} is not an IP address or CIDR") from None
        return tuple(networks)

    def rate_limit(self, name: str, default: str) -> RateLimit | None:
        try:
            return parse_rate_limit(self.text(name, default))
        except ValueError as error:
            raise SettingsError(name, str(error)) from None

    def secret(self, name: str) -> str | None:
        """A secret from NAME or from the file NAME_FILE names (the Kubernetes Secret-volume
        convention; one trailing newline is not part of it). Errors never quote the value."""
        file_name = f"{name}_FILE"
        value, path = self.optional(name), self.optional(file_name)
        if path is None:
            return value
        if value is not None:
            raise SettingsError(name, f"{name} and {file_name} are both set; set only one of them")
        try:
            # Read once, at start, before the event loop runs.
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
            raise SettingsError(file_name, f"the file {path!r} cannot be read ({reason})") from None
        text = text.removesuffix("\n").removesuffix("\r")
        if not text.strip():
            raise SettingsError(file_name, f"the file {path!r} is empty")
        return text

    def secrets(self, name: str) -> tuple[str, ...]:
        """Secrets separated by commas (or, in NAME_FILE, by lines too), in order, without repeats."""
        raw = self.secret(name)
        if raw is None:
            return ()
        items = raw.replace("\n", ",").split(",")
        found = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
        if not found:
            raise SettingsError(name, "lists no secret; give one or more comma-separated instance keys, or unset it")
        return found

    def patterns(self, name: str) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.text(name, "").split(",") if p.strip())
