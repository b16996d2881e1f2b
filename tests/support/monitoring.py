"""The monitoring files as data: the alert rules, the dashboard's queries, and the metric names and
label names each PromQL expression reads (parsed with promql-parser, not matched with a regex)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_RULE = ROOT / "deploy/k8s/components/monitoring/prometheusrule.yaml"
RULE_TESTS = ROOT / "tests/alerts/rules.test.yaml"
DASHBOARD = ROOT / "deploy/grafana/token-exchange.json"
RUNBOOK = ROOT / "docs/runbook.md"

# Grafana's variables, replaced by values of the right kind before the query is parsed.
_GRAFANA_VARIABLES = {
    "$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "${__rate_interval}": "5m",
}
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$", re.DOTALL)


@dataclass(frozen=True)
class Selector:
    """One vector selector of an expression: the metric it reads and the labels it matches on."""

    metric: str
    labels: frozenset[str]


def prometheus_rule() -> dict[str, Any]:
    return dict(yaml.safe_load(PROMETHEUS_RULE.read_text()))


def rule_groups() -> dict[str, Any]:
    """What promtool reads: the PrometheusRule's spec (a Prometheus rule file's `groups`)."""
    return dict(prometheus_rule()["spec"])


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups()["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    found = [
        (f"panel {panel.get('title')!r} target {target.get('refId')}", str(target["expr"]))
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = str(query["query"] if isinstance(query, dict) else query)
        match = _LABEL_VALUES.match(text.strip())
        if match is None:
            found.append((f"variable {variable['name']}", text))
        elif match["selector"]:
            found.append((f"variable {variable['name']}", match["selector"]))
    return found


def grafana_to_promql(query: str) -> str:
    """A dashboard query with its variables replaced: intervals by durations, the rest by a regex."""
    for name, value in _GRAFANA_VARIABLES.items():
        query = query.replace(name, value)
    return _VARIABLE.sub(".*", query)


def selectors(expr: str) -> list[Selector]:
    """Every vector selector in `expr`, with or without a range; raises ValueError if it does not parse."""
    return _selectors_in(promql_parser.parse(expr))


def groupings(expr: str) -> list[tuple[frozenset[str], list[Selector]]]:
    """For every `by (...)` aggregation in `expr`: its labels and the selectors it aggregates."""
    found: list[tuple[frozenset[str], list[Selector]]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None \
                and node.modifier.type == promql_parser.AggModifierType.By:
            found.append((frozenset(node.modifier.labels), _selectors_in(node.expr)))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def _selectors_in(tree: Any) -> list[Selector]:
    found: list[Selector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = list(node.matchers.matchers)
            for group in node.matchers.or_matchers or []:
                matchers.extend(group)
            name = node.name or next((m.value for m in matchers if m.name == "__name__"), "")
            found.append(Selector(name, frozenset(m.name for m in matchers) - {"__name__"}))

    promql_parser.walk(tree, visit)
    return found
