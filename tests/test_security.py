"""CSRF, Origin, CORS, request ids, client IPs and the shape of every refusal."""

from __future__ import annotations

import re

import pytest
from multidict import CIMultiDict

from tests.support.helpers import assert_problem, upstream_requests
from tests.support.service import exchange

ALLOWED = "https://app.example.com"


async def test_missing_csrf_header_is_refused_before_anything_else(service, emulator, session_cookie) -> None:
    await assert_problem(await exchange(service, session_cookie, headers={"X-CSRF": ""}), 403, "csrf_header_missing")
    await assert_problem(await exchange(service, session_cookie, headers={"X-CSRF": "yes"}), 403, "csrf_header_missing")
    assert await upstream_requests(emulator) == []


async def test_foreign_origin_is_refused(service, emulator, session_cookie) -> None:
    response = await exchange(service, session_cookie, headers={"Origin": "https://evil.example"})
    await assert_problem(response, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in response.headers
    await assert_problem(await exchange(service, session_cookie, headers={"Origin": "null"}), 403, "origin_not_allowed")
    assert await upstream_requests(emulator) == []


async def test_allowed_origin_gets_credentialed_cors(service, session_cookie) -> None:
    response = await exchange(service, session_cookie, headers={"Origin": ALLOWED})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in response.headers["Vary"]


async def test_same_origin_needs_no_allowlist(service, session_cookie) -> None:
    own = f"http://{service.server.host}:{service.server.port}"
    response = await exchange(service, session_cookie, headers={"Origin": own})
    assert response.status == 200
    # Same-origin needs no CORS headers at all.
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cross_site_fetch_without_origin_is_refused(service, session_cookie) -> None:
    response = await exchange(service, session_cookie, headers={"Sec-Fetch-Site": "cross-site"})
    await assert_problem(response, 403, "origin_not_allowed")
    same_site = await exchange(service, session_cookie, headers={"Sec-Fetch-Site": "same-origin"})
    assert same_site.status == 200


async def test_preflight_allows_the_csrf_header_for_allowed_origins_only(service) -> None:
    response = await service.options(
        "/v1/realtime/token",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-csrf",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "X-CSRF" in response.headers["Access-Control-Allow-Headers"]
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    assert "Origin" in response.headers["Vary"]
    refused = await service.options(
        "/v1/realtime/token", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    await assert_problem(refused, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in refused.headers


async def test_never_a_wildcard(service_factory, session_cookie) -> None:
    from appwrite_token_exchange.settings import SettingsError

    with pytest.raises(SettingsError, match="ALLOWED_ORIGINS"):
        await service_factory(ALLOWED_ORIGINS="*")
    service = await service_factory()
    for origin in (ALLOWED, "https://evil.example"):
        response = await exchange(service, session_cookie, headers={"Origin": origin})
        assert response.headers.get("Access-Control-Allow-Origin") != "*"


async def test_get_is_method_not_allowed(service, session_cookie) -> None:
    response = await service.get("/v1/realtime/token", headers={"X-CSRF": "1"})
    await assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


async def test_unknown_path_is_not_found(service) -> None:
    await assert_problem(await service.get("/nope"), 404, "not_found")


async def test_oversized_body_is_refused(service, emulator, session_cookie) -> None:
    response = await exchange(service, session_cookie, data=b"x" * 10_000)
    await assert_problem(response, 413, "body_too_large")
    assert await upstream_requests(emulator) == []


async def test_a_small_body_is_ignored(service, session_cookie) -> None:
    response = await exchange(service, session_cookie, json={"duration": 3600})
    assert response.status == 200
    assert (await response.json())["expiresIn"] <= 30


async def test_every_answer_carries_the_services_own_request_id(service, session_cookie) -> None:
    """A caller's id, sane or not, is never the answer's (tests/test_request_id.py)."""
    for sent in ("abc-123", "bad id\twith junk"):
        answered = (await exchange(service, session_cookie, headers={"X-Request-ID": sent})).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", answered) and answered != sent
    for response in (await service.get("/livez"), await service.get("/nope"), await exchange(service)):
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


async def test_forwarded_for_is_believed_only_from_trusted_proxies(service_factory, session_cookie, logs) -> None:
    untrusted = await service_factory()
    await exchange(untrusted, session_cookie, headers={"X-Forwarded-For": "203.0.113.9"})
    trusted = await service_factory(TRUSTED_PROXIES="127.0.0.0/8")
    await exchange(trusted, session_cookie, headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.5"})
    ips = [event["client_ip"] for event in logs.events("token.issued")]
    assert ips == ["127.0.0.1", "203.0.113.9"]


def test_client_ip_walks_the_chain_from_the_right() -> None:
    import ipaddress
    from unittest.mock import Mock

    from appwrite_token_exchange.access.client_ip import client_ip

    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    request = Mock(remote="10.0.0.2", headers=CIMultiDict({"X-Forwarded-For": "1.1.1.1, 198.51.100.7, 10.0.0.9"}))
    assert client_ip(request, proxies) == "198.51.100.7"
    spoofed = Mock(remote="198.51.100.1", headers=CIMultiDict({"X-Forwarded-For": "1.1.1.1"}))
    assert client_ip(spoofed, proxies) == "198.51.100.1"
    junk = Mock(remote="10.0.0.2", headers=CIMultiDict({"X-Forwarded-For": "not-an-ip"}))
    assert client_ip(junk, proxies) == "10.0.0.2"


async def test_problem_responses_are_never_cached(service) -> None:
    response = await exchange(service)
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_tls_proxy_that_is_not_trusted_gets_an_answer_naming_the_setting(
    service_factory, emulator, session_cookie, logs
) -> None:
    """Same host behind a TLS proxy, TRUSTED_PROXIES forgotten: the page is https, the service sees http."""
    untrusted = await service_factory(ALLOWED_ORIGINS="")
    host = f"{untrusted.server.host}:{untrusted.server.port}"
    behind_proxy = {"Origin": f"https://{host}", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    for _ in range(3):
        body = await assert_problem(
            await exchange(untrusted, session_cookie, headers=behind_proxy), 403, "origin_not_allowed"
        )
        assert "TRUSTED_PROXIES" in body["detail"] and f"http://{host}" in body["detail"], body["detail"]
    relay = await untrusted.get(
        "/v1/realtime?project=x",
        headers={
            **behind_proxy,
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert "TRUSTED_PROXIES" in (await assert_problem(relay, 403, "origin_not_allowed"))["detail"]
    warnings = logs.events("config.proxy_not_trusted")
    assert len(warnings) == 1, "logged once per process, not once per request"
    assert warnings[0]["level"] == "warning" and "TRUSTED_PROXIES" in warnings[0]["hint"]
    assert warnings[0]["forwarded_proto"] == "https"
    assert await upstream_requests(emulator) == []

    trusted = await service_factory(ALLOWED_ORIGINS="", TRUSTED_PROXIES="127.0.0.0/8")
    host = f"{trusted.server.host}:{trusted.server.port}"
    answer = await exchange(trusted, session_cookie, headers={**behind_proxy, "Origin": f"https://{host}"})
    assert answer.status == 200


async def test_other_refused_origins_say_what_was_compared(service, session_cookie, logs) -> None:
    body = await assert_problem(
        await exchange(service, session_cookie, headers={"Origin": "https://evil.example"}), 403, "origin_not_allowed"
    )
    assert "https://evil.example" in body["detail"] and "ALLOWED_ORIGINS" in body["detail"]
    assert "TRUSTED_PROXIES" not in body["detail"]
    long_origin = "https://" + "a" * 5000 + ".example"
    body = await assert_problem(
        await exchange(service, session_cookie, headers={"Origin": long_origin}), 403, "origin_not_allowed"
    )
    assert len(body["detail"]) < 400, "a caller's header is quoted only in part"
    assert logs.events("config.proxy_not_trusted") == []


def test_client_ip_is_canonical_whatever_the_spelling() -> None:
    import ipaddress
    from unittest.mock import Mock

    from appwrite_token_exchange.access.client_ip import client_ip

    proxies = (ipaddress.ip_network("10.0.0.0/8"),)

    def seen(remote: str, forwarded: str | None = None) -> str:
        headers = CIMultiDict() if forwarded is None else CIMultiDict({"X-Forwarded-For": forwarded})
        return client_ip(Mock(remote=remote, headers=headers), proxies)

    assert seen("2001:0DB8:0:0::1") == "2001:db8::1"
    # A dual-stack socket reports an IPv4 peer IPv4-mapped; it is still that IPv4 address, and trusted as one.
    assert seen("::ffff:203.0.113.9") == "203.0.113.9"
    assert seen("::ffff:10.0.0.2", "198.51.100.7") == "198.51.100.7"
    assert seen("fe80::1%eth0") == "fe80::1"
    for spelling in ("2001:0db8:0000::0001", "::ffff:2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:5123"):
        expected = "2001:db8::1" if spelling != "::ffff:2001:db8::1" else "10.0.0.2"
        assert seen("10.0.0.2", spelling) == expected, spelling
    assert seen("10.0.0.2", "::ffff:198.51.100.7, 10.0.0.9") == "198.51.100.7"
    assert seen("10.0.0.2", "198.51.100.7:5123") == "198.51.100.7"
    # Junk, wherever it is, means the chain is not believed: the peer is the client.
    for junk in ("[2001:db8::1]x", "[2001:db8::1", "198.51.100.7:http", "host.example:80", "1.1.1.1, nope"):
        assert seen("10.0.0.2", junk) == "10.0.0.2", junk


def test_limit_key_groups_ipv6_by_prefix_and_keeps_ipv4_addresses() -> None:
    from appwrite_token_exchange.access.client_ip import limit_key_for_ip

    assert limit_key_for_ip("2001:db8:1:2:aaaa::1", 64) == "2001:db8:1:2::/64"
    assert limit_key_for_ip("2001:0db8:0001:0002:ffff:ffff:ffff:ffff", 64) == "2001:db8:1:2::/64"
    assert limit_key_for_ip("2001:db8:1:2:aaaa::1", 48) == "2001:db8:1::/48"
    assert limit_key_for_ip("2001:db8:1:2:aaaa::1", 128) == "2001:db8:1:2:aaaa::1"
    assert limit_key_for_ip("2001:db8:1:3::1", 64) != limit_key_for_ip("2001:db8:1:2::1", 64)
    assert limit_key_for_ip("203.0.113.9", 64) == "203.0.113.9"
    assert limit_key_for_ip("::ffff:203.0.113.9", 64) == "203.0.113.9"
    assert limit_key_for_ip("unknown", 64) == "unknown"


async def test_ipv6_clients_are_limited_per_network(service_factory, session_cookie, logs) -> None:
    """Eight addresses of one /64 (one host can use them all) meet one per-IP limit."""
    service = await service_factory(
        TRUSTED_PROXIES="127.0.0.0/8", RATE_LIMIT_IP="5/minute", RATE_LIMIT_SESSION="off", RATE_LIMIT_USER="off"
    )
    addresses = [f"2001:db8:1:2:{host:x}::1" for host in range(1, 9)]
    statuses = []
    for address in addresses:
        response = await exchange(service, session_cookie, headers={"X-Forwarded-For": f"{address}, 127.0.0.5"})
        statuses.append(response.status)
        if response.status == 429:
            assert (await response.json(content_type=None))["scope"] == "ip"
    assert statuses == [200] * 5 + [429] * 3
    neighbour = await exchange(service, session_cookie, headers={"X-Forwarded-For": "2001:db8:1:3::1"})
    assert neighbour.status == 200, "the next /64 is someone else"
    # The audit log still names each caller's own address, not the network it is counted in.
    assert [event["client_ip"] for event in logs.events("token.issued")] == [*addresses[:5], "2001:db8:1:3::1"]


async def test_one_address_in_two_spellings_is_one_bucket(service_factory, session_cookie, logs) -> None:
    service = await service_factory(
        TRUSTED_PROXIES="127.0.0.0/8",
        RATE_LIMIT_IP="1/minute",
        RATE_LIMIT_SESSION="off",
        RATE_LIMIT_USER="off",
        # Per address, so only the spelling can make two requests share a bucket.
        IPV6_PREFIX_LENGTH="128",
    )

    async def status(forwarded_for: str) -> int:
        response = await exchange(service, session_cookie, headers={"X-Forwarded-For": forwarded_for})
        return int(response.status)

    assert await status("2001:db8::1") == 200
    assert await status("2001:0DB8:0:0::0001") == 429
    assert await status("[2001:db8::1]:443") == 429
    assert await status("2001:db8::2") == 200, "with IPV6_PREFIX_LENGTH=128 each address is its own"
    assert await status("203.0.113.9") == 200
    assert await status("::ffff:203.0.113.9") == 429
    assert [event["client_ip"] for event in logs.events("token.issued")] == ["2001:db8::1", "2001:db8::2", "203.0.113.9"]
