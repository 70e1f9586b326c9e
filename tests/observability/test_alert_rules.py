"""The alert rules shipped in the chart are valid and each alert's unit test passes (promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy/helm/boxoffice/files/prometheus"


@pytest.fixture(autouse=True, scope="module")
def _promtool_installed() -> None:
    assert shutil.which("promtool"), "install the Debian package `prometheus` (.ci/run does)"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120
    )


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_passing_unit_test() -> None:
    tests = sorted(str(p.relative_to(RULES_DIR)) for p in (RULES_DIR / "tests").glob("*.yaml"))
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = (RULES_DIR / "rules.yaml").read_text()
    alerts = {line.split(":", 1)[1].strip() for line in rules.splitlines() if "- alert:" in line}
    tested = "".join((RULES_DIR / t).read_text() for t in tests)
    untested = sorted(a for a in alerts if f"alertname: {a}" not in tested)
    assert not untested, f"alerts without a unit test: {untested}"


def test_every_alert_has_a_runbook_and_severity() -> None:
    groups = yaml.safe_load((RULES_DIR / "rules.yaml").read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"] if "alert" in r):
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key), f"{rule['alert']} lacks {key}"
