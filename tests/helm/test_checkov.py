"""checkov over the rendered manifests and the Dockerfile, hadolint over the Dockerfile:
no failed check without a written reason in tests/helm/checkov-skips.yaml."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helm.chart import ROOT, VALUE_SETS, render

SKIPS: dict[str, dict[str, str]] = yaml.safe_load(
    (Path(__file__).parent / "checkov-skips.yaml").read_text()
)
TOOLS = Path(__file__).parent / "tools"
# `uv run` tells its children where uv is; fall back to PATH.
CHART_TOOL = [os.environ.get("UV", "uv"), "run", "--quiet", "--project", str(TOOLS), "--frozen"]


def checkov(target: list[str], framework: str) -> list[dict[str, object]]:
    result = subprocess.run(
        [
            *CHART_TOOL,
            "checkov",
            *target,
            "--framework",
            framework,
            "--skip-download",
            "--compact",
            "--quiet",
            "--output",
            "json",
            "--skip-check",
            ",".join(SKIPS[framework]),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=600,
    )
    assert result.stdout, result.stderr[-3000:]
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def failures(reports: list[dict[str, object]]) -> list[str]:
    return [
        f"{f['check_id']} {f['check_name']}: {f['resource']} ({Path(f['file_path']).name})"
        for report in reports
        for f in report.get("results", {}).get("failed_checks", [])  # type: ignore[attr-defined]
    ]


def test_every_skipped_check_has_a_reason() -> None:
    assert set(SKIPS) == {"kubernetes", "dockerfile"}
    for checks in SKIPS.values():
        for check, reason in checks.items():
            assert check.startswith(("CKV_K8S_", "CKV_DOCKER_"))
            assert len(reason.split()) >= 10, check


@pytest.mark.timeout(600)
def test_checkov_finds_nothing_unexplained_in_the_manifests(tmp_path: Path) -> None:
    for value_set in ("all-features", "in-chart-datastores", "defaults"):
        objects = render(VALUE_SETS[value_set]).objects
        (tmp_path / f"{value_set}.yaml").write_text(yaml.safe_dump_all(list(objects)))
    reports = checkov(["--directory", str(tmp_path)], "kubernetes")
    assert failures(reports) == []
    passed = sum(report["summary"]["passed"] for report in reports)  # type: ignore[index]
    assert passed > 500  # checkov really looked at the objects


@pytest.mark.timeout(600)
def test_checkov_and_hadolint_find_nothing_unexplained_in_the_dockerfile() -> None:
    reports = checkov(["--file", "Dockerfile"], "dockerfile")
    assert failures(reports) == []
    assert sum(report["summary"]["passed"] for report in reports) > 50  # type: ignore[index]
    lint = subprocess.run(
        [*CHART_TOOL, "hadolint", "Dockerfile"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
