"""What the crowd at the edge may hold: connections, and requests still being read or answered.

Each request is bounded (its header block, its read deadline); a crowd of them was not: 2,500
connections from one IP, each sending 56 KiB of headers and then nothing, took a serve process
from 54 to 340 MiB in 3 s, past a 256Mi pod's limit. So the HTTP server counts, per process:

- connections open (relayed sockets included, since each is one): past `MAX_CONNECTIONS` a new
  connection is answered at once with 503 `server_busy` and closed;
- the bytes of the requests in flight (from a request's first byte until its answer is written or
  its socket is upgraded): each counts REQUEST_BASE_BYTES plus the header and body bytes received;
  past `MAX_REQUEST_BYTES_IN_FLIGHT` the request is refused with 503 `server_busy`;

Two things keep a crowd of stalled requests from locking everyone else out while it lasts:
- a request that arrives whole in one read of at most QUICK_REQUEST_BYTES (a probe, a token
  request, a handshake) may use the last RESERVE_SHARE of the byte budget, which requests still
  arriving cannot take: a stalled request never arrives whole;
- at `MAX_CONNECTIONS`, a new connection is refused only when no other can make room: first the
  connection idle the longest (between requests, or opened and silent) is closed, as nginx drains
  its keep-alive connections when it runs out, then the one whose request has been arriving the
  longest, if for STALLED_SECONDS at least (an honest request arrives within a round trip or two).

Per client (its peer address, an IPv6 peer by its network of `IPV6_PREFIX_LENGTH`):
connections (`MAX_CONNECTIONS_PER_IP`, 429 `too_many_connections` at accept) and requests in
flight (`MAX_REQUESTS_IN_FLIGHT_PER_IP`, 429 `too_many_requests_in_flight` at its first byte).
A peer in `TRUSTED_PROXIES` carries many clients, so it has no per-client share: the proxy reads a
whole header block before it forwards one, and its own per-client limits apply (docs/deploy.md).
The global caps are sized to the memory limit (capacity.py), so no crowd can take the pod past it;
the per-client shares keep one client from taking the whole of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from appwrite_token_exchange.access.client_ip import limit_key_for_ip
from appwrite_token_exchange.env import IpNetwork, canonical_ip, in_networks
from appwrite_token_exchange.settings import Settings

# What a request in flight costs beyond its bytes (its parser state, request and task objects);
# capacity.py counts every counted byte at REQUEST_COPIES bytes of memory.
REQUEST_BASE_BYTES = 4 * 1024
# Refusals say when to come back: a crowd of stalled requests is gone within the read deadline.
RETRY_AFTER_SECONDS = 1
# Requests that arrive whole in one read of at most this many bytes may use the reserve.
QUICK_REQUEST_BYTES = 8 * 1024
RESERVE_SHARE = 0.10
# A request still arriving after this long may be closed to make room at the connection cap.
STALLED_SECONDS = 1.0
# Connections refused at accept that wait a moment for the client to read the refusal (closing at
# once would reset a connection whose request has arrived, and the client lose the answer); past
# this many at once, the next is closed at once.
MAX_LINGERING = 256

SERVER_BUSY = "server_busy"
TOO_MANY_CONNECTIONS = "too_many_connections"
TOO_MANY_REQUESTS = "too_many_requests_in_flight"


@dataclass(frozen=True)
class EdgeCaps:
    max_connections: int
    max_request_bytes: int
    max_connections_per_client: int
    max_requests_per_client: int

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeCaps:
        return cls(settings.max_connections, settings.max_request_bytes_in_flight,
                   settings.max_connections_per_ip, settings.max_requests_in_flight_per_ip)


class _Client:
    __slots__ = ("connections", "requests")

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0


class ConnectionLimits:
    """The counts, the caps, and which peer is a client of its own (a key) or a proxy (None)."""

    def __init__(
        self,
        caps: EdgeCaps,
        trusted_proxies: Iterable[IpNetwork] = (),
        ipv6_prefix_length: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.caps = caps
        self._clock = clock
        self._trusted = tuple(trusted_proxies)
        self._ipv6_prefix_length = ipv6_prefix_length
        self.connections = 0
        self.request_bytes = 0
        self.lingering = 0
        self._clients: dict[str, _Client] = {}  # only clients holding something
        # Connections that may be closed to make room, oldest first (dicts keep insertion order),
        # each with how to close it: those with nothing in flight, and those whose request is
        # arriving, with when it started.
        self._idle: dict[object, Callable[[], None]] = {}
        self._arriving: dict[object, tuple[float, Callable[[], None]]] = {}
        self._reserve = int(caps.max_request_bytes * RESERVE_SHARE)
        # Told of every refusal's code (the metrics count them).
        self.on_refused: Callable[[str], None] = lambda code: None

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(EdgeCaps.from_settings(settings), settings.trusted_proxies, settings.ipv6_prefix_length)

    def client_key(self, peer: str | None) -> str | None:
        """The per-client key of a peer address; None for a trusted proxy or no address (a Unix socket)."""
        ip = canonical_ip(peer)
        if ip is None or in_networks(ip, self._trusted):
            return None
        return limit_key_for_ip(str(ip), self._ipv6_prefix_length)

    def held(self, key: str) -> tuple[int, int]:
        """A client's connections and requests in flight (0, 0 once it holds nothing)."""
        client = self._clients.get(key)
        return (client.connections, client.requests) if client else (0, 0)

    # Each take returns the refusal's code, or None once it has counted what it took.

    def connect(self, key: str | None) -> str | None:
        if self.connections >= self.caps.max_connections and not self._make_room():
            return SERVER_BUSY
        if key is not None:
            client = self._clients.setdefault(key, _Client())
            if client.connections >= self.caps.max_connections_per_client:
                self._forget_if_idle(key, client)
                return TOO_MANY_CONNECTIONS
            client.connections += 1
        self.connections += 1
        return None

    def disconnect(self, key: str | None) -> None:
        self.connections -= 1
        if key is not None:
            client = self._clients[key]
            client.connections -= 1
            self._forget_if_idle(key, client)

    def start_request(self, key: str | None, *, quick: bool = False) -> str | None:
        if self._over_budget(REQUEST_BASE_BYTES, quick):
            return SERVER_BUSY
        if key is not None:
            client = self._clients.setdefault(key, _Client())
            if client.requests >= self.caps.max_requests_per_client:
                self._forget_if_idle(key, client)
                return TOO_MANY_REQUESTS
            client.requests += 1
        self.request_bytes += REQUEST_BASE_BYTES
        return None

    def end_request(self, key: str | None) -> None:
        """A request answered, upgraded or cut off: its slot given back (its bytes by `give_bytes`)."""
        self.request_bytes -= REQUEST_BASE_BYTES
        if key is not None:
            client = self._clients[key]
            client.requests -= 1
            self._forget_if_idle(key, client)

    def take_bytes(self, count: int, *, quick: bool = False) -> str | None:
        if self._over_budget(count, quick):
            return SERVER_BUSY
        self.request_bytes += count
        return None

    def give_bytes(self, count: int) -> None:
        self.request_bytes -= count

    def _over_budget(self, count: int, quick: bool) -> bool:
        cap = self.caps.max_request_bytes - (0 if quick else self._reserve)
        return self.request_bytes + count > cap

    def idle(self, connection: object, evict: Callable[[], None]) -> None:
        """`connection` has nothing in flight: the first to be closed at the connection cap."""
        self._arriving.pop(connection, None)
        self._idle[connection] = evict

    def arriving(self, connection: object, evict: Callable[[], None]) -> None:
        """`connection`'s request has started to arrive: closed at the cap once it is stalled."""
        self._idle.pop(connection, None)
        self._arriving[connection] = (self._clock(), evict)

    def settled(self, connection: object) -> None:
        """`connection` is neither idle nor arriving (being answered, upgraded, or gone)."""
        self._idle.pop(connection, None)
        self._arriving.pop(connection, None)

    def _make_room(self) -> bool:
        """Close the connection idle the longest, or else the longest stalled request's; False if none."""
        if self._idle:
            evict = self._idle.pop(next(iter(self._idle)))
        elif self._arriving:
            oldest = next(iter(self._arriving))
            started, evict = self._arriving[oldest]
            if self._clock() - started < STALLED_SECONDS:
                return False
            del self._arriving[oldest]
        else:
            return False
        evict()  # gives its connection back at once
        return True

    def _forget_if_idle(self, key: str, client: _Client) -> None:
        if client.connections == 0 and client.requests == 0:
            del self._clients[key]
