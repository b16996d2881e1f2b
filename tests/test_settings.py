"""Configuration is validated at start, and every refusal names its variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.settings import Settings, SettingsError

BASE = {"APPWRITE_ENDPOINT": "https://cloud.appwrite.io/v1", "APPWRITE_PROJECT_ID": "p1"}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.session_cookie_name == "a_session_p1"
    assert settings.token_ttl_seconds == 30
    assert settings.port == 8080 and settings.host == "0.0.0.0"
    assert settings.upstream_timeout_seconds == 3.0
    assert settings.allowed_origins == frozenset()
    assert settings.trusted_proxies == ()
    assert settings.appwrite_jwt_secrets == ()
    assert settings.log_format == "json"
    assert settings.drain_timeout_seconds == 20.0
    assert settings.jwt_url == "https://cloud.appwrite.io/v1/account/jwts"
    # Sized for a busy user's dozens of tabs: one relayed socket, or one token per socket open, each.
    assert (settings.relay_max_sockets_per_user, settings.relay_max_sockets_per_session) == (100, 50)
    assert settings.relay_max_sockets_per_ip == 200
    assert (settings.rate_limit_ip, settings.rate_limit_session, settings.rate_limit_user) == (
        RateLimit(120, 60), RateLimit(60, 60), RateLimit(100, 60))
    assert settings.request_read_timeout_seconds == 10.0
    assert settings.max_request_header_bytes == 64 * 1024
    assert settings.ipv6_prefix_length == 64
    assert settings.memory_state_max_entries == 100_000


def test_redis_needs_a_shared_hash_key() -> None:
    with pytest.raises(SettingsError, match="replicas must share it") as raised:
        Settings.from_env({**BASE, "REDIS_URL": "redis://redis:6379"})
    assert raised.value.variable == "STATE_HASH_KEY"


def test_limits_and_shared_state_parse() -> None:
    settings = Settings.from_env(
        {**BASE, "RATE_LIMIT_IP": "off", "RATE_LIMIT_SESSION": "5/second", "REDIS_URL": "redis://r:6379/1",
         "STATE_HASH_KEY": "k" * 16, "RELAY_CHANNELS_ALLOW": "account, databases.*"}
    )
    assert settings.rate_limit_ip is None
    assert (settings.rate_limit_session.limit, settings.rate_limit_session.window_seconds) == (5, 1)
    assert settings.state_hash_key == b"k" * 16
    assert settings.relay_channels_allow == ("account", "databases.*")


def test_secrets_stay_out_of_repr() -> None:
    settings = Settings.from_env({**BASE, "APPWRITE_JWT_SECRET": "s3cr3t-value", "REDIS_URL": "redis://:pw@h/0",
                                  "STATE_HASH_KEY": "k" * 32})
    assert "s3cr3t-value" not in repr(settings)
    assert "pw@" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("APPWRITE_ENDPOINT", ""),
        ("APPWRITE_ENDPOINT", "ftp://x"),
        ("APPWRITE_ENDPOINT", "https://user:pw@x/v1"),
        ("APPWRITE_PROJECT_ID", ""),
        ("APPWRITE_PROJECT_ID", "bad id!"),
        ("SESSION_COOKIE_NAME", "a session"),
        ("TOKEN_TTL_SECONDS", "0"),
        ("TOKEN_TTL_SECONDS", "3601"),
        ("TOKEN_TTL_SECONDS", "ten"),
        ("ALLOWED_ORIGINS", "*"),
        ("ALLOWED_ORIGINS", "https://app.example.com/path"),
        ("ALLOWED_ORIGINS", "app.example.com"),
        ("PORT", "70000"),
        ("UPSTREAM_TIMEOUT_SECONDS", "-1"),
        ("TRUSTED_PROXIES", "10.0.0.0/33"),
        ("LOG_LEVEL", "loud"),
        ("LOG_FORMAT", "xml"),
        ("DRAIN_TIMEOUT_SECONDS", "forever"),
        ("RATE_LIMIT_IP", "60"),
        ("RATE_LIMIT_SESSION", "10/day"),
        ("RATE_LIMIT_USER", "0/minute"),
        ("INVALID_SESSION_CACHE_SECONDS", "-5"),
        ("REDIS_URL", "http://redis:6379"),
        ("STATE_HASH_KEY", "short"),
        ("UPSTREAM_MAX_CONCURRENCY", "0"),
        ("CIRCUIT_FAILURE_THRESHOLD", "0"),
        ("CIRCUIT_COOLDOWN_SECONDS", "0"),
        ("RELAY_REVALIDATE_SECONDS", "0.1"),
        ("RELAY_MAX_SOCKETS", "0"),
        ("RELAY_MAX_SOCKETS_PER_USER", "0"),
        ("RELAY_MAX_SOCKETS_PER_SESSION", "many"),
        ("RELAY_MAX_SOCKETS_PER_IP", "-1"),
        ("REQUEST_READ_TIMEOUT_SECONDS", "0"),
        ("MAX_REQUEST_HEADER_BYTES", "1024"),
        ("IPV6_PREFIX_LENGTH", "129"),
        ("MEMORY_STATE_MAX_ENTRIES", "10"),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**BASE, variable: value})
    assert raised.value.variable == variable
    assert str(raised.value).startswith(variable)


def test_origins_and_proxies_parse() -> None:
    settings = Settings.from_env(
        {**BASE, "ALLOWED_ORIGINS": "https://App.Example.com, http://localhost:3000/", "TRUSTED_PROXIES": "10.0.0.0/8,::1"}
    )
    assert settings.allowed_origins == {"https://app.example.com", "http://localhost:3000"}
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "::1/128"]


@pytest.mark.subprocess
def test_serve_refuses_to_start_and_names_the_variable() -> None:
    env = {**os.environ, **BASE, "TOKEN_TTL_SECONDS": "9999"}
    result = subprocess.run(
        [sys.executable, "-m", "appwrite_token_exchange", "serve"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "TOKEN_TTL_SECONDS" in result.stderr
    assert "Traceback" not in result.stderr
