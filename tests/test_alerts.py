"""The alert rules (deploy/k8s/components/monitoring/prometheusrule.yaml) with promtool: valid, and each
alert unit-tested (tests/alerts/rules.test.yaml); every alert explained in docs/runbook.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.monitoring import RULE_TESTS, RUNBOOK, alerts, prometheus_rule, rule_groups

# Installed by scripts/test (Debian's prometheus package); a missing one is a failure, not a skip.
PROMTOOL = shutil.which("promtool")


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "promtool is missing: scripts/test installs it (apt-get install prometheus)"
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def _rules_dir(tmp_path: Path, groups: dict[str, object]) -> Path:
    """rules.yaml (the rule file promtool reads) next to a copy of the unit tests."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups, sort_keys=False))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    return tmp_path


def test_the_prometheus_rule_is_a_prometheus_operator_resource() -> None:
    resource = prometheus_rule()
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert set(resource["spec"]) == {"groups"}


@pytest.mark.tools
def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    done = _promtool("check", "rules", "rules.yaml", cwd=_rules_dir(tmp_path, rule_groups()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


@pytest.mark.tools
def test_promtool_unit_tests_pass(tmp_path: Path) -> None:
    done = _promtool("test", "rules", RULE_TESTS.name, cwd=_rules_dir(tmp_path, rule_groups()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test_that_sees_it_fire() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert tested == {rule["alert"] for rule in alerts()}


@pytest.mark.tools
@pytest.mark.parametrize("name", [rule["alert"] for rule in alerts()])
def test_the_unit_tests_fail_when_an_alert_never_fires(tmp_path: Path, name: str) -> None:
    """Each alert's expression replaced by one that is never true: its unit test must notice."""
    groups = rule_groups()
    for group in groups["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                rule["expr"] = "vector(1) < 0"
    done = _promtool("test", "rules", RULE_TESTS.name, cwd=_rules_dir(tmp_path, groups))
    assert done.returncode != 0
    assert f"alertname: {name}," in done.stdout + done.stderr


def test_every_alert_says_how_bad_it_is_and_where_its_runbook_is() -> None:
    anchors = {
        re.sub(r"[^a-z0-9-]", "", heading.strip().lower().replace(" ", "-"))
        for heading in re.findall(r"^## (.+)$", RUNBOOK.read_text(), re.MULTILINE)
    }
    for rule in alerts():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        assert annotations["runbook"] == f"docs/runbook.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in anchors, f"docs/runbook.md has no section for {rule['alert']}"
