"""REDIS_URL errors never print a secret (issue 26, item 4).

`REDIS_URL='redis://:Pw12#SECRET@host'` (a password with an unencoded '#') ended `serve` in a raw
traceback quoting part of the password (`Port could not be cast to integer value as 'Pw12'`):
redis-py's own URL parser reads a single server's URL, and it read it differently from the
service's. `?socket_timeout=abc`, `?db=` and options redis-py passes on unread gave tracebacks too.
Every such URL now ends in one line naming REDIS_URL and what is wrong, at start and in
`token-exchange check-config`, with no part of the URL in it: a password with a reserved character
spills into the port, the path or the options. Each case below carries its secrets ("hunter2",
"Pw12", "SECRET", "Zq9") where a mistyped password puts them; a seeded fuzz run over URL shapes
does the same with generated secrets.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from appwrite_token_exchange.check_config import _describe_redis  # what check-config prints of a good URL
from appwrite_token_exchange.settings import Settings, SettingsError
from appwrite_token_exchange.state.redis_url import parse_redis_url

SECRETS = ("hunter2", "Pw12", "SECRET", "Zq9")
HASH_KEY = "shared-deployment-key-0123456789"
BASE_ENV = {"APPWRITE_ENDPOINT": "http://127.0.0.1:9/v1", "APPWRITE_PROJECT_ID": "p", "STATE_HASH_KEY": HASH_KEY,
            "CONTAINER_MEMORY_LIMIT": "none"}
ENCODE = "percent-encode a '#', '/', '?', '@' or '%' in the user name or password (e.g. '#' as %23)"

CASES = {
    "a '#' in the password": ("redis://:Pw12#SECRET@redis:6379/0", "holds a '#', where the Redis client's URL ends"),
    "socket_timeout=abc": ("redis://:hunter2@redis?socket_timeout=abcSECRET", "the option socket_timeout must be a number"),
    "db=": ("redis://:hunter2@redis?db=", "the database must be a number, like ?db=0"),
    "db=text": ("redis://:hunter2@redis?db=SECRET", "the database must be a number, like ?db=0"),
    "db in the path": ("redis://:hunter2@redis/SECRET", "the database must be a number, like /0"),
    "db twice": ("redis://:hunter2@redis?db=1&db=SECRET", "gives the option db more than once"),
    "db as path and query": ("redis://:hunter2@redis/1?db=2", "gives the database twice: as /N and as ?db=N"),
    "a whole number option": ("redis://:hunter2@redis?health_check_interval=SECRET",
                              "the option health_check_interval must be a whole number"),
    "protocol": ("redis://:hunter2@redis?protocol=9", "the option protocol must be 2 or 3"),
    "ssl_cert_reqs": ("rediss://:hunter2@redis?ssl_cert_reqs=SECRET",
                      "the option ssl_cert_reqs must be one of none, optional, required"),
    "a TLS option without TLS": ("redis://:hunter2@redis?ssl_cert_reqs=none",
                                 "ssl_cert_reqs needs a TLS scheme: rediss://, rediss+sentinel:// or rediss+cluster://"),
    "an option redis-py passed on unread": ("redis://:hunter2@redis?connection_class=SECRET",
                                            "has an option this form does not take (it takes redis-py's URL options)"),
    "an option named by a secret": ("redis://:hunter2@redis?SECRET=1", "has an option this form does not take"),
    "a '?' in the password": ("redis://:Pw12?SECRET@redis", "has an option this form does not take"),
    "a '/' in the password": ("redis://:Pw12/SECRET@redis", "has an '@' after the hosts"),
    "a '/' in a Sentinel's user name": ("redis+sentinel://Zq9/SECRET:hunter2@s1/mymaster", "has an '@' after the hosts"),
    "a port that is a password": ("redis://Zq9:SECRET@redis:Pw12", "has a port that is not a number from 1 to 65535"),
    "an open bracket": ("redis://:hunter2@[::1", f"cannot be read by the Redis client: {ENCODE}"),
    "a socket without a path": ("unix://?password=hunter2", "needs the socket's path: unix:///path/to/redis.sock"),
    "a socket's bad db": ("unix:///run/redis.sock?db=SECRET&password=hunter2", "the database must be a number"),
    "a '#' in a socket's password": ("unix:///run/redis.sock?password=Pw12#SECRET", "holds a '#'"),
    "a Sentinel option named by a secret": (
        "redis+sentinel://:hunter2@s1/mymaster?SECRET=1",
        "has an option this form does not take (it takes sentinel_password, sentinel_username, ssl_ca_certs)"),
    "a Cluster's db": ("redis+cluster://:hunter2@n1?db=SECRET", "has an option this form does not take"),
}


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text)


@pytest.mark.parametrize("case", CASES)
def test_each_bad_url_is_named_without_its_secrets(case: str) -> None:
    url, problem = CASES[case]
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**BASE_ENV, "REDIS_URL": url})
    message = str(raised.value)
    assert raised.value.variable == "REDIS_URL"
    assert message.startswith(f"REDIS_URL: {problem}"), message
    assert "\n" not in message
    assert_no_secret(message)


def test_the_file_form_says_the_same(tmp_path: Path) -> None:
    """REDIS_URL_FILE (the `ha` overlay's form): the same message, naming REDIS_URL, not the file's text."""
    url, problem = CASES["a '#' in the password"]
    secret_file = tmp_path / "REDIS_URL"
    secret_file.write_text(url + "\n")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**BASE_ENV, "REDIS_URL_FILE": str(secret_file)})
    assert str(raised.value).startswith(f"REDIS_URL: {problem}")
    assert_no_secret(str(raised.value))


def test_good_urls_still_read() -> None:
    for url in ("redis://:hunter2@redis:6380/2?socket_timeout=0.5&client_name=te",
                "redis://:Pw12%23SECRET@redis", "rediss://redis?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required",
                "unix:///run/redis.sock?db=3&password=hunter2", "redis+sentinel://:Pw12#SECRET@s1/mymaster"):
        assert Settings.from_env({**BASE_ENV, "REDIS_URL": url}).redis_url == url
    assert Settings.from_env({**BASE_ENV, "REDIS_URL": "redis://:Pw12%23SECRET@redis"}).redis_url


@pytest.mark.subprocess
@pytest.mark.parametrize("case", ["a '#' in the password", "socket_timeout=abc", "db="])
async def test_serve_and_check_config_answer_in_one_line(case: str) -> None:
    url, problem = CASES[case]
    env = {**os.environ, **BASE_ENV, "REDIS_URL": url, "HOST": "127.0.0.1", "PORT": "9", "LOG_LEVEL": "info"}
    commands = (["serve"], ["check-config"], ["check-config", "--json"])
    runs = await asyncio.gather(*(
        asyncio.to_thread(subprocess.run, [sys.executable, "-m", "appwrite_token_exchange.cli", *command],
                          env=env, capture_output=True, text=True, timeout=60)
        for command in commands
    ))
    for command, done in zip(commands, runs, strict=True):
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr == f"token-exchange: configuration error: REDIS_URL: {problem}" + done.stderr.split(
            problem, 1)[1], done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert_no_secret(done.stderr + done.stdout)
        if "--json" in command:
            assert json.loads(done.stdout)  # the JSON report of the same error


# -- fuzzed: generated secrets in every place a mistyped password or option puts them ---------------

# A secret's pieces: letters no fixed message uses, so finding one in the output means it leaked.
_PIECE_FIRST, _PIECE_REST = "QXZJV", "QXZJV23456789"
_RESERVED = "#/?@:%&=,[]+; "
_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")
_HOSTS = ("redis", "redis:6380", "[::1]:6379", "10.0.0.1", "r1,r2:7000", "", "redis:", "[::1")
_PATHS = ("", "/", "/0", "/3", "/mymaster", "/mymaster/1", "/x/y", "/run/redis.sock")
_OPTIONS = ("db", "socket_timeout", "protocol", "ssl_ca_certs", "sentinel_password", "client_name", "password",
            "health_check_interval", "ssl_cert_reqs", "socket_keepalive")


def _piece(rng: random.Random) -> str:
    return rng.choice(_PIECE_FIRST) + "".join(rng.choice(_PIECE_REST) for _ in range(5))


def _secret(rng: random.Random, pieces: list[str]) -> str:
    """Pieces joined by reserved characters (or nothing), written encoded or not."""
    text = ""
    for index in range(rng.randint(1, 3)):
        pieces.append(_piece(rng))
        text += (rng.choice(_RESERVED) if index else "") + pieces[-1]
    return quote(text, safe="") if rng.random() < 0.3 else text


def _url(rng: random.Random, pieces: list[str]) -> str:
    userinfo = rng.choice(("", ":{pw}@", "{user}:{pw}@", "{pw}@", "{user}@")).format(
        pw=_secret(rng, pieces) if rng.random() < 0.9 else "", user=_secret(rng, pieces))
    query = []
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        name = _secret(rng, pieces) if rng.random() < 0.1 else rng.choice(_OPTIONS)
        value = rng.choice(("1", "", "abc", "/ca.pem", "none", "3", "0.5", _secret(rng, pieces)))
        query.append(f"{name}={value}" if rng.random() < 0.9 else name)
    # A '#' inside a secret is covered by the secrets themselves; a fragment of its own holds none.
    fragment = "#frag" if rng.random() < 0.05 else ""
    return (f"{rng.choice(_SCHEMES)}://{userinfo}{rng.choice(_HOSTS)}{rng.choice(_PATHS)}"
            f"{'?' + '&'.join(query) if query else ''}{fragment}")


def test_fuzzed_urls_never_show_a_secret() -> None:
    """3,000 seeded URLs: each is refused with a SettingsError (nothing else) that holds no piece of a
    secret, or read, and then what check-config prints of it holds none either."""
    rng = random.Random(26_4)
    refused = 0
    for _ in range(3000):
        pieces: list[str] = []
        url = _url(rng, pieces)
        try:
            settings = Settings.from_env({**BASE_ENV, "REDIS_URL": url})
        except SettingsError as error:
            refused += 1
            shown = str(error)
            assert error.variable == "REDIS_URL" and "\n" not in shown, (url, shown)
        else:
            assert settings.redis_url is not None
            shown = _describe_redis(parse_redis_url(settings.redis_url))
        for piece in pieces:
            assert piece not in shown, (url, shown)
    assert 300 < refused < 2900, refused  # both outcomes were exercised
