"""checkov over the rendered manifests: no failed check without a written reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helm.chart import ROOT, VALUE_SETS, render

SKIPS: dict[str, str] = yaml.safe_load((Path(__file__).parent / "checkov-skips.yaml").read_text())
TOOLS = Path(__file__).parent / "tools"


def test_every_skipped_check_has_a_reason() -> None:
    assert SKIPS
    for check, reason in SKIPS.items():
        assert check.startswith("CKV_K8S_")
        assert len(reason.split()) >= 10, check


@pytest.mark.timeout(600)
def test_checkov_finds_nothing_unexplained(tmp_path: Path) -> None:
    for value_set in ("all-features", "in-chart-datastores", "defaults"):
        objects = render(VALUE_SETS[value_set]).objects
        (tmp_path / f"{value_set}.yaml").write_text(yaml.safe_dump_all(list(objects)))
    result = subprocess.run(
        [
            "uv",
            "run",
            "--quiet",
            "--project",
            str(TOOLS),
            "--frozen",
            "checkov",
            "--directory",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--compact",
            "--quiet",
            "--output",
            "json",
            "--skip-check",
            ",".join(SKIPS),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=600,
    )
    assert result.stdout, result.stderr[-3000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{f['check_id']} {f['check_name']}: {f['resource']} ({Path(f['file_path']).name})"
        for report in reports
        for f in report.get("results", {}).get("failed_checks", [])
    ]
    assert failed == []
    passed = sum(report["summary"]["passed"] for report in reports)
    assert passed > 500  # checkov really looked at the objects
