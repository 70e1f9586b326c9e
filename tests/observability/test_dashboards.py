"""The shipped dashboards are what scripts/build_dashboards.py builds, and are well-formed."""

from __future__ import annotations

import importlib.util
import json
import re
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
        assert variables == {"datasource", "cluster", "namespace"}
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


def test_every_panel_query_selects_one_release_of_the_chart_job() -> None:
    """job="boxoffice" plus the cluster and namespace variables on every selector."""
    selector = 'job="boxoffice", cluster=~"$cluster", namespace="$namespace"'
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                selectors = re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\{([^}]*)\}", expr)
                assert selectors, (path.name, panel["title"], expr)
                for matchers in selectors:
                    assert matchers.startswith(selector), (path.name, panel["title"], expr)
                outside = re.sub(r"\{[^}]*\}", "{}", expr)
                bare = re.findall(
                    r"(?<![\w:])(?:celery|boxoffice|http|process|up)[\w:]*(?![\w:{(])", outside
                )
                assert not [b for b in bare if not b.startswith("boxoffice:")], (
                    panel["title"],
                    bare,
                )


def test_the_builder_is_one_module_per_dashboard() -> None:
    modules = {p.stem for p in (ROOT / "scripts/dashboards").glob("*.py")}
    assert {"platform", "bookings", "messaging"} <= modules
    for path in (ROOT / "scripts").rglob("*.py"):
        assert len(path.read_text().splitlines()) < 300, f"{path.name} grew past 300 lines"
