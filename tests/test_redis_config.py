"""REDIS_URL for every topology, and a misconfigured Redis: each case ends in a message that says
what to fix (at start: the service refuses; at run time: log once, metric, /readyz), never in a
silent fallback to per-replica memory. Real redis-server processes throughout."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from aiohttp import web
from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.settings import SettingsError
from appwrite_token_exchange.state.redis_store import RedisState
from appwrite_token_exchange.state.redis_url import RedisConfig, parse_redis_url
from appwrite_token_exchange.state.sliding_window import Check
from appwrite_token_exchange.state.store import State, StateConfigError, misconfiguration, redis_client_for
from redis.exceptions import AuthenticationError, MovedError, NoScriptError, ResponseError

from tests.support.processes import free_port
from tests.support.redis_server import redis_server
from tests.support.service import exchange, service_settings

HASH_KEY = "shared-deployment-key-0123456789"

async def assert_two_replicas_share_one_limit(emulator, service_factory, url: str, backend: str) -> None:  # type: ignore[no-untyped-def]
    """Two service replicas on one REDIS_URL: one session limit across both, Redis live, no fallback."""
    replicas = [await service_factory(REDIS_URL=url, STATE_HASH_KEY=HASH_KEY, RATE_LIMIT_SESSION="3/minute")
                for _ in range(2)]
    _, _, cookie = emulator.signed_in_user()
    statuses = [(await exchange(replicas[i % 2], cookie)).status for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    ready = await (await replicas[0].get("/readyz")).json()
    assert ready["checks"]["state"] == {"status": "ok", "backend": backend}
    assert f'token_exchange_state_backend_info{{backend="{backend}"}} 1.0' in await (await replicas[0].get("/metrics")).text()



@contextmanager
def server(*args: str, password: str | None = None) -> Iterator[int]:
    """A redis-server with extra arguments, on a free loopback port."""
    with redis_server(*args, password=password) as started:
        yield started.port


@pytest.fixture
def plain() -> Iterator[int]:
    with server() as port:
        yield port


@pytest.fixture
def other() -> Iterator[int]:
    with server() as port:
        yield port


@pytest.fixture
def protected() -> Iterator[int]:
    with server("--requirepass", "right-password", password="right-password") as port:
        yield port


@pytest.fixture
def cluster_node() -> Iterator[int]:
    """One cluster-mode node that owns every slot: a whole (small) Redis Cluster."""
    # The bus port defaults to port + 10000, past 65535 for a high free port.
    with server("--cluster-enabled", "yes", "--cluster-port", str(free_port())) as port:
        client = redis.Redis(port=port)
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        deadline = time.monotonic() + 10
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the cluster never became ok"
            time.sleep(0.05)
        client.close()
        yield port


@pytest.fixture
def sentinel(plain: int) -> Iterator[int]:
    """One Sentinel watching `plain` as master `mymaster`."""
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        config = os.path.join(directory, "sentinel.conf")
        with open(config, "w") as file:
            file.write(f"port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {plain} 1\n")
        binary = shutil.which("redis-server")
        assert binary
        process = subprocess.Popen([binary, config, "--sentinel"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port, socket_connect_timeout=0.2)
            deadline = time.monotonic() + 10
            while True:
                try:
                    if client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"):
                        break
                except redis.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "the sentinel never started"
                time.sleep(0.05)
            client.close()
            yield port
        finally:
            process.kill()
            process.wait(timeout=10)


# --- REDIS_URL parsing -------------------------------------------------------------------------


def test_single_server_urls() -> None:
    assert parse_redis_url("redis://:pw@h:6380/2") == RedisConfig(
        "redis", "redis://:pw@h:6380/2", False, (("h", 6380),), None, "pw", 2)
    assert parse_redis_url("rediss://u:pw@h").tls
    assert parse_redis_url("unix:///run/redis.sock?db=3").kind == "redis"


def test_sentinel_urls() -> None:
    config = parse_redis_url("rediss+sentinel://app:p%40ss@s1,s2:26380,[::1]/mymaster/4"
                             "?sentinel_password=spw&sentinel_username=sen")
    assert config == RedisConfig(
        "redis-sentinel", config.url, True, (("s1", 26379), ("s2", 26380), ("::1", 26379)), "app", "p@ss", 4,
        "mymaster", "sen", "spw")
    assert parse_redis_url("redis+sentinel://s1/mymaster").db == 0


def test_cluster_urls() -> None:
    config = parse_redis_url("rediss+cluster://:pw@n1:7000,n2:7001")
    assert (config.kind, config.tls, config.hosts, config.password) == (
        "redis-cluster", True, (("n1", 7000), ("n2", 7001)), "pw")
    assert parse_redis_url("redis+cluster://n1/0").db == 0


def test_a_ca_file_for_tls_may_hold_slashes_unencoded() -> None:
    """The TLS forms take the CA bundle as ?ssl_ca_certs= (a path, slashes and all)."""
    cluster = parse_redis_url("rediss+cluster://n1:7000,n2?ssl_ca_certs=/etc/ssl/redis/ca.pem")
    assert (cluster.hosts, cluster.db, cluster.ca_file) == ((("n1", 7000), ("n2", 6379)), 0, "/etc/ssl/redis/ca.pem")
    sentinel = parse_redis_url("rediss+sentinel://s1/m/2?ssl_ca_certs=%2Fca.pem&sentinel_password=x")
    assert (sentinel.master_name, sentinel.db, sentinel.ca_file, sentinel.sentinel_password) == ("m", 2, "/ca.pem", "x")
    assert parse_redis_url("rediss://h/1?ssl_ca_certs=/ca.pem").db == 1


@pytest.mark.parametrize(("url", "message"), [
    ("http://:hunter2@redis:6379", "REDIS_URL: must start with redis://, rediss://, unix://, redis+sentinel://, "
                                   "rediss+sentinel://, redis+cluster:// or rediss+cluster://"),
    ("redis+cluster://:hunter2@n1:7000/1", "REDIS_URL: Redis Cluster has only database 0; remove the /N from the URL"),
    ("redis+sentinel://:hunter2@s1:26379", "REDIS_URL: needs the Sentinel master name: "
                                            "redis+sentinel://host:26379/<master-name>"),
    ("redis+sentinel://:hunter2@s1/m/x", "REDIS_URL: the database must be a number, like /0"),
    ("redis://:hunter2@h:99999", "REDIS_URL: has a port that is not a number from 1 to 65535"),
    ("redis://:hunter2@h1,h2", "REDIS_URL: names several hosts; use redis+sentinel:// or redis+cluster:// for those"),
    ("redis+cluster://:hunter2@,n1", "REDIS_URL: has an empty host name"),
    ("redis+cluster://:hunter2@n1?password=x", "REDIS_URL: has an option this form does not take (it takes "
                                               "ssl_ca_certs); percent-encode a '#', '/', '?', '@' or '%' in the "
                                               "user name or password (e.g. '#' as %23)"),
    ("redis+cluster://:hunter2@n1?ssl_ca_certs=/ca.pem",
     "REDIS_URL: ssl_ca_certs needs a TLS scheme: rediss://, rediss+sentinel:// or rediss+cluster://"),
])
def test_wrong_urls_name_the_variable_and_never_the_password(url: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_redis_url(url)
    assert str(raised.value) == message
    assert raised.value.variable == "REDIS_URL"
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(("error", "cause"), [
    (AuthenticationError("invalid username-password pair"), "auth"),
    (ResponseError("NOAUTH Authentication required."), "auth"),
    (ResponseError("WRONGPASS invalid username-password pair"), "auth"),
    (NoScriptError("NOSCRIPT No matching script."), "noscript"),
    (ResponseError("CROSSSLOT Keys in request don't hash to the same slot"), "crossslot"),
    (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), "wrongtype"),
    (MovedError("3999 127.0.0.1:6381"), "cluster_server"),
    (ResponseError("ASK 3999 127.0.0.1:6381"), "cluster_server"),
    (redis.ConnectionError("Connection refused"), None),
    (redis.TimeoutError("Timeout reading from socket"), None),
    (OSError("unreachable"), None),
])
def test_misconfigurations_are_told_from_outages(error: Exception, cause: str | None) -> None:
    assert misconfiguration(error) == cause


# --- at start: the service refuses, naming REDIS_URL -------------------------------------------


async def _refused(emulator, **env: str) -> StateConfigError:
    # An app runner, not aiohttp_client: its client session would outlive a server that never started.
    runner = web.AppRunner(create_app(service_settings(emulator, STATE_HASH_KEY=HASH_KEY, **env)))
    with pytest.raises(StateConfigError) as raised:
        await runner.setup()
    assert raised.value.variable == "REDIS_URL"
    return raised.value


async def test_a_wrong_password_refuses_to_start(emulator, service_factory, protected, logs) -> None:
    for url in (f"redis://127.0.0.1:{protected}/0", f"redis://:wrong-password@127.0.0.1:{protected}/0"):
        error = await _refused(emulator, REDIS_URL=url)
        assert error.cause == "auth"
        assert str(error) == ("REDIS_URL: Redis refused the credentials: check the user and password in "
                              "REDIS_URL (and sentinel_password for Sentinel)")
    events = logs.events("state.redis_unusable")
    assert [event["cause"] for event in events] == ["auth", "auth"]
    assert "wrong-password" not in logs.text


async def test_a_cluster_node_given_as_one_server_refuses_to_start(emulator, service_factory, cluster_node) -> None:
    error = await _refused(emulator, REDIS_URL=f"redis://127.0.0.1:{cluster_node}/0")
    assert str(error) == ("REDIS_URL: REDIS_URL names a Redis Cluster node with a single-server scheme; use "
                          "redis+cluster:// (or rediss+cluster://) and list the nodes")


async def test_one_server_given_as_a_cluster_refuses_to_start(emulator, service_factory, plain) -> None:
    error = await _refused(emulator, REDIS_URL=f"redis+cluster://127.0.0.1:{plain}")
    assert error.cause == "not_cluster"
    assert str(error) == ("REDIS_URL: REDIS_URL uses redis+cluster:// but the server is not in cluster mode; "
                          "use redis:// (or redis+sentinel://)")


async def test_a_key_of_another_type_refuses_to_start(emulator, service_factory, plain) -> None:
    client = await asyncio.to_thread(redis.Redis, port=plain)
    await asyncio.to_thread(client.set, "rtx:rl:probe:boot", "another application's value")
    await asyncio.to_thread(client.close)
    error = await _refused(emulator, REDIS_URL=f"redis://127.0.0.1:{plain}/0")
    assert error.cause == "wrongtype"
    assert str(error) == ("REDIS_URL: a key under rtx: holds another type: another application shares this "
                          "database; give the service its own database (/N in REDIS_URL) or server")


async def test_an_unknown_sentinel_master_refuses_to_start(emulator, sentinel) -> None:
    error = await _refused(emulator, REDIS_URL=f"redis+sentinel://127.0.0.1:{sentinel}/othermaster")
    assert str(error) == ("REDIS_URL: the Sentinels named in REDIS_URL know no reachable master by its master "
                          "name; check the name after the hosts, the Sentinels' addresses and sentinel_password")


async def test_exchanges_behind_sentinel(emulator, service_factory, sentinel) -> None:
    await assert_two_replicas_share_one_limit(emulator, service_factory, f"redis+sentinel://127.0.0.1:{sentinel}/mymaster/0", "redis-sentinel")


async def test_an_unreachable_redis_refuses_to_start(emulator, service_factory) -> None:
    error = await _refused(emulator, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert error.cause == "unreachable"
    assert str(error) == ("REDIS_URL: Redis did not answer at start (ConnectionError); check the host and port "
                          "in REDIS_URL, or unset REDIS_URL to run on per-process memory")


@pytest.mark.subprocess
async def test_serve_exits_2_naming_redis_url(emulator) -> None:
    env = {**os.environ, "APPWRITE_ENDPOINT": emulator.endpoint, "APPWRITE_PROJECT_ID": "p", "HOST": "127.0.0.1",
           "PORT": str(free_port()), "STATE_HASH_KEY": HASH_KEY,
           "REDIS_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0", "LOG_LEVEL": "warning"}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "appwrite_token_exchange.cli", "serve"], env=env, capture_output=True, timeout=30,
    )
    assert done.returncode == 2
    assert b"token-exchange: configuration error: REDIS_URL: Redis did not answer at start" in done.stderr
    assert b"hunter2" not in done.stderr + done.stdout


# --- at run time: log once, metric, /readyz ----------------------------------------------------


async def test_auth_lost_at_run_time_is_named_not_an_outage(emulator, service_factory, plain, logs) -> None:
    service = await service_factory(REDIS_URL=f"redis://127.0.0.1:{plain}/0", STATE_HASH_KEY=HASH_KEY)
    _, _, cookie = emulator.signed_in_user()
    assert (await exchange(service, cookie)).status == 200
    assert 'token_exchange_state_backend_info{backend="redis"} 1.0' in await (await service.get("/metrics")).text()
    admin = await asyncio.to_thread(redis.Redis, port=plain)
    await asyncio.to_thread(admin.config_set, "requirepass", "now-required")
    await asyncio.to_thread(admin.execute_command, "CLIENT", "KILL", "TYPE", "normal")
    await asyncio.to_thread(admin.close)
    # The killed connection first looks like an outage; the reconnection then meets NOAUTH.
    assert (await exchange(service, cookie)).status == 200
    await asyncio.sleep(1.1)
    for _ in range(3):
        assert (await exchange(service, cookie)).status == 200  # served from memory meanwhile
    state = (await (await service.get("/readyz")).json())["checks"]["state"]
    assert state == {"status": "misconfigured", "backend": "redis", "cause": "auth", "fallback": "memory",
                     "fix": "Redis refused the credentials: check the user and password in REDIS_URL "
                            "(and sentinel_password for Sentinel)"}
    metrics = await (await service.get("/metrics")).text()
    assert 'token_exchange_state_backend_error_total{cause="auth"}' in metrics
    assert "token_exchange_state_backend_fallback 0.0" in metrics  # not reported as an outage
    assert [event["cause"] for event in logs.events("state.redis_misconfigured")] == ["auth"]
    assert len(logs.events("state.redis_unavailable")) <= 1


async def test_wrongtype_at_run_time(plain, logs) -> None:
    client = redis_client_for(parse_redis_url(f"redis://127.0.0.1:{plain}/0"))
    causes: list[str] = []
    try:
        await client.set("rtx:rl:user:taken", "not a window")
        state = State(RedisState(client), on_fallback_change=lambda down: None, on_error=causes.append)
        check = Check("user", "rtx:rl:user:taken", RateLimit(2, 60))
        assert [(await state.hit([check]))[0].allowed for _ in range(3)] == [True, True, False]  # memory
        assert causes == ["wrongtype"] * 3
        assert state.readiness()["cause"] == "wrongtype"
        assert len(logs.events("state.redis_misconfigured")) == 1
    finally:
        await client.aclose()


async def test_noscript_loop_behind_a_proxy_is_named(plain, other, logs) -> None:
    """A script loaded into one server and run on another, as behind a proxy that spreads calls."""
    other_port = other
    if True:
        client = redis_client_for(parse_redis_url(f"redis://127.0.0.1:{plain}/0"))
        other = redis_client_for(parse_redis_url(f"redis://127.0.0.1:{other_port}/0"))
        causes: list[str] = []
        try:
            client.script_load = other.script_load
            state = State(RedisState(client), on_fallback_change=lambda down: None, on_error=causes.append)
            await state.hit([Check("user", "rtx:rl:user:x", RateLimit(2, 60))])
            assert causes == ["noscript"]
            assert state.readiness()["status"] == "misconfigured"
            assert [event["cause"] for event in logs.events("state.redis_misconfigured")] == ["noscript"]
        finally:
            await client.aclose()
            await other.aclose()


# --- Cluster: per-check calls, hash-tagged caches, all-or-nothing ------------------------------


async def test_exchanges_on_a_cluster(emulator, service_factory, cluster_node) -> None:
    await assert_two_replicas_share_one_limit(emulator, service_factory, f"redis+cluster://127.0.0.1:{cluster_node}", "redis-cluster")


async def test_a_refusal_in_one_scope_charges_none_on_a_cluster(cluster_node) -> None:
    client = redis_client_for(parse_redis_url(f"redis+cluster://127.0.0.1:{cluster_node}"))
    try:
        state = RedisState(client, cluster=True)
        one = RateLimit(1, 60)
        session, user = Check("session", "rtx:rl:session:a", one), Check("user", "rtx:rl:user:b", one)
        await state.add(user)
        assert [d.allowed for d in await state.hit([session, user])] == [True, False]
        # The session was counted by its own call, then taken back.
        assert (await state.hit([session]))[0].allowed
        assert not (await state.hit([session]))[0].allowed
        assert await state.get_cached(["invalid:{fp}", "user:{fp}"]) == [None, None]
    finally:
        await client.aclose()
