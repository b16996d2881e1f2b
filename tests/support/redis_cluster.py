"""A real 3-node Redis Cluster (three `redis-server --cluster-enabled yes` processes, joined with
`redis-cli --cluster create`, no replicas) on free loopback ports, for tests of shared state.

Needs the Debian packages redis-server and redis-tools (redis-cli; a dependency of redis-server).
Every call here blocks: use it from sync fixtures, or through asyncio.to_thread."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import quote

import redis

from tests.support.processes import free_port
from tests.support.redis_binaries import server_binary
from tests.support.redis_tls import TlsFiles, make_tls

NODES = 3


class RedisCluster:
    def __init__(self, ports: list[int], bus_ports: list[int], directory: str, server: str = "redis",
                 tls: TlsFiles | None = None, tls_ports: list[int] | None = None) -> None:
        self.ports = ports
        self._server = server
        # With TLS, every node also listens on a TLS port, the bus runs over TLS, and the nodes
        # announce their TLS ports to clients that connect with TLS.
        self._tls = tls
        self._tls_ports = tls_ports or []
        # The bus port defaults to port + 10000, which is past 65535 for a high free port.
        self._bus_ports = bus_ports
        # The agreed REDIS_URL form: every node as a seed, so any one of them may be down at start.
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
        if tls:
            self.url = ("rediss+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self._tls_ports)
                        + f"?ssl_ca_certs={quote(tls.ca)}")
        self._directory = directory
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        binary, cli = server_binary(self._server), shutil.which("redis-cli")
        assert cli, "redis-cli is not installed (apt-get install redis-tools)"
        for i, (port, bus_port) in enumerate(zip(self.ports, self._bus_ports, strict=True)):
            tls = [*self._tls.server_args(self._tls_ports[i]), "--tls-cluster", "yes"] if self._tls else []
            self._processes.append(subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self._directory, "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "2000",
                 "--cluster-port", str(bus_port), *tls],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ))
        for port in self.ports:
            _wait_for_ping(port)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30,
        )
        deadline = time.monotonic() + 20
        while not all(self._cluster_ok(port) for port in self.ports):
            assert time.monotonic() < deadline, "the cluster did not reach cluster_state:ok"
            time.sleep(0.1)

    @staticmethod
    def _cluster_ok(port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        try:
            info = client.cluster("INFO")
        except redis.RedisError:
            return False
        finally:
            client.close()
        return bool(info.get("cluster_state") == "ok")

    def client(self) -> redis.RedisCluster:
        """A sync cluster client, for assertions on the keys the service wrote."""
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0], socket_timeout=2)

    def stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
        for process in self._processes:
            process.wait(timeout=10)
        self._processes = []


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _wait_for_ping(port: int, timeout: float = 10.0) -> None:
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        client.close()


@contextmanager
def redis_cluster(server: str = "redis", tls: bool = False) -> Iterator[RedisCluster]:
    with ExitStack() as stack:
        directory = stack.enter_context(tempfile.TemporaryDirectory())
        ports = distinct_free_ports(3 * NODES)
        cluster = RedisCluster(ports[:NODES], ports[NODES:2 * NODES], directory, server,
                               make_tls(directory) if tls else None, ports[2 * NODES:])
        # Registered before start, so processes started by a failed start are killed too.
        stack.callback(cluster.stop)
        cluster.start()
        yield cluster
