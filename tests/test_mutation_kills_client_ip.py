"""X-Forwarded-For entries with a port, as Azure Application Gateway and IIS ARR write them: what is
an address and what is junk, entry by entry. Each case fails on a mutant of access/client_ip.py
that the header tests let through (scripts/mutation; the equivalent ones are in
tests/mutation/equivalent.txt)."""

from __future__ import annotations

from ipaddress import ip_network
from unittest.mock import Mock

import pytest
from appwrite_token_exchange.access.client_ip import client_ip, forwarded
from multidict import CIMultiDict

PROXIES = [ip_network("10.0.0.0/8")]
PROXY = "10.0.0.2"


def caller(entry: str) -> str:
    """Who the service takes for the caller when its trusted proxy forwards `entry`."""
    request = Mock(remote=PROXY, scheme="http", headers=CIMultiDict({"X-Forwarded-For": entry}))
    return client_ip(request, PROXIES)


@pytest.mark.parametrize(
    ("entry", "address"),
    [
        ("[2001:db8::1]:5", "2001:db8::1"),  # a one-digit port
        ("[2001:db8::1]:5123", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("203.0.113.9:5123", "203.0.113.9"),
    ],
)
def test_an_address_with_a_port_is_the_address(entry: str, address: str) -> None:
    assert caller(entry) == address


@pytest.mark.parametrize(
    "entry",
    [
        "[2001:db8::1]:",  # a colon and no port
        "[2001:db8::1]x5123",  # digits, but no colon before them
        "[2001:db8::1]:x5",  # a colon, then not only digits
        "[2001:db8::1",  # no closing bracket
        "203.0.113.9:",
        "203.0.113.9:https",
    ],
)
def test_junk_after_the_address_means_the_chain_is_not_believed(entry: str) -> None:
    assert caller(entry) == PROXY


@pytest.mark.parametrize(("peer", "shown"), [(None, "unknown"), ("not-an-address", "not-an-address")])
def test_a_peer_that_is_no_address_is_shown_as_it_is_with_the_sockets_scheme(peer: str | None, shown: str) -> None:
    request = Mock(remote=peer, scheme="https", headers=CIMultiDict({"X-Forwarded-Proto": "http"}))
    assert forwarded(request, PROXIES) == (shown, "https")


def test_junk_in_the_chain_reads_the_scheme_the_trusted_peer_set() -> None:
    # The chain is not believed: the peer is the caller, and the scheme is the last one, its own.
    request = Mock(remote=PROXY, scheme="http",
                   headers=CIMultiDict({"X-Forwarded-For": "junk", "X-Forwarded-Proto": "http, https"}))
    assert forwarded(request, PROXIES) == (PROXY, "https")


@pytest.mark.parametrize("said", ["http", "https", "HTTP"])
def test_a_trusted_proxy_may_say_either_scheme(said: str) -> None:
    socket = "https" if said.lower() == "http" else "http"
    request = Mock(remote=PROXY, scheme=socket,
                   headers=CIMultiDict({"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": said}))
    assert forwarded(request, PROXIES) == ("203.0.113.9", said.lower())
