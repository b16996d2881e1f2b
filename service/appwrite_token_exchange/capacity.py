"""How much the relay and the HTTP edge may hold, sized to the memory the process may use.

A pod that reaches its memory limit is OOM-killed, and every socket it holds drops at once; a cap
refuses one handshake or one connection with 503 and the client retries. So when the container has
a memory limit (cgroup v2 `memory.max`, or v1 `memory.limit_in_bytes`), the caps are derived from
it: first the edge's shares (connections beyond the relayed sockets, and the bytes of requests in
flight: edge/connection_limits.py), then the relay's event budget, and the relayed sockets get
what is left, each counted at the cost the relay benchmark measured (docs/performance.md) for the
upstream's scheme, with a stated headroom. Explicit settings still win.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
# Measured by `python -m bench --only relay` (docs/performance.md, "The relay at population scale"):
# the process at rest with its token route warm, and one idle relayed socket with a plain ws://
# upstream, plain (34.6 KiB) or translated (35.5 KiB), with room for a busier process.
BASE_BYTES = 72 * MIB
SOCKET_BYTES = 48 * 1024
# The same socket with a TLS upstream (an https:// APPWRITE_ENDPOINT), measured by the same run:
# 78 KiB idle, but 600-630 KiB once 256 KiB have arrived at once (a large event, or events that
# queued while the loop was busy): uvloop's TLS read buffer (256 KiB per connection, its size fixed
# when uvloop is built) and OpenSSL's incoming memory BIO (which keeps its largest size) then stay
# that big for the socket's life. Nothing here can bound or release them (a smaller SO_RCVBUF
# shrank bursts only unevenly; asyncio's own loop holds 256 KiB from the start), so a TLS socket
# is counted at what a burst leaves it, plus a margin.
TLS_SOCKET_BYTES = 672 * 1024
# Kept free for what is not counted: the allocator's fragmentation, GC generations, bursts of
# token requests.
HEADROOM = 0.15
# The share of the limit that event bytes in flight (read from Appwrite, not yet written to the
# page) may take, and what each counted byte costs in memory while it is processed (the bytes
# read, the decoded text, the frame written).
IN_FLIGHT_SHARE = 0.10
IN_FLIGHT_COPIES = 3
# The edge (edge/connection_limits.py). A connection with nothing in flight costs 6.1 KiB, measured
# with 2,500 of them against `serve`; a stalled request 94 KiB for 56 KiB of headers (its bytes
# counted twice, less a little). Connections beyond the relayed sockets get CONNECTIONS_SHARE of the
# limit; the bytes of requests in flight REQUESTS_SHARE, each counted byte at REQUEST_COPIES.
CONNECTION_BYTES = 8 * 1024
CONNECTIONS_SHARE = 0.03
REQUESTS_SHARE = 0.06
REQUEST_COPIES = 2
# Without a known limit: the caps of a process that has the machine to itself.
UNLIMITED_SOCKETS = 10_000
UNLIMITED_IN_FLIGHT_BYTES = 256 * MIB
UNLIMITED_CONNECTIONS = 20_000
UNLIMITED_REQUEST_BYTES = 64 * MIB

_CGROUP_V2 = "memory.max"
_CGROUP_V1 = "memory/memory.limit_in_bytes"
# cgroup v1 writes "no limit" as the largest page-aligned 64-bit value; anything near it is none.
_V1_UNLIMITED = 1 << 60
_SIZE = re.compile(r"^(\d+)(Ki|Mi|Gi|K|M|G)?$")
_UNITS = {None: 1, "K": 1000, "M": 1000**2, "G": 1000**3, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


@dataclass(frozen=True)
class MemoryLimit:
    bytes: int | None
    source: str  # "cgroup v2", "cgroup v1", "CONTAINER_MEMORY_LIMIT", "none", or "auto" (not read yet)


@dataclass(frozen=True)
class EdgeCapacity:
    """What the HTTP edge may hold (MAX_CONNECTIONS, MAX_REQUEST_BYTES_IN_FLIGHT), and why."""

    max_connections: int
    max_request_bytes: int
    derived: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"maxConnections": self.max_connections, "maxRequestBytesInFlight": self.max_request_bytes,
                "derived": list(self.derived)}


@dataclass(frozen=True)
class Capacity:
    """What the relay and the edge may hold, and why (shown at start and in /readyz)."""

    limit: MemoryLimit
    max_sockets: int
    max_bytes_in_flight: int
    derived: tuple[str, ...]  # the relay's settings that were derived rather than set
    upstream_scheme: str  # "ws" or "wss": a socket costs what its upstream's scheme makes it
    socket_bytes: int  # what each socket was counted at
    edge: EdgeCapacity

    def to_json(self) -> dict[str, object]:
        """The relay's part."""
        return {
            "memoryLimitBytes": self.limit.bytes,
            "memoryLimitSource": self.limit.source,
            "maxSockets": self.max_sockets,
            "maxBytesInFlight": self.max_bytes_in_flight,
            "derived": list(self.derived),
            "upstreamScheme": self.upstream_scheme,
            "socketBytes": self.socket_bytes,
        }


