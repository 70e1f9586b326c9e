"""The shipped dashboards are what scripts/build_dashboards.py builds, and are well-formed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy/helm/boxoffice/files/dashboards"


def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_dashboards", ROOT / "scripts/build_dashboards.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_json_matches_the_builder() -> None:
    build = builder()
    built = build.build()
    assert {p.stem for p in DASHBOARDS.glob("*.json")} == set(built)
    for name, dashboard in built.items():
        shipped = (DASHBOARDS / f"{name}.json").read_text()
        assert shipped == build.render(dashboard), f"{name}.json is stale: run make dashboards"


def test_dashboards_are_well_formed_for_grafana() -> None:
    uids = set()
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] not in uids
        uids.add(dashboard["uid"])
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        assert variables == {"datasource"}
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
