"""Every metric the alerts and the dashboard read exists in a live scrape of the real service.

`token-exchange serve` and `token-exchange emulator` run as processes, with a real redis-server as
the state backend; the test drives exchanges (issued, refused), one relayed socket, an Appwrite
failure that opens the circuit breaker and a Redis that starts asking for a password, so that the
labelled series exist too, then scrapes /metrics. Each PromQL expression is parsed
(tests/support/monitoring.py) for the metrics it selects, the labels it matches on and groups by."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import aiohttp
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.support.monitoring import (
    Selector,
    alerts,
    dashboard,
    dashboard_queries,
    grafana_to_promql,
    groupings,
    panels,
    selectors,
)
from tests.support.processes import free_port, running
from tests.support.redis_server import redis_server

PROJECT = "scrapeproject"
ORIGIN = "https://app.example.com"
# Labels Prometheus adds to every scraped series (the ServiceMonitor's target labels).
TARGET_LABELS = frozenset({"namespace", "pod", "service", "endpoint", "container", "job", "instance"})
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


class Scrape:
    """Series names of one /metrics text, and the label names each carries."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.labels: dict[str, set[str]] = {}
        for family in text_string_to_metric_families(text):
            # Families without samples yet (a labelled counter nothing has counted) still exist.
            for suffix in _SUFFIXES.get(family.type, ("",)):
                self.labels.setdefault(family.name + suffix, set())
            for sample in family.samples:
                self.labels.setdefault(sample.name, set()).update(sample.labels)

    def problems(self, where: str, expr: str) -> list[str]:
        found = selectors(expr)
        problems = [] if found else [f"{where}: selects no metric"]
        for selector in found:
            if selector.metric not in self.labels:
                problems.append(f"{where}: {selector.metric} is not in /metrics")
            else:
                problems += [f"{where}: {selector.metric} has no label {label}"
                             for label in self._unknown(selector.labels, [selector])]
        for labels, inner in groupings(expr):
            problems += [f"{where}: grouped by {label}, which none of {[s.metric for s in inner]} has"
                         for label in self._unknown(labels, inner)]
        return problems

    def _unknown(self, labels: frozenset[str], inner: list[Selector]) -> list[str]:
        known = set(TARGET_LABELS).union(*(self.labels.get(s.metric, set()) for s in inner))
        return sorted(labels - known)


async def _drive_and_scrape(redis_url: str) -> str:
    emulator_port, service_port = free_port(), free_port()
    emulator_url, service_url = f"http://127.0.0.1:{emulator_port}", f"http://127.0.0.1:{service_port}"
    env = {
        "APPWRITE_ENDPOINT": f"{emulator_url}/v1", "APPWRITE_PROJECT_ID": PROJECT, "HOST": "127.0.0.1",
        "PORT": str(service_port), "ALLOWED_ORIGINS": ORIGIN, "REDIS_URL": redis_url,
        "STATE_HASH_KEY": "scrape-test-hash-key-0123456789", "CIRCUIT_FAILURE_THRESHOLD": "1",
        "CIRCUIT_COOLDOWN_SECONDS": "60", "LOG_LEVEL": "warning",
        "APPWRITE_WEBHOOK_SIGNATURE_KEY": "scrape-webhook-key", "APPWRITE_WEBHOOK_URL": f"{service_url}/hook",
    }
    async with (
        running("emulator", "--port", str(emulator_port), env={"EMULATOR_PROJECT_ID": PROJECT},
                ready_url=f"{emulator_url}/v1/health/version"),
        running("serve", env=env, ready_url=f"{service_url}/livez"),
        aiohttp.ClientSession() as http,
    ):
        async with http.post(f"{emulator_url}/_emulator/users", json={"email": "m@example.com",
                                                                       "password": "password-1"}) as r:
            user_id = (await r.json())["userId"]
        async with http.post(f"{emulator_url}/_emulator/sessions", json={"userId": user_id}) as r:
            cookie = f"a_session_{PROJECT}={(await r.json())['secret']}"
        token_url = f"{service_url}/v1/realtime/token"
        async with http.post(token_url, headers={"X-CSRF": "1", "Origin": ORIGIN, "Cookie": cookie}) as r:
            assert r.status == 200
        async with http.post(token_url, headers={"X-CSRF": "1", "Origin": ORIGIN}) as r:
            assert (r.status, (await r.json())["code"]) == (401, "session_missing")
        # One relayed socket: opened, a ping relayed, closed by the page.
        async with http.ws_connect(f"{service_url}/v1/realtime?project={PROJECT}&channels[]=account",
                                   headers={"Origin": ORIGIN, "Cookie": cookie}) as ws:
            assert json.loads((await ws.receive(timeout=5)).data)["type"] == "connected"
            await ws.send_str(json.dumps({"type": "ping"}))
            await ws.receive(timeout=5)
        # A forged webhook: revocation_refusals_total{reason="signature"}.
        async with http.post(f"{service_url}/v1/realtime/webhooks/appwrite", data=b"{}",
                             headers={"X-Appwrite-Webhook-Signature": "forged"}) as r:
            assert r.status == 401
        # Appwrite fails once: upstream_unavailable, and the breaker (threshold 1) opens.
        async with http.post(f"{emulator_url}/_emulator/faults", json={"kind": "status", "status": 503,
                                                                        "times": 1}) as r:
            assert r.status < 300
        async with http.post(token_url, headers={"X-CSRF": "1", "Origin": ORIGIN, "Cookie": cookie}) as r:
            assert (r.status, (await r.json())["code"]) == (503, "upstream_unavailable")
        # Redis starts asking for a password REDIS_URL lacks: state_backend_error_total{cause="auth"}.
        await asyncio.to_thread(_require_password, redis_url)
        for _ in range(50):  # until the service has reconnected and met NOAUTH, and the relay's close is counted
            async with http.post(token_url, headers={"X-CSRF": "1", "Origin": ORIGIN, "Cookie": cookie}):
                pass
            async with http.get(f"{service_url}/metrics") as r:
                assert r.status == 200
                text = await r.text()
            if all(line in text for line in _AWAITED):
                return text
            await asyncio.sleep(0.2)
        raise AssertionError(f"never scraped all of {_AWAITED}")


