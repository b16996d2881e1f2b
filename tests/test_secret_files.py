"""Secrets from files (NAME_FILE, the Kubernetes Secret-volume convention): read, checked, rotated."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.settings import Settings, SettingsError
from appwrite_token_exchange.state.redis_url import parse_redis_url

from tests.support.helpers import assert_problem
from tests.support.redis_server import RedisServer, redis_server
from tests.support.service import exchange, service_settings

BASE = {
    "APPWRITE_ENDPOINT": "https://appwrite.example.com/v1",
    "APPWRITE_PROJECT_ID": "testproject",
}
OLD_KEY = "old-instance-key-0123456789abcdef"
NEW_KEY = "new-instance-key-fedcba9876543210"


def secret_file(tmp_path: Path, text: str, name: str = "secret") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_secret_comes_from_its_file_without_the_trailing_newline(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "a-hash-key-of-32-characters-long\n")
    settings = Settings.from_env({**BASE, "STATE_HASH_KEY_FILE": path})
    assert settings.state_hash_key == b"a-hash-key-of-32-characters-long"


def test_both_forms_set_is_an_error_naming_both(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "a-hash-key-of-32-characters-long")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**BASE, "STATE_HASH_KEY": "another-key-of-enough-length", "STATE_HASH_KEY_FILE": path})
    assert raised.value.variable == "STATE_HASH_KEY"
    assert "STATE_HASH_KEY and STATE_HASH_KEY_FILE are both set" in str(raised.value)
    assert "another-key" not in str(raised.value)


@pytest.mark.parametrize(("variable", "field", "extra"), [
    ("REVOCATION_SECRET", "revocation_secrets", {}),
    ("APPWRITE_WEBHOOK_SIGNATURE_KEY", "webhook_signature_keys", {"APPWRITE_WEBHOOK_URL": "https://rt.example.com/hook"}),
])
def test_the_revocation_secrets_come_from_their_files(tmp_path: Path, variable: str, field: str,
                                                      extra: dict[str, str]) -> None:
    path = secret_file(tmp_path, "old-secret-0123456789\nnew-secret-0123456789\n")
    settings = Settings.from_env({**BASE, **extra, f"{variable}_FILE": path})
    assert getattr(settings, field) == ("old-secret-0123456789", "new-secret-0123456789")
    assert "secret-0123456789" not in repr(settings)


@pytest.mark.parametrize("variable", ["STATE_HASH_KEY", "APPWRITE_JWT_SECRET", "REDIS_PASSWORD", "REDIS_URL",
                                      "REVOCATION_SECRET", "APPWRITE_WEBHOOK_SIGNATURE_KEY"])
def test_an_unreadable_file_names_the_variable(tmp_path: Path, variable: str) -> None:
    env = {**BASE, "REDIS_URL": "redis://127.0.0.1:6379/0", "STATE_HASH_KEY": "k" * 32}
    env.pop(variable, None)
    env[f"{variable}_FILE"] = str(tmp_path / "missing")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert raised.value.variable == f"{variable}_FILE"
    assert "cannot be read (No such file or directory)" in str(raised.value)


def test_a_file_that_is_not_text_is_refused_without_quoting_it(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"\xff\xfesecret-bytes")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**BASE, "STATE_HASH_KEY_FILE": str(path)})
    assert raised.value.variable == "STATE_HASH_KEY_FILE"
    assert "secret-bytes" not in str(raised.value)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^STATE_HASH_KEY_FILE: the file .* is empty$"):
        Settings.from_env({**BASE, "STATE_HASH_KEY_FILE": secret_file(tmp_path, "\n")})


def test_a_short_key_from_a_file_is_refused_without_quoting_it(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "short-key\n")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**BASE, "STATE_HASH_KEY_FILE": path})
    assert str(raised.value) == "STATE_HASH_KEY: must be at least 16 characters"


@pytest.mark.parametrize("text", [f"{OLD_KEY}\n{NEW_KEY}\n", f"{OLD_KEY},{NEW_KEY}", f"{OLD_KEY}\r\n{NEW_KEY}\r\n"])
def test_the_jwt_secret_file_lists_keys_by_line_or_comma(tmp_path: Path, text: str) -> None:
    path = secret_file(tmp_path, text)
    settings = Settings.from_env({**BASE, "APPWRITE_JWT_SECRET_FILE": path})
    assert settings.appwrite_jwt_secrets == (OLD_KEY, NEW_KEY)
    assert OLD_KEY not in repr(settings)


def test_the_redis_url_comes_from_its_file_as_the_ha_overlay_gives_it(tmp_path: Path) -> None:
    url = secret_file(tmp_path, "redis+sentinel://:s3cret@sentinel-0:26379,sentinel-1:26379/mymaster\n", "REDIS_URL")
    key = secret_file(tmp_path, "k" * 32, "STATE_HASH_KEY")
    settings = Settings.from_env({**BASE, "REDIS_URL_FILE": url, "STATE_HASH_KEY_FILE": key})
    assert settings.redis_url is not None
    config = parse_redis_url(settings.redis_url)
    assert (config.kind, config.master_name, config.password) == ("redis-sentinel", "mymaster", "s3cret")
    assert "s3cret" not in repr(settings)
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**BASE, "REDIS_URL_FILE": secret_file(tmp_path, "http://redis:6379\n", "bad")})
    assert raised.value.variable == "REDIS_URL"


def test_the_redis_password_file_goes_into_the_url_config(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "p@ss/word:1\n")
    settings = Settings.from_env({
        **BASE, "STATE_HASH_KEY": "k" * 32, "REDIS_URL": "redis://svc@redis.internal:6380/2", "REDIS_PASSWORD_FILE": path,
    })
    assert settings.redis_url is not None
    config = parse_redis_url(settings.redis_url)
    assert (config.username, config.password, config.hosts, config.db) == ("svc", "p@ss/word:1", (("redis.internal", 6380),), 2)
    assert "p@ss" not in repr(settings)


def test_the_sentinel_password_file_goes_into_the_url_config(tmp_path: Path) -> None:
    settings = Settings.from_env({
        **BASE, "STATE_HASH_KEY": "k" * 32, "REDIS_URL": "redis+sentinel://s1,s2:26380/mymaster/1",
        "REDIS_PASSWORD_FILE": secret_file(tmp_path, "master-pw\n", "a"),
        "REDIS_SENTINEL_PASSWORD_FILE": secret_file(tmp_path, "sentinel&pw\n", "b"),
    })
    assert settings.redis_url is not None
    config = parse_redis_url(settings.redis_url)
    assert (config.password, config.sentinel_password, config.master_name, config.db) == (
        "master-pw", "sentinel&pw", "mymaster", 1
    )
    assert config.hosts == (("s1", 26379), ("s2", 26380))


@pytest.mark.parametrize(
    ("url", "variable"),
    [
        ("redis://:inline@redis.internal/0", "REDIS_PASSWORD"),
        ("unix:///run/redis.sock?password=inline", "REDIS_PASSWORD"),
    ],
)
def test_a_password_in_the_url_and_in_a_file_is_an_error_naming_both(tmp_path: Path, url: str, variable: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**BASE, "STATE_HASH_KEY": "k" * 32, "REDIS_URL": url,
                           f"{variable}_FILE": secret_file(tmp_path, "from-file")})
    assert raised.value.variable == variable
    assert "REDIS_URL already holds a password" in str(raised.value)
    assert "inline" not in str(raised.value) and "from-file" not in str(raised.value)


def test_a_sentinel_password_needs_a_sentinel_url(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^REDIS_SENTINEL_PASSWORD: needs a redis\+sentinel://"):
        Settings.from_env({**BASE, "STATE_HASH_KEY": "k" * 32, "REDIS_URL": "redis://redis.internal/0",
                           "REDIS_SENTINEL_PASSWORD_FILE": secret_file(tmp_path, "pw")})


async def test_a_rotation_accepts_tokens_signed_by_either_listed_key(
    tmp_path: Path, emulator_factory, aiohttp_client
) -> None:
    """Appwrite before and after its instance key changed: while the file lists both, both pass;
    a key the file does not list is the deployment's mistake (503 jwt_secret_mismatch)."""
    path = await asyncio.to_thread(secret_file, tmp_path, f"{OLD_KEY}\n{NEW_KEY}\n")
    for key, status in ((OLD_KEY, 200), (NEW_KEY, 200), ("unlisted-key-0123456789abcdef", 503)):
        appwrite = await emulator_factory(jwt_secret=key)
        # The file is read where the settings are built: off the event loop, as at a real start.
        settings = await asyncio.to_thread(
            service_settings, appwrite, APPWRITE_JWT_SECRET="", APPWRITE_JWT_SECRET_FILE=path
        )
        assert settings.appwrite_jwt_secrets == (OLD_KEY, NEW_KEY)
        client = await aiohttp_client(create_app(settings))
        response = await exchange(client, appwrite.signed_in_user()[2])
        if status == 200:
            assert response.status == 200, await response.text()
            assert (await response.json())["jwt"].count(".") == 2
        else:
            body = await assert_problem(response, 503, "appwrite_misconfigured")
            assert body["cause"] == "jwt_secret_mismatch"


