"""A real redis-server process on a free loopback port, for tests of shared state."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import redis

from tests.support.processes import free_port
from tests.support.redis_binaries import server_binary
from tests.support.redis_tls import make_tls


class RedisServer:
    def __init__(self, port: int, directory: str, *args: str, password: str | None = None,
                 server: str = "redis") -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._directory = directory
        self._args = args  # extra redis-server arguments, e.g. --requirepass or --cluster-enabled
        self._password = password  # what the readiness ping authenticates with
        self._process: subprocess.Popen[bytes] | None = None
        self._server = server

    def start(self) -> None:
        binary = server_binary(self._server)
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self._directory, *self._args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, password=self._password, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None


@contextmanager
def redis_server(*args: str, password: str | None = None, server: str = "redis",
                 tls: bool = False) -> Iterator[RedisServer]:
    """A started server (redis or valkey) on a free loopback port; `args` are extra arguments.
    With `tls`, `url` names its TLS port (rediss://, the test CA in ssl_ca_certs)."""
    with tempfile.TemporaryDirectory() as directory:
        tls_port = free_port()
        files = make_tls(directory) if tls else None
        extra = files.server_args(tls_port) if files else []
        server = RedisServer(free_port(), directory, *args, *extra, password=password, server=server)
        if files:
            server.url = f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={quote(files.ca)}"
        server.start()
        try:
            yield server
        finally:
            server.stop()