_AWAITED = ('token_exchange_relay_closes_total{reason="client_closed"} 1.0',
            'token_exchange_state_backend_error_total{cause="auth"}')


def _require_password(redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    admin.config_set("requirepass", "now-required")
    admin.execute_command("CLIENT", "KILL", "TYPE", "normal")
    admin.close()


@pytest.fixture(scope="module")
def scrape() -> Iterator[Scrape]:
    with redis_server() as redis:
        yield Scrape(asyncio.run(_drive_and_scrape(redis.url)))


def test_the_scrape_saw_what_the_test_drove(scrape: Scrape) -> None:
    for line in (
        'token_exchange_token_requests_total{code="issued"} 1.0',
        'token_exchange_token_requests_total{code="upstream_unavailable"}',
        'token_exchange_state_backend_error_total{cause="auth"}',
        'token_exchange_upstream_responses_total{status="503"} 1.0',
        'token_exchange_state_backend_info{backend="redis"} 1.0',
        "token_exchange_circuit_state 2.0",
        "token_exchange_relay_open_sockets 0.0",
        "token_exchange_relay_max_sockets 10000.0",
    ):
        assert line in scrape.text, line


def test_every_metric_the_alerts_read_is_served(scrape: Scrape) -> None:
    problems = [p for rule in alerts() for p in scrape.problems(f"alert {rule['alert']}", rule["expr"])]
    assert problems == []
    used = {s.metric for rule in alerts() for s in selectors(rule["expr"])}
    assert len(used) >= 8


def test_every_metric_the_dashboard_reads_is_served(scrape: Scrape) -> None:
    queries = dashboard_queries(dashboard())
    assert len(queries) >= 20
    problems = [p for where, query in queries for p in scrape.problems(where, grafana_to_promql(query))]
    assert problems == []


def test_the_check_catches_a_wrong_name_or_label(scrape: Scrape) -> None:
    assert scrape.problems("x", "rate(token_exchange_token_request_total[5m])") == [
        "x: token_exchange_token_request_total is not in /metrics"
    ]
    assert scrape.problems("x", 'token_exchange_state_backend_error_total{reason="auth"}') == [
        "x: token_exchange_state_backend_error_total has no label reason"
    ]
    assert scrape.problems("x", "sum by (cause) (rate(token_exchange_relay_closes_total[5m]))") == [
        "x: grouped by cause, which none of ['token_exchange_relay_closes_total'] has"
    ]
    with pytest.raises(ValueError):
        scrape.problems("x", "sum(rate(token_exchange_relay_closes_total[5m])")


def test_the_dashboard_is_templated_on_its_datasource() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    templated = {"type": "prometheus", "uid": "${datasource}"}
    ids = []
    for panel in panels(board):
        ids.append(panel["id"])
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == templated, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", templated) == templated, panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == templated, variable["name"]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert board["uid"] and board["title"]
