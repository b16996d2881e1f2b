"""What one client can write to the log (issue 26, row 3): every field bounded and escaped, and the
refusals no limit charges sampled per client IP, with the count of what was dropped logged."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import structlog
from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.edge.http_server import MAX_HEADER_BYTES
from appwrite_token_exchange.observability.log_bounds import (
    ALL_LINES_PER_WINDOW,
    ALL_REFUSAL_BYTES_PER_WINDOW,
    LINES_PER_WINDOW,
    MAX_FIELD_CHARS,
    MAX_REFUSAL_LINE_BYTES,
    REFUSAL_BYTES_PER_WINDOW,
    WINDOW_SECONDS,
    RefusalSampler,
    bounded,
)
from appwrite_token_exchange.observability.logs import AccessLogger, configure_logging

from tests.support.contract import contract_middleware
from tests.support.service import LogLines, exchange, service_settings

ATTACKER, OTHER = "203.0.113.7", "198.51.100.9"
# Worst case for bytes: each character 4 bytes of UTF-8 (or 2 once escaped and quoted in JSON).
HUGE_ORIGIN = "https://" + "\U0001f600" * ((MAX_HEADER_BYTES - 100) // 4)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def logging_with(clock: Clock, **limits: int) -> LogLines:
    stream = io.StringIO()
    configure_logging("debug", "json", stream, cache_loggers=False, sampler=RefusalSampler(clock=clock, **limits))
    return LogLines(stream)


@pytest.fixture
def serve_big_headers(emulator, aiohttp_server, aiohttp_client, contract_failures):  # type: ignore[no-untyped-def]
    """The service, taking header lines as long as `serve` takes them (32 KiB), with its access log."""

    async def start(**env: str) -> Any:
        app = create_app(service_settings(emulator, **env))
        app.middlewares.insert(0, contract_middleware(contract_failures))
        server = await aiohttp_server(
            app, max_line_size=MAX_HEADER_BYTES, max_field_size=MAX_HEADER_BYTES, access_log_class=AccessLogger
        )
        return await aiohttp_client(server)

    return start


def from_ip(ip: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip, **headers}


async def test_a_flood_of_refused_origins_writes_a_bounded_log(serve_big_headers: Any) -> None:
    clock = Clock()
    logs = logging_with(clock)
    service = await serve_big_headers(TRUSTED_PROXIES="127.0.0.1/32")
    for _ in range(300):
        response = await exchange(service, headers=from_ip(ATTACKER, Origin=HUGE_ORIGIN))
        assert response.status == 403

    written = logs.text.encode()
    assert len(written) <= REFUSAL_BYTES_PER_WINDOW
    denied = logs.events("token.denied")
    assert len(denied) == LINES_PER_WINDOW
    assert all(len(line) <= MAX_REFUSAL_LINE_BYTES for line in written.splitlines())
    assert all(len(event["origin"]) <= MAX_FIELD_CHARS + len(f"…[+{len(HUGE_ORIGIN)}]") for event in denied)
    assert denied[0]["origin"].endswith(f"…[+{len(HUGE_ORIGIN) - MAX_FIELD_CHARS}]")

    # Another client is still heard while the attacker is held.
    await exchange(service, headers=from_ip(OTHER, Origin="https://evil.example"))
    assert [event["client_ip"] for event in logs.events("token.denied")][-1] == OTHER

    # The window over, the next line says how many the attacker's lines were dropped.
    clock.now += WINDOW_SECONDS
    await exchange(service, headers=from_ip(ATTACKER, Origin="https://evil.example"))
    [suppressed] = logs.events("log.suppressed")
    assert (suppressed["client_ip"], suppressed["suppressed"]) == (ATTACKER, 300 - LINES_PER_WINDOW)
    assert logs.events("token.denied")[-1]["client_ip"] == ATTACKER


async def test_charged_outcomes_are_never_sampled(service_factory: Any) -> None:
    logs = logging_with(Clock(), lines_per_window=2)
    service = await service_factory(TRUSTED_PROXIES="127.0.0.1/32", RATE_LIMIT_IP="100/minute")
    for _ in range(5):
        await exchange(service, headers=from_ip(ATTACKER))  # no cookie: session_missing, charged
    assert [event["outcome"] for event in logs.events("token.denied")] == ["session_missing"] * 5


async def test_refusals_past_the_ip_limit_are_sampled(service_factory: Any) -> None:
    logs = logging_with(Clock(), lines_per_window=3)
    service = await service_factory(TRUSTED_PROXIES="127.0.0.1/32", RATE_LIMIT_IP="2/minute")
    statuses = [(await exchange(service, headers=from_ip(ATTACKER))).status for _ in range(10)]
    assert statuses.count(429) == 8
    outcomes = [event["outcome"] for event in logs.events("token.denied")]
    assert outcomes == ["session_missing"] * 2 + ["rate_limited"] * 3


async def test_a_value_cannot_forge_a_line_or_a_terminal_escape(service_factory: Any) -> None:
    logs = logging_with(Clock())
    service = await service_factory()
    forged = 'https://a.example\r\n{"event":"token.issued","user_id":"admin"}\x1b[2J\x9b31m\u2028\u202e'
    # aiohttp's client refuses C0 controls in a header it sends: those go straight to the logger.
    await exchange(service, headers={"Origin": "https://a.example\x9b31m\u2028\u202e"})
    from appwrite_token_exchange.observability import audit

    audit.token_denied("origin_not_allowed", client_ip="192.0.2.1", origin=forged)
    lines = logs.text.splitlines()
    assert all(json.loads(line) for line in lines)
    assert not logs.events("token.issued")
    sent, logged = logs.events("token.denied")
    assert sent["origin"] == "https://a.example\\x9b31m\\u2028\\u202e"
    assert not any(char in logged["origin"] for char in "\r\n\x1b\x9b\u2028\u202e")
    assert logged["origin"].endswith("\\x1b[2J\\x9b31m\\u2028\\u202e")
    assert '\\\\r\\\\n{\\"event\\"' in logs.text


def test_bounded_cuts_after_escaping_and_says_how_much() -> None:
    assert bounded("plain") == "plain"
    assert bounded("\n" * 300) == "\\n" * 128 + "…[+344]"
    assert bounded("x" * 257) == "x" * 256 + "…[+1]"


def test_the_sampler_keeps_a_bounded_number_of_clients() -> None:
    clock = Clock()
    sampler = RefusalSampler(lines_per_window=1, max_clients=100, clock=clock, all_lines_per_window=10_000)
    for n in range(1_000):
        sampler(None, "warning", {"event": "token.denied", "outcome": "origin_not_allowed", "client_ip": f"10.0.{n}"})
    assert sampler.tracked() == 100


def test_a_crowd_of_addresses_writes_a_bounded_log_together() -> None:
    """One refused line from each of 5,000 addresses: ALL_LINES_PER_WINDOW of them are written, the
    rest counted in one `log.suppressed` line for the crowd (`*`) when the window ends."""
    clock = Clock()
    logs = logging_with(clock)
    logger = structlog.get_logger(logger_name="audit")
    for n in range(5_000):
        logger.warning("token.denied", outcome="origin_not_allowed", client_ip=f"10.{n // 250}.{n % 250}.1")
    written = logs.events("token.denied")
    assert len(written) == ALL_LINES_PER_WINDOW
    clock.now += WINDOW_SECONDS
    logger.warning("token.denied", outcome="origin_not_allowed", client_ip="10.99.0.1")  # the next window
    crowd = [line for line in logs.events("log.suppressed") if line["client_ip"] == "*"]
    assert [line["suppressed"] for line in crowd] == [5_000 - ALL_LINES_PER_WINDOW]
    assert len(logs.text.encode()) < ALL_REFUSAL_BYTES_PER_WINDOW + MAX_REFUSAL_LINE_BYTES


async def test_access_lines_carry_the_client_ip_and_are_sampled_per_client(serve_big_headers: Any) -> None:
    """A flood of requests no limit counts (a path that does not exist) writes LINES_PER_WINDOW access
    lines for that client, and another client's lines still come through."""
    clock = Clock()
    logs = logging_with(clock)
    client = await serve_big_headers(TRUSTED_PROXIES="127.0.0.1/32")
    for _ in range(LINES_PER_WINDOW + 20):
        assert (await client.get("/nowhere", headers=from_ip(ATTACKER))).status == 404
    assert (await client.get("/livez", headers=from_ip(OTHER))).status == 200
    lines = logs.events("http.request")
    assert [line["client_ip"] for line in lines] == [ATTACKER] * LINES_PER_WINDOW + [OTHER]
    clock.now += WINDOW_SECONDS
    assert (await client.get("/livez", headers=from_ip(OTHER))).status == 200
    reports = logs.events("log.suppressed")
    assert [(line["client_ip"], line["suppressed"]) for line in reports] == [(ATTACKER, 20)]
