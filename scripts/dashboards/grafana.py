"""Grafana JSON pieces every dashboard shares: panels, rows, variables, the dashboard itself.

Every query selects `{SELECTOR}`: the job every Boxoffice series carries (the monitors'
jobLabel) and the `cluster`/`namespace` variables, so a dashboard shows one release.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

RATE = "$__rate_interval"
DS = {"type": "prometheus", "uid": "${datasource}"}
JOB = "boxoffice"
SELECTOR = f'job="{JOB}", cluster=~"$cluster", namespace="$namespace"'


def eq(label: str, value: str) -> str:
    """One equality matcher: `label="value"`."""
    return f'{label}="{value}"'


def sel(extra: str = "") -> str:
    """The label matchers of one release's series, plus `extra` matchers."""
    return "{" + SELECTOR + (", " + extra if extra else "") + "}"


@dataclass
class Panel:
    """A panel's content; its position comes from the Layout it is added to."""

    title: str
    targets: list[tuple[str, str]]
    kind: str = "timeseries"
    unit: str = "short"
    desc: str = ""
    stack: bool = False
    thresholds: list[dict[str, Any]] | None = None
    max_: float | None = None
    w: int = 12
    h: int = 8


def green_red(limit: float) -> list[dict[str, Any]]:
    return [{"color": "green", "value": None}, {"color": "red", "value": limit}]


def red_green(limit: float) -> list[dict[str, Any]]:
    return [{"color": "red", "value": None}, {"color": "green", "value": limit}]


def _quantile_expr(q: float, metric: str, by: str, extra: str = "") -> str:
    grp = f"le{', ' + by if by else ''}"
    return f"histogram_quantile({q}, sum by ({grp}) (rate({metric}_bucket{sel(extra)}[{RATE}])))"


def quantiles(
    metric: str, by: str = "", qs: tuple[float, ...] = (0.5, 0.95, 0.99), extra: str = ""
) -> list[tuple[str, str]]:
    """histogram_quantile targets over `metric`'s buckets, optionally per `by` label."""
    return [
        (
            _quantile_expr(q, metric, by, extra),
            f"p{int(q * 100)}" + (f" {{{{{by}}}}}" if by else ""),
        )
        for q in qs
    ]


def quantile(q: float, metric: str, by: str = "") -> list[tuple[str, str]]:
    """One histogram_quantile target over `metric`'s buckets, a series per `by` label or `pNN`."""
    legend = f"{{{{{by}}}}}" if by else f"p{int(q * 100)}"
    return [(_quantile_expr(q, metric, by), legend)]


def _render_panel(pid: int, p: Panel, x: int, y: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": p.w, "h": p.h},
        "targets": [
            {
                "refId": chr(65 + i),
                "datasource": DS,
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for i, (expr, legend) in enumerate(p.targets)
        ],
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "options": {},
    }
    if p.kind == "timeseries":
        out["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "stacking": {"mode": "normal" if p.stack else "none", "group": "A"},
        }
        out["options"] = {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif p.kind == "stat":
        out["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "auto",
        }
        for t in out["targets"]:
            t["instant"] = True
            t["range"] = False
    if p.thresholds:
        out["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": p.thresholds}
    if p.max_ is not None:
        out["fieldConfig"]["defaults"]["max"] = p.max_
    return out


@dataclass
class Layout:
    """Places rows and panels left to right, top to bottom, numbering them as it goes."""

    panels: list[dict[str, Any]] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_h: int = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "id": self._next_id(),
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": self._y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        self._y += 1

    def add(self, *panels: Panel) -> None:
        for p in panels:
            if self._x + p.w > 24:
                self._newline()
            self.panels.append(_render_panel(self._next_id(), p, self._x, self._y))
            self._x += p.w
            self._row_h = max(self._row_h, p.h)

    def _newline(self) -> None:
        self._y += self._row_h
        self._x = 0
        self._row_h = 0


def _query_variable(name: str, label: str, query: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "current": {},
        "hide": 0,
        "refresh": 2,
        "sort": 1,
        "regex": "",
        "options": [],
        **extra,
    }


def variables() -> list[dict[str, Any]]:
    """datasource, cluster (All = no cluster label needed) and namespace (one release)."""
    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "options": [],
        },
        _query_variable(
            "cluster",
            "Cluster",
            f'label_values(up{{job="{JOB}"}}, cluster)',
            includeAll=True,
            allValue=".*",
            multi=False,
        ),
        _query_variable(
            "namespace",
            "Namespace",
            f'label_values(up{{job="{JOB}", cluster=~"$cluster"}}, namespace)',
            includeAll=False,
            multi=False,
        ),
    ]


def dashboard(
    uid: str, title: str, description: str, layout: Layout, tags: list[str]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["boxoffice", *tags],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-3h", "to": "now"},
        "refresh": "30s",
        "timezone": "utc",
        "templating": {"list": variables()},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "Boxoffice",
                "type": "dashboards",
                "tags": ["boxoffice"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "panels": layout.panels,
    }


def render(built: dict[str, Any]) -> str:
    """The JSON text that ships."""
    return json.dumps(built, indent=2, ensure_ascii=False) + "\n"
