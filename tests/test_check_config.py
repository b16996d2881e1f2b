"""`token-exchange check-config` and `token-exchange --version`, run as real processes against the
emulator and real Redis servers on loopback ports: what a user sees (exit code, stdout, stderr)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from appwrite_token_exchange.emulator.keys import EMULATOR_CONFIG, RECORDER

from tests.support.processes import free_port
from tests.support.redis_cluster import redis_cluster
from tests.support.redis_sentinel import redis_sentinel
from tests.support.redis_server import redis_server
from tests.support.service import JWT_SECRET, PROJECT, Emulator

# Every test runs the command line as a child process.
pytestmark = pytest.mark.subprocess

# Read here, outside the event loop (metadata is files).
INSTALLED = metadata.version("appwrite-token-exchange")
HASH_KEY = "state-hash-key-never-printed-0123456789"
REDIS_PASSWORD = "redis-password-never-printed-42"
WRONG_KEY = "wrong-instance-key-never-printed-0123"
# Variables of the service (and of this command) that must not leak in from the test's environment.
_SERVICE_VARIABLES = (
    "APPWRITE_", "REDIS_", "STATE_HASH_KEY", "CHECK_SESSION", "OTEL_", "TOKEN_TTL", "HOST", "PORT", "LOG_",
    "RATE_LIMIT_", "ALLOWED_ORIGINS", "SESSION_COOKIE_NAME", "TRUSTED_PROXIES", "RELAY_", "UPSTREAM_", "CIRCUIT_",
    "DRAIN_", "INVALID_SESSION", "REQUEST_READ", "MAX_REQUEST", "IPV6_", "MEMORY_STATE",
)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def check(self, name: str) -> str:
        """The check's line: `<status> <name> <detail>`, its columns closed up."""
        lines = [" ".join(line.split()) for line in self.stdout.splitlines() if line.startswith("  ")]
        found = [line for line in lines if line.split(" ", 1)[1].startswith(f"{name} ")
                 and line.split(" ", 1)[0] in ("ok", "FAILED", "skipped")]
        assert len(found) == 1, f"no single check line for {name!r} in:\n{self.stdout}"
        return found[0]

    def fact(self, label: str) -> str:
        prefix = f"  {label} "
        found = [line[len(prefix):].strip() for line in self.stdout.splitlines() if line.startswith(prefix)]
        assert len(found) == 1, f"no line for {label!r} in:\n{self.stdout}"
        return found[0]


