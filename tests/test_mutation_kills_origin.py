"""The Origin check and its answers, one behaviour at a time, on requests built by hand (no
middleware has read the scheme yet): each test fails on a mutant of access/origin.py that the
route-level tests let through (scripts/mutation; the equivalent ones are in
tests/mutation/equivalent.txt)."""

from __future__ import annotations

from typing import Any
from unittest.mock import Mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from appwrite_token_exchange.access.origin import (
    check_origin,
    cors_origin,
    origin_allowed,
    proxy_scheme_mismatch,
    refused_origin_detail,
    request_origin,
    set_cors_headers,
)
from appwrite_token_exchange.keys import CLIENT_SCHEME, LOGGED_ONCE, SETTINGS
from appwrite_token_exchange.observability.log_once import LogOnce
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.settings import Settings
from multidict import CIMultiDict

from tests.support.service import LogLines

HOST = "service.example"
PROXY = "10.0.0.7"


def settings(**env: str) -> Settings:
    base = {
        "APPWRITE_ENDPOINT": "http://appwrite.invalid/v1",
        "APPWRITE_PROJECT_ID": "p",
        "ALLOWED_ORIGINS": "https://app.example.com",
    }
    return Settings.from_env({**base, **env})


def request(headers: dict[str, str], peer: str = "192.0.2.1", scheme: str | None = None, **env: str) -> web.Request:
    """A request from `peer`; `scheme` is what the request middleware would have stored, if it ran."""
    app = web.Application()
    app[SETTINGS] = settings(**env)
    app[LOGGED_ONCE] = LogOnce()
    transport = Mock()
    transport.get_extra_info = lambda name, default=None: (peer, 4321) if name == "peername" else default
    made = make_mocked_request("POST", "/v1/realtime/token", headers={"Host": HOST, **headers}, app=app,
                               transport=transport)
    if scheme is not None:
        made[CLIENT_SCHEME] = scheme
    return made


def test_the_own_origin_comes_from_a_trusted_proxys_scheme_when_no_middleware_read_it() -> None:
    behind = request({"X-Forwarded-Proto": "https"}, peer=PROXY, TRUSTED_PROXIES="10.0.0.0/8")
    assert request_origin(behind, behind.app[SETTINGS]) == f"https://{HOST}"
    assert origin_allowed(f"https://{HOST}", behind, behind.app[SETTINGS])


def test_the_scheme_the_middleware_stored_wins_over_the_socket() -> None:
    stored = request({}, scheme="https")
    assert request_origin(stored, stored.app[SETTINGS]) == f"https://{HOST}"


def test_the_own_origin_is_the_host_in_lower_case() -> None:
    upper = request({"Host": "Service.EXAMPLE"}, scheme="http")
    assert request_origin(upper, upper.app[SETTINGS]) == f"http://{HOST}"


def test_only_slashes_are_stripped_from_an_origin_before_it_is_compared() -> None:
    plain = request({}, scheme="http")
    assert origin_allowed("https://app.example.com/", plain, plain.app[SETTINGS])
    # A look-alike that ends in a letter another strip would remove.
    assert not origin_allowed("https://app.example.comX", plain, plain.app[SETTINGS])
    assert not origin_allowed("https://app.example.comx", plain, plain.app[SETTINGS])


def test_the_own_origin_is_allowed_without_a_middleware_having_read_the_scheme() -> None:
    plain = request({})
    assert origin_allowed(f"http://{HOST}", plain, plain.app[SETTINGS])
    assert not origin_allowed(f"https://{HOST}", plain, plain.app[SETTINGS])


@pytest.mark.parametrize("origin", [f"https://{HOST}", f"https://{HOST}/", f"HTTPS://{HOST.upper()}"])
def test_our_host_under_https_seen_as_http_is_a_proxy_scheme_mismatch(origin: str) -> None:
    plain = request({})
    assert proxy_scheme_mismatch(origin, plain, plain.app[SETTINGS])


@pytest.mark.parametrize(
    "origin",
    [f"http://{HOST}", "https://app.example.com", f"https://{HOST}X", f"http://https://{HOST}", "https://other.example"],
)
def test_anything_else_is_no_proxy_scheme_mismatch(origin: str) -> None:
    plain = request({})
    assert not proxy_scheme_mismatch(origin, plain, plain.app[SETTINGS])


