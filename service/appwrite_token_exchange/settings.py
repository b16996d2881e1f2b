"""Service settings: one frozen object, read from the environment and validated at start."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import urlsplit

from appwrite_token_exchange.capacity import Capacity, MemoryLimit, container_memory_limit, parse_size, plan
from appwrite_token_exchange.env import EnvReader, IpNetwork
from appwrite_token_exchange.env import SettingsError as SettingsError
from appwrite_token_exchange.observability.tracing_config import TracingConfig, TracingSettingsError, tracing_config
from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.state.redis_url import parse_redis_url, with_redis_passwords

_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$")
# RFC 6265 cookie-name: an RFC 7230 token.
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

SETTING = "setting"  # the field metadata key of a declared setting


@dataclass(frozen=True)
class Declared:
    """One environment variable: its name, its default as written in the environment, how it is
    read (the reader checks its range or form), and what it is for. The README's configuration
    table and deploy/k8s/base/config.env are checked against these (tests/test_settings_declared.py)."""

    env: str
    default: str | None  # None: required (or, with `shown`, computed at start)
    doc: str
    read: Callable[[EnvReader, str, str], object] | None = None  # None: read by from_env itself
    shown: str | None = None  # how the README shows a default that is not a literal value (Markdown)
    secret: bool = False  # also read from NAME_FILE; never printed


def setting(env: str, default: str | None, doc: str, read: Callable[[EnvReader, str, str], Any] | None = None,
            *, shown: str | None = None, secret: bool = False) -> Any:
    """A Settings field declared once: its default value is `default` read as the environment would
    give it."""
    declared = Declared(env, default, doc, read, shown, secret)
    if read is None or default is None:
        return field(default=None, metadata={SETTING: declared}, repr=not secret)
    return field(default=read(EnvReader({}), env, default), metadata={SETTING: declared}, repr=not secret)


def integer(low: int, high: int) -> Callable[[EnvReader, str, str], int]:
    return lambda reader, name, default: reader.integer(name, default, low, high)


def number(low: float, high: float) -> Callable[[EnvReader, str, str], float]:
    return lambda reader, name, default: reader.number(name, default, low, high)


def choice(*choices: str) -> Callable[[EnvReader, str, str], str]:
    return lambda reader, name, default: reader.choice(name, default, choices)


def _text(reader: EnvReader, name: str, default: str) -> str:
    return reader.text(name, default)


def _rate(reader: EnvReader, name: str, default: str) -> RateLimit | None:
    return reader.rate_limit(name, default)


def auto_integer(low: int, high: int) -> Callable[[EnvReader, str, str], int | None]:
    """A whole number, or None for `auto` (derived at start from the memory limit)."""
    def read(reader: EnvReader, name: str, default: str) -> int | None:
        if (reader.optional(name) or default).lower() == "auto":
            return None
        return reader.integer(name, default, low, high)
    return read


def _memory_limit(reader: EnvReader, name: str, default: str) -> MemoryLimit:
    raw = reader.optional(name) or default
    if raw.lower() == "auto":
        return MemoryLimit(None, "auto")  # read from the cgroup by from_env, at start
    if raw.lower() == "none":
        return MemoryLimit(None, "none")
    size = parse_size(raw)
    if size is None or size < 64 * 1024 * 1024:
        raise SettingsError(name, f"must be auto, none, or a size of at least 64Mi (like 256Mi), got {raw!r}")
    return MemoryLimit(size, name)


@dataclass(frozen=True)
class Settings:
    appwrite_endpoint: str = setting("APPWRITE_ENDPOINT", None, "e.g. `https://cloud.appwrite.io/v1`")
    project_id: str = setting("APPWRITE_PROJECT_ID", None, "the project id")
    session_cookie_name: str = setting(
        "SESSION_COOKIE_NAME", None,
        "the httpOnly cookie holding the session (what Appwrite takes as `X-Appwrite-Session`)",
        shown="`a_session_<PROJECT_ID>`")
    token_ttl_seconds: int = setting("TOKEN_TTL_SECONDS", "30", "JWT lifetime asked of Appwrite", integer(1, 3600))
    allowed_origins: frozenset[str] = setting(
        "ALLOWED_ORIGINS", "", "comma-separated exact origins allowed to call cross-origin",
        lambda reader, name, default: reader.origins(name))
    host: str = setting("HOST", "0.0.0.0", "where to listen", _text)  # noqa: S104 - a container listens on all
    port: int = setting("PORT", "8080", "where to listen", integer(1, 65535))
    upstream_timeout_seconds: float = setting(
        "UPSTREAM_TIMEOUT_SECONDS", "3", "total timeout of one Appwrite call", number(0.05, 60.0))
    trusted_proxies: tuple[IpNetwork, ...] = setting(
        "TRUSTED_PROXIES", "", "CIDRs whose `X-Forwarded-For` / `X-Forwarded-Proto` is believed",
        lambda reader, name, default: reader.networks(name))
    # A caller's `traceparent` would pick the trace id and, through a parent-based sampler, whether
    # the trace is kept: only these callers' is continued (observability/tracing.py, README "Tracing").
    trace_trust_incoming: Literal["none", "proxies", "all"] = setting(
        "TRACE_TRUST_INCOMING", "none",
        "whose incoming `traceparent` and `tracestate` the service continues: `none` (a trace of its own, "
        "linked to the caller's), `proxies` (a peer in `TRUSTED_PROXIES`) or `all`",
        choice("none", "proxies", "all"))
    # Instance keys a minted token may be signed with (several while one is rotated); () = unchecked.
    appwrite_jwt_secrets: tuple[str, ...] = setting(
        "APPWRITE_JWT_SECRET", "", "the instance key (`_APP_OPENSSL_KEY_V1`), or several, comma-separated",
        lambda reader, name, default: reader.secrets(name), secret=True)
    log_level: str = setting("LOG_LEVEL", "info", "log level", choice("debug", "info", "warning", "error"))
    log_format: Literal["json", "console"] = setting("LOG_FORMAT", "json", "log format", choice("json", "console"))
    drain_timeout_seconds: float = setting(
        "DRAIN_TIMEOUT_SECONDS", "20", "on SIGTERM, how long in-flight requests may finish", number(0.0, 600.0))
    rate_limit_ip: RateLimit | None = setting("RATE_LIMIT_IP", "120/minute", "per client IP", _rate)
    rate_limit_session: RateLimit | None = setting("RATE_LIMIT_SESSION", "60/minute", "per session", _rate)
    rate_limit_user: RateLimit | None = setting("RATE_LIMIT_USER", "100/minute", "per user", _rate)
    invalid_session_cache_seconds: int = setting(
        "INVALID_SESSION_CACHE_SECONDS", "30", "how long a refused session is answered 401 without asking again",
        integer(0, 3600))
    redis_url: str | None = setting(
        "REDIS_URL", "", "share limits and caches across replicas", secret=True)
    state_hash_key: bytes | None = setting(
        "STATE_HASH_KEY", None, "HMAC key for every state key and log fingerprint", shown="random per process",
        secret=True)
    upstream_max_concurrency: int = setting(
        "UPSTREAM_MAX_CONCURRENCY", "64", "concurrent Appwrite calls per process", integer(1, 10_000))
    circuit_failure_threshold: int = setting(
        "CIRCUIT_FAILURE_THRESHOLD", "5", "consecutive Appwrite failures that open the circuit", integer(1, 1000))
    circuit_cooldown_seconds: float = setting(
        "CIRCUIT_COOLDOWN_SECONDS", "10", "how long an open circuit answers 503", number(0.1, 3600.0))
    relay_channels_allow: tuple[str, ...] = setting(
        "RELAY_CHANNELS_ALLOW", "", "channel patterns the relay lets a page subscribe to",
        lambda reader, name, default: reader.patterns(name), shown="(all)")
    relay_revalidate_seconds: float = setting(
        "RELAY_REVALIDATE_SECONDS", "300", "how often the relay re-checks a socket's session", number(1.0, 86_400.0))
    # The memory the process may use; what the relay holds is sized to it (capacity.py).
    container_memory_limit: MemoryLimit = setting(
        "CONTAINER_MEMORY_LIMIT", "auto", "the memory limit the relay's caps are sized to: `auto` (the cgroup's), "
        "`none`, or a size like `256Mi`", _memory_limit)
    relay_max_sockets: int = setting(
        "RELAY_MAX_SOCKETS", "auto", "relayed sockets per process", auto_integer(1, 1_000_000),
        shown="`auto`: sized to the memory limit (10000 without one)")
    relay_max_bytes_in_flight: int = setting(
        "RELAY_MAX_BYTES_IN_FLIGHT", "auto", "event bytes all relayed sockets together may hold at once",
        auto_integer(64_000, 64 * 1024 * 1024 * 1024), shown="`auto`: 10% of the memory limit (256 MiB without one)")
    # Per-caller shares of the relay's sockets, so one caller cannot take every slot.
    relay_max_sockets_per_user: int = setting(
        "RELAY_MAX_SOCKETS_PER_USER", "100", "relayed sockets one user may hold", integer(1, 1_000_000))
    relay_max_sockets_per_session: int = setting(
        "RELAY_MAX_SOCKETS_PER_SESSION", "50", "relayed sockets one session may hold", integer(1, 1_000_000))
    relay_max_sockets_per_ip: int = setting(
        "RELAY_MAX_SOCKETS_PER_IP", "200", "relayed sockets one client IP may hold", integer(1, 1_000_000))
    # What one page may ask of one socket: each subscription and channel is state the relay (and
    # Appwrite) keeps and scans for every event.
    relay_max_subscriptions: int = setting(
        "RELAY_MAX_SUBSCRIPTIONS", "100", "subscriptions one relayed socket may hold", integer(1, 100_000))
    relay_max_channels: int = setting(
        "RELAY_MAX_CHANNELS", "100", "distinct channels one relayed socket may listen on", integer(1, 100_000))
    # Upstream sockets the relay opens for a page's new channels (servers that read channels only
    # from the URL): Appwrite allows 128 connects a minute per client IP, for everyone behind it.
    relay_reconnects_per_socket: RateLimit | None = setting(
        "RELAY_RECONNECTS_PER_SOCKET", "6/minute", "upstream reopens one translated socket may cause", _rate)
    relay_reconnects_per_ip: RateLimit | None = setting(
        "RELAY_RECONNECTS_PER_IP", "30/minute", "upstream reopens one client IP's translated sockets may cause",
        _rate)
    # Whether the relay must put a page's channels into the upstream URL itself (servers 1.8.x and
    # 1.9.0 refuse a socket without them); `auto` asks Appwrite its version.
    relay_channels_in_url: Literal["auto", "yes", "no"] = setting(
        "APPWRITE_REALTIME_CHANNELS_IN_URL", "auto", "whether the relay puts a page's channels into the upstream URL",
        choice("auto", "yes", "no"))
    # Largest event the relay passes from Appwrite to a page. Appwrite caps only what clients send;
    # an event carries a whole document, which can hold megabytes of text. 16 MiB fits those while
    # bounding what one socket can make the relay hold in memory at once (one message at a time).
    relay_max_event_bytes: int = setting(
        "RELAY_MAX_EVENT_BYTES", "16777216", "largest event (bytes) the relay passes from Appwrite to a page",
        integer(64_000, 1024 * 1024 * 1024))
    # Which fields of each event reach the page (relay/event_rules.py): read at start, where a bad
    # file stops the service like any bad setting, then re-read whenever it changes.
    relay_event_rules_file: str = setting(
        "RELAY_EVENT_RULES_FILE", "", "a JSON file of rules that remove fields from Realtime events, keep only "
        "some, or withhold the event, by channel and event name", _text)
    # What a request may cost before it is authenticated: time to send its headers and body,
    # and the bytes of all its header lines together.
    request_read_timeout_seconds: float = setting(
        "REQUEST_READ_TIMEOUT_SECONDS", "10", "time a client has to send a request's headers and body",
        number(0.1, 600.0))
    max_request_header_bytes: int = setting(
        "MAX_REQUEST_HEADER_BYTES", "65536", "all header lines of one request together",
        integer(8 * 1024, 1024 * 1024))
    # What the crowd at the edge may hold (edge/connection_limits.py): the global caps are sized to
    # the memory limit, the per-client shares keep one client from taking them.
    max_connections: int = setting(
        "MAX_CONNECTIONS", "auto", "connections open at once, relayed sockets included",
        auto_integer(16, 10_000_000),
        shown="`auto`: the relay's sockets and 3% of the memory limit at 8 KiB each (20000 without one)")
    max_request_bytes_in_flight: int = setting(
        "MAX_REQUEST_BYTES_IN_FLIGHT", "auto",
        "header and body bytes of the requests in flight together, at 4 KiB more per request",
        auto_integer(256 * 1024, 64 * 1024 * 1024 * 1024),
        shown="`auto`: 3% of the memory limit (64 MiB without one)")
    max_connections_per_ip: int = setting(
        "MAX_CONNECTIONS_PER_IP", "256", "connections one client IP may hold (not a trusted proxy)",
        integer(1, 10_000_000))
    max_requests_in_flight_per_ip: int = setting(
        "MAX_REQUESTS_IN_FLIGHT_PER_IP", "32",
        "requests one client IP may have in flight, from their first byte to their answer (not a trusted proxy)",
        integer(1, 10_000_000))
    # IPv6 clients are limited per network of this prefix length (one host usually owns a /64).
    ipv6_prefix_length: int = setting(
        "IPV6_PREFIX_LENGTH", "64", "IPv6 clients share the per-IP limits per network of this prefix length",
        integer(1, 128))
    # Entries the in-memory state keeps at most (limit windows and caches together).
    memory_state_max_entries: int = setting(
        "MEMORY_STATE_MAX_ENTRIES", "100000", "entries the in-memory state keeps at most",
        integer(100, 100_000_000))
    # Sign-out at once (revocation/): Appwrite's webhook, and the app's own kick. Unset: no route.
    webhook_signature_keys: tuple[str, ...] = setting(
        "APPWRITE_WEBHOOK_SIGNATURE_KEY", "", "the signature key of the Appwrite webhook that reports sign-outs "
        "(several, comma-separated, while one is rotated); unset: no webhook route",
        lambda reader, name, default: reader.secrets(name), secret=True)
    webhook_url: str = setting(
        "APPWRITE_WEBHOOK_URL", "", "that webhook's URL exactly as set in Appwrite (Appwrite signs it with the body)",
        _text)
    revocation_secrets: tuple[str, ...] = setting(
        "REVOCATION_SECRET", "", "bearer secret of the internal sign-out routes (several, comma-separated, while one "
        "is rotated); unset: no internal route",
        lambda reader, name, default: reader.secrets(name), secret=True)
    # OpenTelemetry tracing from the standard OTEL_* variables; None = off (README, "Tracing").
    tracing: TracingConfig | None = None
    # RELAY_MAX_SOCKETS and RELAY_MAX_BYTES_IN_FLIGHT as set or derived, and why.
    capacity: Capacity | None = None

    def __post_init__(self) -> None:
        if self.capacity is None:  # the caps left to `auto`, derived once
            capacity = plan(self.container_memory_limit, self.relay_max_sockets, self.relay_max_bytes_in_flight,
                            tls=urlsplit(self.appwrite_endpoint).scheme == "https",
                            max_connections=self.max_connections, max_request_bytes=self.max_request_bytes_in_flight)
            object.__setattr__(self, "capacity", capacity)
            object.__setattr__(self, "relay_max_sockets", capacity.max_sockets)
            object.__setattr__(self, "relay_max_bytes_in_flight", capacity.max_bytes_in_flight)
            object.__setattr__(self, "max_connections", capacity.edge.max_connections)
            object.__setattr__(self, "max_request_bytes_in_flight", capacity.edge.max_request_bytes)

    @property
    def jwt_url(self) -> str:
        return f"{self.appwrite_endpoint}/account/jwts"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from environment variables; raise SettingsError on the first bad one."""
        reader = EnvReader(env)
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
            redis_url = with_redis_passwords(redis_url, reader)
        hash_key = reader.secret("STATE_HASH_KEY")
        if redis_url is not None and hash_key is None:
            raise SettingsError("STATE_HASH_KEY", "is required with REDIS_URL: replicas must share it")
        if hash_key is not None and len(hash_key) < 16:
            raise SettingsError("STATE_HASH_KEY", "must be at least 16 characters")
        try:
            tracing = tracing_config(env)
        except TracingSettingsError as error:
            raise SettingsError(error.variable, error.problem) from None
        declared = {
            item.name: item.metadata[SETTING].read(reader, item.metadata[SETTING].env, item.metadata[SETTING].default)
            for item in fields(cls)
            if SETTING in item.metadata and item.metadata[SETTING].read is not None
        }
        if declared["container_memory_limit"].source == "auto":
            declared["container_memory_limit"] = container_memory_limit()
        settings = cls(
            **declared,
            appwrite_endpoint=endpoint,
            project_id=project_id,
            session_cookie_name=cookie_name,
            redis_url=redis_url,
            state_hash_key=hash_key.encode() if hash_key is not None else None,
            tracing=tracing,
        )
        _check_revocation(settings)
        if settings.relay_max_event_bytes > settings.relay_max_bytes_in_flight:
            raise SettingsError("RELAY_MAX_EVENT_BYTES",
                                f"must not exceed RELAY_MAX_BYTES_IN_FLIGHT ({settings.relay_max_bytes_in_flight})")
        return settings


