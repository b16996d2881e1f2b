"""A real Sentinel set on free loopback ports, for tests of shared state: one master, one replica
(`--replicaof`) and three sentinels (`redis-server <conf> --sentinel`, so the Debian package
redis-server is enough; no redis-sentinel package needed) monitoring the master with quorum 2,
`down-after-milliseconds` 1000 and `failover-timeout` 5000. `failover()` and `kill_master()` move
the master to the replica and wait until every sentinel names the new one.

Every call here blocks: use it from sync fixtures, or through asyncio.to_thread."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import quote

import redis

from tests.support.redis_binaries import server_binary
from tests.support.redis_cluster import distinct_free_ports
from tests.support.redis_tls import TlsFiles, make_tls

MASTER_NAME = "rtxmaster"
SENTINELS = 3
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


class RedisSentinelSet:
    def __init__(self, directory: str, server: str = "redis", tls: TlsFiles | None = None) -> None:
        ports = distinct_free_ports(2 * (2 + SENTINELS))
        self.data_ports = ports[:2]
        self.sentinel_ports = ports[2:2 + SENTINELS]
        # With TLS, every server and sentinel also listens on a TLS port; replication and the
        # sentinels' own connections use TLS, so the sentinels name the masters' TLS ports. The
        # failover helpers below work with the plain ports only (no TLS run uses them).
        self._tls = tls
        self._tls_ports = dict(zip(ports[:2 + SENTINELS], ports[2 + SENTINELS:], strict=True))
        self.master_name = MASTER_NAME
        # The agreed REDIS_URL form: every sentinel, then the master's name and the database.
        self.url = (
            "redis+sentinel://" + ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
            + f"/{MASTER_NAME}/0"
        )
        if tls:
            self.url = (
                "rediss+sentinel://" + ",".join(f"127.0.0.1:{self._tls_ports[port]}" for port in self.sentinel_ports)
                + f"/{MASTER_NAME}/0?ssl_ca_certs={quote(tls.ca)}"
            )
        self._directory = directory
        self._servers: dict[int, subprocess.Popen[bytes]] = {}
        self._sentinels: list[subprocess.Popen[bytes]] = []
        self.failovers = 0
        self._flavour = server

    def start(self) -> None:
        binary = server_binary(self._flavour)
        master, replica = self.data_ports
        self._servers[master] = self._server(binary, master)
        _wait_for_ping(master)
        self._servers[replica] = self._server(binary, replica, "--replicaof", "127.0.0.1", str(self._monitored(master)))
        _wait_until(lambda: _info(replica, "replication").get("master_link_status") == "up",
                    "the replica did not sync with the master")
        for port in self.sentinel_ports:
            config = os.path.join(self._directory, f"sentinel-{port}.conf")
            # Sentinel rewrites its configuration file, so each gets its own, writable.
            with open(config, "w") as file:
                file.write(
                    f"port {port}\nbind 127.0.0.1\ndir {self._directory}\n"
                    + (self._tls.config_lines(self._tls_ports[port]) + "tls-replication yes\n" if self._tls else "")
                    + f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self._monitored(master)} {QUORUM}\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                    f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                    f"sentinel parallel-syncs {MASTER_NAME} 1\n"
                )
            self._sentinels.append(subprocess.Popen(
                [binary, config, "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        for port in self.sentinel_ports:
            _wait_for_ping(port)
        # Ready when every sentinel knows the master, its replica and the other sentinels: only
        # then can a failover reach quorum and pick a replica.
        _wait_until(self._sentinels_agree, "the sentinels did not discover each other and the replica", 30)

    def _monitored(self, port: int) -> int:
        """The port replication and the sentinels use: the TLS one, with TLS."""
        return self._tls_ports[port] if self._tls else port

    def _server(self, binary: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
        tls = [*self._tls.server_args(self._tls_ports[port]), "--tls-replication", "yes"] if self._tls else []
        return subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self._directory, "--dbfilename", f"dump-{port}.rdb", *tls, *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            client = _client(port)
            try:
                replicas = client.sentinel_slaves(MASTER_NAME)
                others = client.sentinel_sentinels(MASTER_NAME)
            except redis.RedisError:
                return False
            finally:
                client.close()
            if not any(r.get("is_slave") and not r.get("is_odown") and not r.get("is_sdown") for r in replicas):
                return False
            if len(others) < SENTINELS - 1:
                return False
        return True

    def master_port(self) -> int:
        """The master's port as the first sentinel reports it."""
        client = _client(self.sentinel_ports[0])
        try:
            _host, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
        finally:
            client.close()
        return int(port)

    def _every_sentinel_names(self, port: int) -> bool:
        for sentinel in self.sentinel_ports:
            client = _client(sentinel)
            try:
                address = client.sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis.RedisError:
                return False
            finally:
                client.close()
            if not address or int(address[1]) != port:
                return False
        return True

    def _wait_for_new_master(self, old: int) -> int:
        new = next(port for port in self.data_ports if port != old)
        _wait_until(lambda: self._every_sentinel_names(new), "the sentinels did not agree on the new master", 30)
        _wait_until(lambda: _info(new, "replication").get("role") == "master", "the new master did not take over")
        self.failovers += 1
        return new

    def failover(self, promoted: threading.Event | None = None) -> int:
        """A planned failover (`SENTINEL FAILOVER`): the replica becomes master, the old master its
        replica. Sets `promoted` once every sentinel names the new master (the old one still takes
        writes then), and returns the new master's port once the old one is demoted too."""
        old = self.master_port()
        client = _client(self.sentinel_ports[0])
        try:
            client.execute_command("SENTINEL FAILOVER", MASTER_NAME)
        finally:
            client.close()
        new = self._wait_for_new_master(old)
        if promoted is not None:
            promoted.set()
        # Done only once the old master is demoted too: until then it still takes writes, which
        # its resync with the new master throws away.
        _wait_until(lambda: _info(old, "replication").get("role") == "slave",
                    "the sentinels did not turn the old master into a replica", 30)
        return new

    def kill_master(self) -> int:
        """An unplanned failover: SIGKILL the master; after `down-after-milliseconds` the
        sentinels agree (quorum 2) and promote the replica. Returns the new master's port once
        every sentinel names it. The old master stays down."""
        old = self.master_port()
        process = self._servers.pop(old)
        process.kill()
        process.wait(timeout=10)
        return self._wait_for_new_master(old)

    def stop(self) -> None:
        processes = [*self._sentinels, *self._servers.values()]
        for process in processes:
            if process.poll() is None:
                process.kill()
        for process in processes:
            process.wait(timeout=10)
        self._sentinels, self._servers = [], {}


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True)


def _info(port: int, section: str) -> dict[str, object]:
    client = _client(port)
    try:
        return dict(client.info(section))
    except redis.RedisError:
        return {}
    finally:
        client.close()


def _wait_for_ping(port: int) -> None:
    def ping() -> bool:
        client = _client(port)
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False
        finally:
            client.close()

    _wait_until(ping, f"redis on port {port} did not answer PING")


def _wait_until(condition: Callable[[], bool], message: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


@contextmanager
def redis_sentinel(server: str = "redis", tls: bool = False) -> Iterator[RedisSentinelSet]:
    with ExitStack() as stack:
        directory = stack.enter_context(tempfile.TemporaryDirectory())
        sentinels = RedisSentinelSet(directory, server, make_tls(directory) if tls else None)
        # Registered before start, so processes started by a failed start are killed too.
        stack.callback(sentinels.stop)
        sentinels.start()
        yield sentinels
