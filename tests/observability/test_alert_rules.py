"""The alert rules shipped in the chart: valid, unit-tested with the chart's label sets, scoped."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.chart_targets import COMPONENTS, labels_by_component

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy/helm/boxoffice/files/prometheus"
RUNBOOK_BASE = "https://boxoffice.invalid/docs/runbooks/"
# A metric's own label that shares a target label's name: the relay's dead-letter gauge names the
# consuming service, and the relay is scraped by the PodMonitor, whose targets have no `service`.
OWN_LABELS = {"boxoffice_dead_letters": {"service"}}
TARGET_LABELS = {
    "job",
    "namespace",
    "component",
    "pod",
    "container",
    "endpoint",
    "service",
    "instance",
}


@pytest.fixture(autouse=True, scope="module")
def _promtool_installed() -> None:
    assert shutil.which("promtool"), "install the Debian package `prometheus` (.ci/run does)"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120
    )


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((RULES_DIR / "rules.yaml").read_text())["groups"]
    return [r for g in groups for r in g["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [r for r in rules() if "alert" in r]


def unit_tests() -> list[dict[str, Any]]:
    return [
        t
        for path in sorted((RULES_DIR / "tests").glob("*.yaml"))
        for t in yaml.safe_load(path.read_text())["tests"]
    ]


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_passing_unit_test_that_fires_it() -> None:
    tests = sorted(str(p.relative_to(RULES_DIR)) for p in (RULES_DIR / "tests").glob("*.yaml"))
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    fired = {
        case["alertname"]
        for t in unit_tests()
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    untested = sorted({a["alert"] for a in alerts()} - fired)
    assert not untested, f"alerts no unit test makes fire: {untested}"


def test_every_alert_is_critical_or_warning_with_a_runbook_url() -> None:
    for rule in alerts():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        for key in ("summary", "description"):
            assert rule["annotations"].get(key), f"{rule['alert']} lacks {key}"
        assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}{rule['alert']}.md"


def test_every_rule_selects_the_chart_job_and_keeps_the_namespace() -> None:
    """Each selector names job="boxoffice"; every aggregation keeps `namespace` (two releases)."""
    job = {labels["job"] for labels in labels_by_component().values()}
    assert job == {"boxoffice"}
    for rule in rules():
        name = rule.get("alert") or rule["record"]
        expr = rule["expr"]
        selectors = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr)
        assert selectors or "boxoffice:" in expr, name
        for metric, matchers in selectors:
            if metric.startswith("boxoffice:"):
                continue  # recorded by the rules above, which carry namespace and job
            assert 'job="boxoffice"' in matchers, f"{name}: {metric}{{{matchers}}}"
        for grouping in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr):
            assert "namespace" in grouping, f"{name} aggregates across namespaces: {grouping}"


def test_unit_tests_use_the_label_sets_the_rendered_chart_gives() -> None:
    derived = labels_by_component()
    assert set(derived) == set(COMPONENTS)
    namespaces = set()
    checked = 0
    for t in unit_tests():
        for item in t["input_series"]:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', item["series"]))
            if "component" not in labels:
                continue
            target = derived[labels["component"]]
            metric = item["series"].split("{", 1)[0]
            own = OWN_LABELS.get(metric, set())
            extra = {k for k in labels if k in TARGET_LABELS - own} - set(target)
            assert not extra, f"{item['series']}: the chart's targets have no {extra}"
            for key in ("job", "container", "endpoint"):
                if key in labels:
                    assert labels[key] == target[key], item["series"]
            if "instance" in labels:
                port = labels["instance"].rsplit(":", 1)[1]
                assert port == target["instance"].rsplit(":", 1)[1], item["series"]
            if "service" in labels and "service" not in own:
                assert labels["service"].endswith(target["service"].split("-", 1)[1])
            namespaces.add(labels["namespace"])
            checked += 1
    assert checked > 30
    assert len(namespaces) >= 2, "the unit tests should hold two releases"