def parse_size(text: str) -> int | None:
    """A Kubernetes-style quantity ("256Mi", "268435456", "1G"); None when it is not one."""
    found = _SIZE.match(text.strip())
    if found is None:
        return None
    return int(found.group(1)) * _UNITS[found.group(2)]


def container_memory_limit(root: Path = Path("/sys/fs/cgroup")) -> MemoryLimit:
    """The memory limit of the cgroup this process runs in, as the container sees it."""
    for name, source in ((_CGROUP_V2, "cgroup v2"), (_CGROUP_V1, "cgroup v1")):
        try:
            text = (root / name).read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit():
            return MemoryLimit(None, "none")
        value = int(text)
        return MemoryLimit(None if value >= _V1_UNLIMITED else value, source if value < _V1_UNLIMITED else "none")
    return MemoryLimit(None, "none")


def plan(
    limit: MemoryLimit,
    max_sockets: int | None,
    max_bytes_in_flight: int | None,
    *,
    tls: bool = False,
    max_connections: int | None = None,
    max_request_bytes: int | None = None,
) -> Capacity:
    """The caps for this limit (one still `auto` counts as none), with sockets counted at the cost
    of a TLS upstream or a plain one; a cap given explicitly is kept."""
    socket_bytes = TLS_SOCKET_BYTES if tls else SOCKET_BYTES
    edge_derived = []
    if max_request_bytes is None:
        edge_derived.append("MAX_REQUEST_BYTES_IN_FLIGHT")
        max_request_bytes = (
            UNLIMITED_REQUEST_BYTES if limit.bytes is None else int(limit.bytes * REQUESTS_SHARE / REQUEST_COPIES)
        )
    edge_bytes = 0 if limit.bytes is None else int(limit.bytes * CONNECTIONS_SHARE) + max_request_bytes * REQUEST_COPIES
    derived = []
    if max_bytes_in_flight is None:
        derived.append("RELAY_MAX_BYTES_IN_FLIGHT")
        max_bytes_in_flight = (
            UNLIMITED_IN_FLIGHT_BYTES if limit.bytes is None else int(limit.bytes * IN_FLIGHT_SHARE)
        )
    if max_sockets is None:
        derived.append("RELAY_MAX_SOCKETS")
        max_sockets = (
            UNLIMITED_SOCKETS
            if limit.bytes is None
            else sockets_for(limit.bytes, max_bytes_in_flight, socket_bytes, edge_bytes)
        )
    if max_connections is None:
        edge_derived.append("MAX_CONNECTIONS")
        max_connections = (
            UNLIMITED_CONNECTIONS
            if limit.bytes is None
            else max_sockets + int(limit.bytes * CONNECTIONS_SHARE) // CONNECTION_BYTES
        )
    edge = EdgeCapacity(max_connections, max_request_bytes, tuple(edge_derived))
    return Capacity(limit, max_sockets, max_bytes_in_flight, tuple(derived), "wss" if tls else "ws", socket_bytes, edge)


def sockets_for(limit_bytes: int, bytes_in_flight: int, socket_bytes: int, edge_bytes: int = 0) -> int:
    """Relayed sockets of `socket_bytes` that fit in `limit_bytes` beside the process, its events in
    flight and the edge's shares."""
    spare = limit_bytes * (1 - HEADROOM) - BASE_BYTES - bytes_in_flight * IN_FLIGHT_COPIES - edge_bytes
    return max(1, int(spare // socket_bytes))