async def token_exchange(*args: str, env: dict[str, str], python: tuple[str, ...] = ()) -> Run:
    """`token-exchange ARGS` as a child process, with only `env` of the service's variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_VARIABLES)}
    loop = asyncio.get_running_loop()
    started = loop.time()
    process = await asyncio.create_subprocess_exec(
        sys.executable, *python, "-m", "appwrite_token_exchange", *args, env={**clean, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=45)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode(), loop.time() - started)


def base_env(emulator: Emulator, **env: str) -> dict[str, str]:
    return {"APPWRITE_ENDPOINT": emulator.endpoint, "APPWRITE_PROJECT_ID": PROJECT, "UPSTREAM_TIMEOUT_SECONDS": "2",
            **env}


async def check_config(*args: str, **env: str) -> Run:
    return await token_exchange("check-config", *args, env=env)


# --- everything in order -----------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "version", "relay"), [
    ("cloud", "2.2.0", "auto: Appwrite 2.2.0 reads subscribe frames, so sockets pass through unchanged"),
    ("1.9.5", "1.9.5", "auto: Appwrite 1.9.5 reads subscribe frames, so sockets pass through unchanged"),
    ("1.9.0", "1.9.0", "auto: Appwrite 1.9.0 takes channels only in the URL, so the relay puts them there"),
])
async def test_all_good_against_the_emulator(emulator_factory, mode: str, version: str, relay: str) -> None:
    emulator = await emulator_factory(mode=mode)
    run = await check_config(**base_env(emulator, HOST="127.0.0.1", PORT="9123", RATE_LIMIT_USER="off",
                                        ALLOWED_ORIGINS="https://app.example.com"))
    assert (run.code, run.stderr) == (0, "")
    assert run.stdout.startswith(f"token-exchange {INSTALLED} check-config\n")
    assert run.check("appwrite") == f"ok appwrite Appwrite {version} answers at {emulator.endpoint}"
    assert run.check("project") == f"ok project '{PROJECT}' is a project on this Appwrite"
    assert run.check("settings").startswith("ok settings")
    assert run.check("redis").startswith("skipped redis REDIS_URL is not set")
    assert run.check("token mint") == ("skipped token mint not checked: no session to mint a token with "
                                       "(set CHECK_SESSION or CHECK_SESSION_FILE)")
    assert run.check("jwt secret") == "skipped jwt secret not checked: no session to mint a token with"
    assert run.fact("listen") == "127.0.0.1:9123"
    assert run.fact("appwrite") == f"{emulator.endpoint}, project {PROJECT}, version {version}"
    assert run.fact("rate limits") == "ip 120/minute, session 60/minute, user off"
    assert run.fact("relay") == relay
    assert run.fact("state") == "memory (per process)"
    assert run.fact("tracing") == "off"
    assert run.stdout.endswith("\nresult: ok\n")


async def test_json_report(emulator: Emulator) -> None:
    run = await check_config("--json", **base_env(emulator))
    assert run.code == 0
    report = json.loads(run.stdout)
    assert (report["result"], report["exit_code"]) == ("ok", 0)
    assert report["version"] == INSTALLED
    assert {check["name"]: check["status"] for check in report["checks"]} == {
        "settings": "ok", "redis": "skipped", "appwrite": "ok", "project": "ok", "token mint": "skipped",
        "jwt secret": "skipped",
    }
    assert report["service"]["appwrite"].endswith(f"version {emulator.app[EMULATOR_CONFIG].version}")


# --- settings: the same refusal as serve -------------------------------------------------------


@pytest.fixture
def unreadable_file(tmp_path: Path) -> str:
    return str(tmp_path / "missing-secret")


@pytest.mark.parametrize("bad", [
    {"TOKEN_TTL_SECONDS": "sixty"},
    {"APPWRITE_JWT_SECRET_FILE": "UNREADABLE"},
    {"REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"},  # without STATE_HASH_KEY
    {"APPWRITE_PROJECT_ID": ""},
    {"RELAY_EVENT_RULES_FILE": "UNREADABLE"},  # serve reads it as it starts, check-config before it checks
])
async def test_a_bad_setting_gets_the_message_and_code_serve_gives(
    emulator: Emulator, unreadable_file: str, bad: dict[str, str]
) -> None:
    env = {k: unreadable_file if v == "UNREADABLE" else v for k, v in base_env(emulator, **bad).items()}
    env.update(HOST="127.0.0.1", PORT=str(free_port()))
    checked, served = await asyncio.gather(check_config(**env), token_exchange("serve", env=env))
    assert served.code == checked.code == 2
    assert served.stderr.startswith("token-exchange: configuration error: ")
    assert checked.stderr == served.stderr
    assert len(checked.stderr.splitlines()) == 1
    assert checked.stdout == ""
    assert REDIS_PASSWORD not in checked.output


async def test_a_bad_setting_in_json(emulator: Emulator) -> None:
    run = await check_config("--json", **base_env(emulator, TOKEN_TTL_SECONDS="0"))
    assert run.code == 2
    assert run.stderr == "token-exchange: configuration error: TOKEN_TTL_SECONDS: must be between 1 and 3600, got 0\n"
    report = json.loads(run.stdout)
    assert (report["result"], report["exit_code"]) == ("configuration_error", 2)
    assert report["checks"] == [{"name": "settings", "status": "failed",
                                 "detail": "TOKEN_TTL_SECONDS: must be between 1 and 3600, got 0"}]


async def test_the_event_rules_are_read_as_serve_reads_them(emulator: Emulator, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    await asyncio.to_thread(rules.write_text, '{"rules": [{"channels": ["account"], "remove": ["email"]}, '
                            '{"events": ["*"], "drop": true}]}')
    run = await check_config(**base_env(emulator, RELAY_EVENT_RULES_FILE=str(rules)))
    assert run.code == 0
    assert run.fact("event rules") == f"2 rule(s) from {rules}, re-read when it changes"
    await asyncio.to_thread(rules.write_text, '{"rules": [{"channels": ["account"], "drop": true, "remove": ["email"]}]}')
    env = {**base_env(emulator, RELAY_EVENT_RULES_FILE=str(rules)), "HOST": "127.0.0.1", "PORT": str(free_port())}
    checked, served = await asyncio.gather(check_config(**env), token_exchange("serve", env=env))
    assert served.code == checked.code == 2
    assert checked.stderr == served.stderr == (
        'token-exchange: configuration error: RELAY_EVENT_RULES_FILE: rule 0: a "drop" rule withholds the whole '
        'event; "allow" or "remove" beside it would never apply\n')
    unset = await check_config(**base_env(emulator))
    assert unset.fact("event rules") == "none (RELAY_EVENT_RULES_FILE is not set): events pass unchanged"


async def test_an_unreadable_session_file_is_a_configuration_error(emulator: Emulator, unreadable_file: str) -> None:
    run = await check_config(**base_env(emulator, CHECK_SESSION_FILE=unreadable_file))
    assert run.code == 2
    assert run.stderr == (f"token-exchange: configuration error: CHECK_SESSION_FILE: the file {unreadable_file!r} "
                          "cannot be read (No such file or directory)\n")


# --- Appwrite ----------------------------------------------------------------------------------


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers (until the client goes away)."""
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("where", ["closed", "silent"])
async def test_an_unreachable_appwrite_fails_within_the_timeout(silent_server: int, where: str) -> None:
    port = free_port() if where == "closed" else silent_server
    endpoint = f"http://127.0.0.1:{port}/v1"
    run = await check_config(APPWRITE_ENDPOINT=endpoint, APPWRITE_PROJECT_ID=PROJECT, UPSTREAM_TIMEOUT_SECONDS="0.5")
    assert run.code == 1
    assert run.check("appwrite") == (f"FAILED appwrite no version from {endpoint}/health/version within 0.5 s "
                                     "(UPSTREAM_TIMEOUT_SECONDS): unreachable, too slow, or not an Appwrite endpoint")
    for name in ("project", "token mint", "jwt secret"):
        assert run.check(name) == f"skipped {name} not checked: Appwrite did not answer"
    assert run.fact("relay") == ("auto: Appwrite's version is unknown, so the relay would put channels into the "
                                 "upstream URL")
    assert run.stdout.endswith("\nresult: FAILED (appwrite)\n")
    # A silent Appwrite costs the timeout, not forever (the rest is the interpreter starting).
    assert run.seconds < 15