def _check_revocation(settings: Settings) -> None:
    if settings.webhook_signature_keys:
        url = urlsplit(settings.webhook_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise SettingsError("APPWRITE_WEBHOOK_URL", "is required with APPWRITE_WEBHOOK_SIGNATURE_KEY: the "
                                "webhook's URL exactly as set in Appwrite (it signs the URL with the body)")
    elif settings.webhook_url:
        raise SettingsError("APPWRITE_WEBHOOK_SIGNATURE_KEY", "is required with APPWRITE_WEBHOOK_URL: the webhook's "
                            "signature key from Appwrite")
    if any(len(secret) < 16 for secret in settings.revocation_secrets):
        raise SettingsError("REVOCATION_SECRET", "must be at least 16 characters")


# Read into REDIS_URL at start (redis_url.with_redis_passwords), so they have no field of their own.
REDIS_PASSWORDS = (
    Declared("REDIS_PASSWORD", "", "the Redis password, kept out of REDIS_URL", secret=True),
    Declared("REDIS_SENTINEL_PASSWORD", "", "the Sentinels' own password", secret=True),
)


def declared_settings() -> list[Declared]:
    """Every environment variable the settings read (OTEL_* aside: OpenTelemetry's own), in order."""
    return [*(item.metadata[SETTING] for item in fields(Settings) if SETTING in item.metadata), *REDIS_PASSWORDS]