def test_the_refusal_behind_an_untrusted_tls_proxy_names_both_settings_word_for_word() -> None:
    plain = request({})
    assert refused_origin_detail(f"https://{HOST}", plain, plain.app[SETTINGS]) == (
        f"The page's origin https://{HOST} is this service's own host, but the service sees the request as "
        f"http://{HOST}: TLS ends at a proxy in front of it. Set TRUSTED_PROXIES to that proxy's addresses so its "
        "X-Forwarded-Proto is believed (the proxy must send it), or list the origin in ALLOWED_ORIGINS."
    )


def test_any_other_refusal_names_the_own_origin_and_the_allowlist() -> None:
    plain = request({})
    assert refused_origin_detail(f"http://https://{HOST}", plain, plain.app[SETTINGS]) == (
        f"The origin http://https://{HOST} is neither this service's own origin (http://{HOST}) nor listed in "
        "ALLOWED_ORIGINS."
    )


def refuse(made: web.Request, origin: str) -> ProblemError:
    with pytest.raises(ProblemError) as refused:
        check_origin(made.clone(headers={**made.headers, "Origin": origin}), made.app[SETTINGS])
    return refused.value


def test_an_untrusted_tls_proxy_is_logged_once_with_what_it_sent_and_what_is_trusted(logs: LogLines) -> None:
    # The peer is not among TRUSTED_PROXIES: its X-Forwarded-Proto (two lines' worth) is not believed.
    made = request({"X-Forwarded-Proto": "https, https, https"}, TRUSTED_PROXIES="10.0.0.0/8, 2001:db8::/32")
    for _ in range(2):
        assert refuse(made, f"https://{HOST}").code == "origin_not_allowed"
    [warning] = logs.events("config.proxy_not_trusted")
    expected: dict[str, Any] = {
        "peer": "192.0.2.1",
        "forwarded_proto": "https, https, ht",
        "trusted_proxies": ["10.0.0.0/8", "2001:db8::/32"],
        "hint": "Pages served over https through a TLS proxy are refused (origin_not_allowed): set TRUSTED_PROXIES "
        "to the proxy's addresses (the ingress controller's or gateway's pods) so X-Forwarded-Proto and "
        "X-Forwarded-For are believed.",
    }
    assert {name: warning.get(name) for name in expected} == expected


def test_several_forwarded_proto_entries_are_logged_comma_separated(logs: LogLines) -> None:
    made = request({"X-Forwarded-Proto": "https,http"})
    refuse(made, f"https://{HOST}")
    [warning] = logs.events("config.proxy_not_trusted")
    assert warning["forwarded_proto"] == "https, http"


def test_a_cross_site_fetch_without_origin_is_refused_naming_the_allowlist() -> None:
    made = request({"Sec-Fetch-Site": "Cross-Site"}, scheme="http")
    with pytest.raises(ProblemError) as refused:
        check_origin(made, made.app[SETTINGS])
    assert refused.value.detail == "Cross-site requests must come from an origin in ALLOWED_ORIGINS."


def test_a_same_site_fetch_without_origin_passes() -> None:
    made = request({"Sec-Fetch-Site": "same-site"}, scheme="http")
    check_origin(made, made.app[SETTINGS])


@pytest.mark.parametrize("origin", ["https://app.example.comX", "https://app.example.comx", "https://app.example.co"])
def test_credentialed_cors_is_granted_to_the_exact_origin_only(origin: str) -> None:
    granted = request({"Origin": "https://app.example.com/"}, scheme="http")
    assert cors_origin(granted, granted.app[SETTINGS]) == "https://app.example.com"
    lookalike = request({"Origin": origin}, scheme="http")
    assert cors_origin(lookalike, lookalike.app[SETTINGS]) is None


def test_cors_headers_keep_what_vary_already_named() -> None:
    made = request({"Origin": "https://app.example.com"}, scheme="http")
    headers: CIMultiDict[str] = CIMultiDict({"Vary": "Accept-Encoding, Cookie"})
    set_cors_headers(headers, made, made.app[SETTINGS])
    assert headers.getall("Vary") == ["Accept-Encoding, Cookie, Origin"]
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("Accept-Encoding,Cookie", "Accept-Encoding, Cookie, Origin"),
        ("Accept-Encoding, origin", "Accept-Encoding, origin"),
        ("ORIGIN", "ORIGIN"),
        ("Cookie Accept", "Cookie Accept, Origin"),
    ],
)
def test_vary_names_origin_once_whatever_it_named_before(before: str, after: str) -> None:
    made = request({}, scheme="http")
    headers: CIMultiDict[str] = CIMultiDict({"Vary": before})
    set_cors_headers(headers, made, made.app[SETTINGS])
    assert headers.getall("Vary") == [after]
