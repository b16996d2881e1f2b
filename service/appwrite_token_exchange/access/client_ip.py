"""The caller's IP and scheme: X-Forwarded-For and X-Forwarded-Proto believed only through trusted
proxies, one canonical spelling per address, and the key the per-IP limits count (IPv6 by network)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

from aiohttp import web
from multidict import MultiMapping

from appwrite_token_exchange.env import IpNetwork, canonical_ip, in_networks

FORWARDED_FOR = "X-Forwarded-For"
FORWARDED_PROTO = "X-Forwarded-Proto"


class Forwarded(NamedTuple):
    """Who sent a request and over which scheme, as far as trusted proxies vouch for it."""

    client_ip: str
    scheme: str


def client_ip(request: web.BaseRequest, trusted_proxies: Iterable[IpNetwork]) -> str:
    """The caller's IP: X-Forwarded-For is believed only hop by hop through trusted proxies.

    The answer is canonical (see `canonical_ip`), so one address has one spelling in the audit log,
    in the X-Forwarded-For the relay sends on, and in the rate limits (`limit_key_for_ip`).
    """
    return forwarded(request, trusted_proxies).client_ip


def forwarded(request: web.BaseRequest, trusted_proxies: Iterable[IpNetwork]) -> Forwarded:
    """The caller's IP and scheme, from every X-Forwarded-For and X-Forwarded-Proto line.

    X-Forwarded-For is walked from the right: the socket's peer, then each entry, for as long as
    the address is a trusted proxy; the first that is not is the caller. Junk on the way means the
    chain is not believed (the peer is the caller). X-Forwarded-Proto is read at the caller's
    position counted from the right, as a proxy that appends to one appends to the other
    (HAProxy, Envoy); a list shorter than that (proxies that set it instead of appending: only
    the outermost one, or each in turn) gives its first entry. Without a trusted peer both
    headers are the caller's own text and neither is read.
    """
    proxies = tuple(trusted_proxies)
    peer = canonical_ip(request.remote)
    if peer is None:
        return Forwarded(request.remote or "unknown", request.scheme)
    if not proxies or not in_networks(peer, proxies):
        return Forwarded(str(peer), request.scheme)
    caller, position = peer, 1
    hops = [_parse_hop(hop) for hop in header_list(request.headers, FORWARDED_FOR)]
    for index, hop in enumerate(reversed(hops), start=1):
        if hop is None:
            # The first hop no trusted proxy vouches for; junk there means the chain is not believed.
            caller, position = peer, 1
            break
        caller, position = hop, index
        if not in_networks(hop, proxies):
            break
    schemes = header_list(request.headers, FORWARDED_PROTO)
    scheme = (schemes[-position] if len(schemes) >= position else schemes[0]).lower() if schemes else ""
    return Forwarded(str(caller), scheme if scheme in ("http", "https") else request.scheme)


def header_list(headers: MultiMapping[str], name: str) -> list[str]:
    """The entries of a comma-separated header, from every line of that name in order.

    Several lines of one name mean what one line of their values joined by commas means
    (RFC 9110, section 5.3); a proxy may add a line of its own (HAProxy's `option forwardfor`)
    after one the client sent, so reading the first line alone believes the client.
    """
    return [entry.strip() for line in headers.getall(name, ()) for entry in line.split(",") if entry.strip()]


def limit_key_for_ip(address: str, ipv6_prefix_length: int) -> str:
    """What the per-IP rate limit counts: an IPv4 address, or the IPv6 network it belongs to.

    One IPv6 host (or one customer of an ISP) usually owns a whole /64 and can pick a fresh
    address from it for every request, so per-address IPv6 limits limit nothing. Text that is
    not an address (an unknown peer) is its own key.
    """
    ip = canonical_ip(address)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv4Address) or ipv6_prefix_length >= 128:
        return str(ip)
    return str(ipaddress.IPv6Network((ip, ipv6_prefix_length), strict=False))


def _parse_hop(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """One X-Forwarded-For entry. Proxies write a bare address; a few (Azure Application
    Gateway, IIS ARR) add the client's port: `203.0.113.9:5123`, `[2001:db8::1]:5123`."""
    text = text.strip()
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return canonical_ip(inside)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return canonical_ip(host) if port.isdigit() and "." in host else None
    return canonical_ip(text)