async def test_a_wrong_project_is_reported(emulator: Emulator) -> None:
    _, _, cookie = emulator.signed_in_user()
    run = await check_config(**base_env(emulator, APPWRITE_PROJECT_ID="otherproject", CHECK_SESSION=cookie))
    assert run.code == 1
    assert run.check("appwrite") == f"ok appwrite Appwrite {emulator.app[EMULATOR_CONFIG].version} answers at {emulator.endpoint}"
    assert run.check("project") == (f"FAILED project APPWRITE_PROJECT_ID 'otherproject' is not a project at "
                                    f"APPWRITE_ENDPOINT {emulator.endpoint}: correct one of them.")
    assert run.check("token mint") == "skipped token mint not checked: the project is not usable"
    assert run.stdout.endswith("\nresult: FAILED (project)\n")


# --- the instance key, with a session to mint with ---------------------------------------------


@pytest.mark.parametrize(("keys", "code", "line"), [
    (JWT_SECRET, 0, "ok jwt secret the token's signature verifies with key 1 of 1 in APPWRITE_JWT_SECRET"),
    (f"{WRONG_KEY},{JWT_SECRET}", 0,
     "ok jwt secret the token's signature verifies with key 2 of 2 in APPWRITE_JWT_SECRET"),
    (WRONG_KEY, 1, "FAILED jwt secret Appwrite signs its tokens with a key APPWRITE_JWT_SECRET does not list: set it "
                   "to this Appwrite's instance key (_APP_OPENSSL_KEY_V1; several, comma-separated, during a "
                   "rotation), or unset it."),
    ("", 0, "skipped jwt secret APPWRITE_JWT_SECRET is not set: serve checks no signature"),
])
async def test_the_jwt_secret_against_a_minted_token(emulator: Emulator, keys: str, code: int, line: str) -> None:
    _, _, cookie = emulator.signed_in_user()
    env = base_env(emulator, CHECK_SESSION=cookie, TOKEN_TTL_SECONDS="120")
    if keys:
        env["APPWRITE_JWT_SECRET"] = keys
    run = await check_config(**env)
    assert run.code == code
    assert run.check("jwt secret") == line
    assert run.check("token mint").startswith("ok token mint Appwrite minted a token for the session")
    assert cookie not in run.output and WRONG_KEY not in run.output and JWT_SECRET not in run.output


