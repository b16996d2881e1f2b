"""The caller's IP: X-Forwarded-For believed only through trusted proxies, one canonical spelling
per address, and the key the per-IP limits count (IPv6 by network)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

from appwrite_token_exchange.env import IpNetwork


def client_ip(request: web.Request, trusted_proxies: Iterable[IpNetwork]) -> str:
    """The caller's IP: X-Forwarded-For is believed only hop by hop through trusted proxies.

    The answer is canonical (see `_parse_ip`), so one address has one spelling in the audit log,
    in the X-Forwarded-For the relay sends on, and in the rate limits (`limit_key_for_ip`).
    """
    proxies = tuple(trusted_proxies)
    peer = _parse_ip(request.remote)
    if peer is None:
        return request.remote or "unknown"
    if not proxies or not _in_any(peer, proxies):
        return str(peer)
    hops = [_parse_hop(hop) for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop is None or not _in_any(hop, proxies):
            # The first hop no trusted proxy vouches for; junk there means the chain is not believed.
            return str(hop if hop is not None else peer)
    return str(hops[0] if hops and hops[0] is not None else peer)


def limit_key_for_ip(address: str, ipv6_prefix_length: int) -> str:
    """What the per-IP rate limit counts: an IPv4 address, or the IPv6 network it belongs to.

    One IPv6 host (or one customer of an ISP) usually owns a whole /64 and can pick a fresh
    address from it for every request, so per-address IPv6 limits limit nothing. Text that is
    not an address (an unknown peer) is its own key.
    """
    ip = _parse_ip(address)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv4Address) or ipv6_prefix_length >= 128:
        return str(ip)
    return str(ipaddress.IPv6Network((ip, ipv6_prefix_length), strict=False))


def _parse_ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address in canonical form: IPv6 compressed and without a zone (`%eth0`), and an
    IPv4-mapped IPv6 address (`::ffff:203.0.113.9`, what a dual-stack socket reports for an
    IPv4 peer) as the IPv4 address it carries."""
    try:
        ip = ipaddress.ip_address(text or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(ip.packed)
    return ip


def _parse_hop(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """One X-Forwarded-For entry. Proxies write a bare address; a few (Azure Application
    Gateway, IIS ARR) add the client's port: `203.0.113.9:5123`, `[2001:db8::1]:5123`."""
    text = text.strip()
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return _parse_ip(inside)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return _parse_ip(host) if port.isdigit() and "." in host else None
    return _parse_ip(text)


def _in_any(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Iterable[IpNetwork]) -> bool:
    return any(ip in network for network in proxies)


def is_trusted(address: str | None, proxies: Iterable[IpNetwork]) -> bool:
    ip = _parse_ip(address)
    return ip is not None and _in_any(ip, proxies)