@pytest.fixture
def protected_redis() -> Iterator[RedisServer]:
    with redis_server("--requirepass", "file-only-password", password="file-only-password") as server:
        yield server


async def test_a_redis_password_from_a_file_reaches_a_real_redis(
    tmp_path: Path, protected_redis: RedisServer, emulator, aiohttp_client
) -> None:
    """The service starts against a redis-server that requires the password, given only as a file."""
    path = await asyncio.to_thread(secret_file, tmp_path, "file-only-password\n")
    settings = await asyncio.to_thread(
        service_settings, emulator, REDIS_URL=protected_redis.url, STATE_HASH_KEY="k" * 32, REDIS_PASSWORD_FILE=path
    )
    client = await aiohttp_client(create_app(settings))
    ready = await (await client.get("/readyz")).json()
    assert ready["checks"]["state"] == {"status": "ok", "backend": "redis"}
    response = await exchange(client, emulator.signed_in_user()[2])
    assert response.status == 200, await response.text()


async def test_without_the_password_file_that_redis_refuses_to_start(protected_redis: RedisServer, emulator) -> None:
    settings = await asyncio.to_thread(service_settings, emulator, REDIS_URL=protected_redis.url, STATE_HASH_KEY="k" * 32)
    with pytest.raises(SettingsError, match=r"^REDIS_URL: Redis refused the credentials"):
        async with contextlib.AsyncExitStack() as stack:
            runner = web.AppRunner(create_app(settings))
            stack.push_async_callback(runner.cleanup)
            await runner.setup()