@pytest.fixture
def session_file(tmp_path: Path) -> Path:
    return tmp_path / "check-session"


async def test_a_session_from_a_file_mints(emulator: Emulator, session_file: Path) -> None:
    _, _, cookie = emulator.signed_in_user()
    await asyncio.to_thread(session_file.write_text, cookie + "\n")
    run = await check_config(**base_env(emulator, CHECK_SESSION_FILE=str(session_file), APPWRITE_JWT_SECRET=JWT_SECRET))
    assert run.code == 0
    assert re.fullmatch(r"ok token mint Appwrite minted a token for the session, valid for (29|30) s "
                        r"\(TOKEN_TTL_SECONDS=30\)", run.check("token mint"))
    assert run.check("jwt secret").startswith("ok jwt secret")


async def test_a_session_appwrite_refuses_fails_the_mint(emulator: Emulator) -> None:
    _, session_id, cookie = emulator.signed_in_user()
    emulator.state.delete_session(session_id)
    run = await check_config(**base_env(emulator, CHECK_SESSION=cookie, APPWRITE_JWT_SECRET=JWT_SECRET))
    assert run.code == 1
    assert run.check("token mint") == ("FAILED token mint Appwrite minted no token: The session is missing, expired "
                                       "or was signed out. (session_invalid)")
    assert run.check("jwt secret") == "skipped jwt secret not checked: no token was minted"
    assert cookie not in run.output


async def test_a_value_that_is_no_session_is_not_sent(emulator: Emulator) -> None:
    run = await check_config(**base_env(emulator, CHECK_SESSION="not-a-session-value"))
    assert run.code == 1
    assert run.check("token mint").startswith("FAILED token mint CHECK_SESSION is not a session value Appwrite "
                                              "could read")
    assert "not-a-session-value" not in run.output
    assert not emulator.app[RECORDER].find("/v1/account/jwts")


# --- Redis -------------------------------------------------------------------------------------


@pytest.fixture
def plain_redis() -> Iterator[int]:
    with redis_server() as server:
        yield server.port


@pytest.fixture
def protected_redis() -> Iterator[int]:
    with redis_server("--requirepass", REDIS_PASSWORD, password=REDIS_PASSWORD) as server:
        yield server.port


@pytest.fixture
def redis_url_file(tmp_path: Path, protected_redis: int) -> str:
    path = tmp_path / "redis-url"
    path.write_text(f"redis://:{REDIS_PASSWORD}@127.0.0.1:{protected_redis}/3\n")
    return str(path)


async def test_redis_with_its_password(emulator: Emulator, protected_redis: int) -> None:
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{protected_redis}/0"
    run = await check_config(**base_env(emulator, REDIS_URL=url, STATE_HASH_KEY=HASH_KEY))
    assert run.code == 0
    assert run.check("redis") == (f"ok redis redis: 127.0.0.1:{protected_redis} db 0: answers, accepts the "
                                  "credentials, runs the scripts")
    assert run.fact("state") == f"redis: 127.0.0.1:{protected_redis} db 0"
    assert REDIS_PASSWORD not in run.output and HASH_KEY not in run.output


async def test_redis_url_and_password_from_files(emulator: Emulator, protected_redis: int, redis_url_file: str) -> None:
    run = await check_config(**base_env(emulator, REDIS_URL_FILE=redis_url_file, STATE_HASH_KEY=HASH_KEY))
    assert run.code == 0
    assert run.check("redis").startswith(f"ok redis redis: 127.0.0.1:{protected_redis} db 3: answers")
    assert REDIS_PASSWORD not in run.output


async def test_a_wrong_redis_password(emulator: Emulator, protected_redis: int) -> None:
    url = f"redis://:wrong-{REDIS_PASSWORD}@127.0.0.1:{protected_redis}/0"
    run = await check_config(**base_env(emulator, REDIS_URL=url, STATE_HASH_KEY=HASH_KEY))
    assert run.code == 1
    assert run.check("redis") == ("FAILED redis REDIS_URL: Redis refused the credentials: check the user and password "
                                  "in REDIS_URL (and sentinel_password for Sentinel) (serve refuses to start)")
    assert REDIS_PASSWORD not in run.output


async def test_a_closed_redis_port(emulator: Emulator) -> None:
    port = free_port()
    run = await check_config(**base_env(emulator, REDIS_URL=f"redis://127.0.0.1:{port}/0", STATE_HASH_KEY=HASH_KEY))
    assert run.code == 1
    assert run.check("redis") == ("FAILED redis REDIS_URL: Redis did not answer at start (ConnectionError); check the "
                                  "host and port in REDIS_URL, or unset REDIS_URL to run on per-process memory "
                                  "(serve refuses to start)")
    # Appwrite is still checked: one failure does not hide the others.
    assert run.check("appwrite").startswith("ok appwrite")
    assert run.stdout.endswith("\nresult: FAILED (redis)\n")


@pytest.mark.parametrize("scheme", ["redis+sentinel", "redis+cluster"])
async def test_the_wrong_topology_is_what_serve_refuses(emulator: Emulator, plain_redis: int, scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{plain_redis}" + ("/mymaster/0" if scheme == "redis+sentinel" else "")
    env = base_env(emulator, REDIS_URL=url, STATE_HASH_KEY=HASH_KEY, HOST="127.0.0.1", PORT=str(free_port()),
                   LOG_LEVEL="error")
    checked, served = await asyncio.gather(check_config(**env), token_exchange("serve", env=env))
    assert (checked.code, served.code) == (1, 2)
    refusal = served.stderr.strip().removeprefix("token-exchange: configuration error: ")
    assert refusal.startswith("REDIS_URL: ")
    assert checked.check("redis") == f"FAILED redis {refusal} (serve refuses to start)"


@pytest.fixture(params=["sentinel", "cluster"])
def topology(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A real Sentinel set or Cluster: (its kind, its REDIS_URL)."""
    rig = redis_sentinel if request.param == "sentinel" else redis_cluster
    with rig() as started:
        yield f"redis-{request.param}", started.url


async def test_sentinel_and_cluster(emulator: Emulator, topology: tuple[str, str]) -> None:
    kind, url = topology
    run = await check_config(**base_env(emulator, REDIS_URL=url, STATE_HASH_KEY=HASH_KEY))
    assert run.code == 0, run.stdout
    assert run.check("redis").startswith(f"ok redis {kind}: ")
    assert run.check("redis").endswith(": answers, accepts the credentials, runs the scripts")
    assert run.fact("state").startswith(f"{kind}: ")


# --- secrets never printed ---------------------------------------------------------------------


async def test_no_secret_is_ever_printed(emulator: Emulator, protected_redis: int) -> None:
    _, _, cookie = emulator.signed_in_user()
    secrets = [cookie, REDIS_PASSWORD, HASH_KEY, WRONG_KEY, JWT_SECRET, "otlp-api-key-never-printed"]
    for redis_password, keys in ((REDIS_PASSWORD, f"{WRONG_KEY},{JWT_SECRET}"), (f"x{REDIS_PASSWORD}", WRONG_KEY)):
        env = base_env(
            emulator, CHECK_SESSION=cookie, APPWRITE_JWT_SECRET=keys, STATE_HASH_KEY=HASH_KEY,
            REDIS_URL=f"redis://:{redis_password}@127.0.0.1:{protected_redis}/0",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://user:{secrets[-1]}@127.0.0.1:{free_port()}",
            OTEL_EXPORTER_OTLP_HEADERS=f"api-key={secrets[-1]}",
        )
        for args in ((), ("--json",)):
            run = await check_config(*args, **env)
            assert run.stdout
            for secret in secrets:
                assert secret not in run.output
            # Neither a session value nor a token (both base64 of a JSON object) shows up at all.
            assert "eyJ" not in run.output


# --- the command line itself -------------------------------------------------------------------


async def test_version_is_the_installed_distributions() -> None:
    run = await token_exchange("--version", env={})
    assert (run.code, run.stderr) == (0, "")
    assert run.stdout == f"token-exchange {INSTALLED}\n"


async def test_check_config_does_not_import_the_emulator(emulator: Emulator) -> None:
    run = await token_exchange("check-config", env=base_env(emulator), python=("-X", "importtime"))
    assert run.code == 0
    assert " appwrite_token_exchange.check_config" in run.stderr
    assert "appwrite_token_exchange.emulator" not in run.stderr
