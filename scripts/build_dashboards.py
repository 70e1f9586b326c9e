# ruff: noqa: E501 - PromQL reads best on one line
"""Build the Grafana dashboards in deploy/helm/boxoffice/files/dashboards/ (`make dashboards`).

The JSON files are what ships; this script is how they are kept consistent. Edit here, run it,
commit both. tests/observability checks the files match it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "deploy/helm/boxoffice/files/dashboards"
R = "$__rate_interval"
DS = {"type": "prometheus", "uid": "${datasource}"}


def panel(
    pid: int,
    title: str,
    targets: list[tuple[str, str]],
    x: int,
    y: int,
    w: int = 12,
    h: int = 8,
    kind: str = "timeseries",
    unit: str = "short",
    desc: str = "",
    stack: bool = False,
    thresholds: list[dict[str, Any]] | None = None,
    max_: float | None = None,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [
            {
                "refId": chr(65 + i),
                "datasource": DS,
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        }
        p["options"] = {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif kind == "stat":
        p["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "auto",
        }
        for t in p["targets"]:
            t["instant"] = True
            t["range"] = False
    if thresholds:
        p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": thresholds}
    if max_ is not None:
        p["fieldConfig"]["defaults"]["max"] = max_
    return p


def row(pid: int, title: str, y: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        "panels": [],
    }


def green_red(limit: float) -> list[dict[str, Any]]:
    return [{"color": "green", "value": None}, {"color": "red", "value": limit}]


def dashboard(
    uid: str, title: str, description: str, panels: list[dict[str, Any]], tags: list[str]
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
        "templating": {
            "list": [
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
                }
            ]
        },
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
            {"title": "Boxoffice", "type": "dashboards", "tags": ["boxoffice"], "asDropdown": True}
        ],
        "panels": panels,
    }


def quantiles(
    metric: str, by: str = "", qs: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> list[tuple[str, str]]:
    grp = f"le{', ' + by if by else ''}"
    return [
        (
            f"histogram_quantile({q}, sum by ({grp}) (rate({metric}_bucket[{R}])))",
            f"p{int(q * 100)}" + (f" {{{{{by}}}}}" if by else ""),
        )
        for q in qs
    ]


def build() -> dict[str, dict[str, Any]]:
    """Every dashboard by file name."""
    overview: list[dict[str, Any]] = []
    overview.append(row(1, "API (booking) — rate, errors, duration", 0))
    overview += [
        panel(
            2,
            "Requests / s by handler",
            [(f"sum by (handler) (rate(http_requests_total[{R}]))", "{{handler}}")],
            0,
            1,
            unit="reqps",
            stack=True,
        ),
        panel(
            3,
            "5xx error ratio",
            [
                (
                    f'(sum(rate(http_requests_total{{status="5xx"}}[{R}])) or vector(0)) / clamp_min(sum(rate(http_requests_total[{R}])), 1e-9)',
                    "5xx ratio",
                ),
                (
                    f'(sum(rate(http_requests_total{{status="4xx"}}[{R}])) or vector(0)) / clamp_min(sum(rate(http_requests_total[{R}])), 1e-9)',
                    "4xx ratio",
                ),
            ],
            12,
            1,
            unit="percentunit",
        ),
        panel(
            4, "Latency (all handlers)", quantiles("http_request_duration_seconds"), 0, 9, unit="s"
        ),
        panel(
            5,
            "p99 latency by handler",
            [
                (
                    f"histogram_quantile(0.99, sum by (le, handler) (rate(http_request_duration_seconds_bucket[{R}])))",
                    "{{handler}}",
                )
            ],
            12,
            9,
            unit="s",
        ),
        panel(
            6,
            "Error budget burn rate (1h, SLO 99.9%)",
            [("boxoffice:http_request_errors:ratio_rate1h / 0.001", "burn rate")],
            0,
            17,
            w=8,
            kind="stat",
            thresholds=green_red(1),
        ),
        panel(
            7,
            "Requests slower than 300 ms (5m)",
            [("boxoffice:http_request_slow:ratio_rate5m", "slow ratio")],
            8,
            17,
            w=8,
            kind="stat",
            unit="percentunit",
            thresholds=green_red(0.01),
        ),
        panel(
            8,
            "Requests in flight",
            [("sum(http_requests_in_progress)", "in flight")],
            16,
            17,
            w=8,
            kind="stat",
        ),
    ]
    overview.append(row(9, "Workers and queues", 25))
    overview += [
        panel(
            10,
            "Workers up",
            [("sum by (hostname) (celery_worker_up)", "{{hostname}}")],
            0,
            26,
            w=8,
            thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
        ),
        panel(
            11,
            "Queue depth",
            [("max by (queue_name) (celery_queue_length)", "{{queue_name}}")],
            8,
            26,
            w=16,
        ),
        panel(
            12,
            "Tasks succeeded / s by task",
            [(f"sum by (name) (rate(celery_task_succeeded_total[{R}]))", "{{name}}")],
            0,
            34,
            unit="ops",
            stack=True,
        ),
        panel(
            13,
            "Tasks failed / s by task",
            [(f"sum by (name) (rate(celery_task_failed_total[{R}]))", "{{name}}")],
            12,
            34,
            unit="ops",
        ),
        panel(
            14,
            "Task run time p95 by task",
            [
                (
                    f"histogram_quantile(0.95, sum by (le, name) (rate(celery_task_runtime_seconds_bucket[{R}])))",
                    "{{name}}",
                )
            ],
            0,
            42,
            unit="s",
        ),
        panel(
            15,
            "Queue wait p95 by queue",
            [
                (
                    f"histogram_quantile(0.95, sum by (le, queue_name) (rate(celery_task_queue_wait_seconds_bucket[{R}])))",
                    "{{queue_name}}",
                )
            ],
            12,
            42,
            unit="s",
        ),
    ]
    overview.append(row(16, "Processes", 50))
    overview += [
        panel(
            17,
            "Scrape targets up",
            [
                (
                    'up{job=~".*(booking|api|relay|notifier|reaper|scheduler).*"}',
                    "{{job}} {{instance}}",
                )
            ],
            0,
            51,
            w=8,
        ),
        panel(
            18,
            "CPU by process",
            [(f"rate(process_cpu_seconds_total[{R}])", "{{job}} {{instance}}")],
            8,
            51,
            w=8,
            unit="percentunit",
        ),
        panel(
            19,
            "Resident memory by process",
            [("process_resident_memory_bytes", "{{job}} {{instance}}")],
            16,
            51,
            w=8,
            unit="bytes",
        ),
    ]
    platform = dashboard(
        "boxoffice-platform",
        "Boxoffice / Platform overview",
        "RED for the API and the workers, queue depths, workers up, processes.",
        overview,
        ["platform"],
    )

    # ---------------- bookings
    booking_panels: list[dict[str, Any]] = []
    booking_panels.append(row(1, "Now", 0))
    booking_panels += [
        panel(
            2,
            "Holds / s",
            [(f'sum(rate(boxoffice_holds_total{{result="created"}}[{R}]))', "holds")],
            0,
            1,
            w=6,
            h=5,
            kind="stat",
            unit="ops",
        ),
        panel(
            3,
            "Conflict ratio",
            [
                (
                    f'(sum(rate(boxoffice_holds_total{{result="conflict"}}[{R}])) or vector(0)) / clamp_min(sum(rate(boxoffice_holds_total[{R}])), 1e-9)',
                    "conflicts",
                )
            ],
            6,
            1,
            w=6,
            h=5,
            kind="stat",
            unit="percentunit",
        ),
        panel(
            4,
            "Confirmations (24h)",
            [("sum(increase(boxoffice_confirmations_total[24h]))", "confirmed")],
            12,
            1,
            w=6,
            h=5,
            kind="stat",
        ),
        panel(
            5,
            "Expiry lag p99",
            [
                (
                    f"histogram_quantile(0.99, sum by (le) (rate(boxoffice_expiry_lag_seconds_bucket[{R}])))",
                    "p99",
                )
            ],
            18,
            1,
            w=6,
            h=5,
            kind="stat",
            unit="s",
            thresholds=green_red(1.5),
        ),
    ]
    booking_panels.append(row(6, "Flow", 6))
    booking_panels += [
        panel(
            7,
            "Hold attempts / s by result",
            [(f"sum by (result) (rate(boxoffice_holds_total[{R}]))", "{{result}}")],
            0,
            7,
            unit="ops",
            stack=True,
        ),
        panel(
            8,
            "Confirmations, cancellations, expiries / s",
            [
                (f"sum(rate(boxoffice_confirmations_total[{R}]))", "confirmed"),
                (f"sum(rate(boxoffice_cancellations_total[{R}]))", "cancelled"),
                (f"sum(rate(boxoffice_holds_expired_total[{R}]))", "expired"),
            ],
            12,
            7,
            unit="ops",
        ),
        panel(
            9,
            "Hold → confirmation conversion (1h)",
            [
                (
                    'sum(increase(boxoffice_confirmations_total[1h])) / clamp_min(sum(increase(boxoffice_holds_total{result="created"}[1h])), 1)',
                    "conversion",
                )
            ],
            0,
            15,
            unit="percentunit",
        ),
        panel(
            10,
            "Revenue captured per hour (minor units) by currency",
            [("sum by (currency) (increase(boxoffice_revenue_minor_total[1h]))", "{{currency}}")],
            12,
            15,
        ),
    ]
    booking_panels.append(row(11, "Expiry", 23))
    booking_panels += [
        panel(
            12,
            "Expiry lag (expires_at → EXPIRED)",
            quantiles("boxoffice_expiry_lag_seconds"),
            0,
            24,
            unit="s",
            desc="SLO: p99 under 1.5 s. Seats are free at expires_at regardless; this is how late the reaper marks and announces it.",
        ),
        panel(
            13,
            "Holds expired per sweep batch",
            [
                (
                    f'sum(rate(boxoffice_holds_expired_total[{R}])) / clamp_min(sum(rate(celery_task_succeeded_total{{name="reaper.expire_due_holds"}}[{R}])), 1e-9)',
                    "holds per sweep",
                )
            ],
            12,
            24,
        ),
    ]
    bookings = dashboard(
        "boxoffice-bookings",
        "Boxoffice / Bookings",
        "Holds, conflicts, confirmations, cancellations, expiries, expiry lag and revenue.",
        booking_panels,
        ["bookings"],
    )

    # ---------------- messaging
    messaging_panels: list[dict[str, Any]] = []
    messaging_panels.append(row(1, "Outbox", 0))
    messaging_panels += [
        panel(
            2,
            "Outbox backlog (unsent rows)",
            [("max(boxoffice_outbox_backlog)", "backlog")],
            0,
            1,
            w=8,
        ),
        panel(
            3,
            "Oldest unsent event age",
            [("max(boxoffice_outbox_oldest_unsent_age_seconds)", "age")],
            8,
            1,
            w=8,
            unit="s",
            thresholds=green_red(30),
        ),
        panel(
            4,
            "Publish lag (written → published)",
            quantiles("boxoffice_outbox_publish_lag_seconds", qs=(0.5, 0.99)),
            16,
            1,
            w=8,
            unit="s",
        ),
        panel(
            5,
            "Events published / s by type",
            [
                (
                    f"sum by (event_type) (rate(boxoffice_outbox_published_total[{R}]))",
                    "{{event_type}}",
                )
            ],
            0,
            9,
            w=24,
            unit="ops",
            stack=True,
        ),
    ]
    messaging_panels.append(row(6, "Tasks", 17))
    messaging_panels += [
        panel(
            7,
            "Task flow / s",
            [
                (f"sum(rate(celery_task_sent_total[{R}]))", "sent"),
                (f"sum(rate(celery_task_received_total[{R}]))", "received"),
                (f"sum(rate(celery_task_started_total[{R}]))", "started"),
                (f"sum(rate(celery_task_succeeded_total[{R}]))", "succeeded"),
                (f"sum(rate(celery_task_failed_total[{R}])) or vector(0)", "failed"),
                (f"sum(rate(celery_task_retried_total[{R}])) or vector(0)", "retried"),
                (f"sum(rate(celery_task_rejected_total[{R}])) or vector(0)", "rejected"),
            ],
            0,
            18,
            unit="ops",
        ),
        panel(
            8,
            "Succeeded / s by task",
            [(f"sum by (name) (rate(celery_task_succeeded_total[{R}]))", "{{name}}")],
            12,
            18,
            unit="ops",
            stack=True,
        ),
        panel(
            9,
            "Failures / s by task and exception",
            [
                (
                    f"sum by (name, exception) (rate(celery_task_failed_total[{R}]))",
                    "{{name}} {{exception}}",
                )
            ],
            0,
            26,
            unit="ops",
        ),
        panel(
            10,
            "Retries and rejections / s by task",
            [
                (f"sum by (name) (rate(celery_task_retried_total[{R}]))", "retried {{name}}"),
                (f"sum by (name) (rate(celery_task_rejected_total[{R}]))", "rejected {{name}}"),
            ],
            12,
            26,
            unit="ops",
        ),
        panel(
            11,
            "Run time p50 / p95 / p99 by task",
            quantiles("celery_task_runtime_seconds", by="name"),
            0,
            34,
            unit="s",
        ),
        panel(
            12,
            "Queue wait p95 by queue",
            [
                (
                    f"histogram_quantile(0.95, sum by (le, queue_name) (rate(celery_task_queue_wait_seconds_bucket[{R}])))",
                    "{{queue_name}}",
                )
            ],
            12,
            34,
            unit="s",
        ),
    ]
    messaging_panels.append(row(13, "Queues, workers, dead letters, notifications", 42))
    messaging_panels += [
        panel(
            14,
            "Queue depth",
            [("max by (queue_name) (celery_queue_length)", "{{queue_name}}")],
            0,
            43,
            w=8,
        ),
        panel(
            15, "Workers up", [("sum by (hostname) (celery_worker_up)", "{{hostname}}")], 8, 43, w=8
        ),
        panel(
            16,
            "Dead letters by service",
            [("max by (service) (boxoffice_dead_letters) or vector(0)", "{{service}}")],
            16,
            43,
            w=8,
            thresholds=green_red(1),
        ),
        panel(
            17,
            "Notification delivery latency p95 by channel",
            [
                (
                    f"histogram_quantile(0.95, sum by (le, channel) (rate(boxoffice_notification_delivery_latency_seconds_bucket[{R}])))",
                    "{{channel}}",
                )
            ],
            0,
            51,
            unit="s",
            desc="From the event's occurred_at to the provider accepting the message.",
        ),
        panel(
            18,
            "Notifications / s by channel and outcome",
            [
                (
                    f"sum by (channel, outcome) (rate(boxoffice_notifications_total[{R}]))",
                    "{{channel}} {{outcome}}",
                )
            ],
            12,
            51,
            unit="ops",
        ),
        panel(
            19, "Scheduler leader", [("boxoffice_scheduler_leader", "{{instance}}")], 0, 59, w=12
        ),
        panel(
            20,
            "Tasks running now by worker",
            [("sum by (hostname) (celery_worker_tasks_active)", "{{hostname}}")],
            12,
            59,
            w=12,
        ),
    ]
    messaging = dashboard(
        "boxoffice-messaging",
        "Boxoffice / Messaging",
        "Outbox backlog and lag, task rates, failures and run time by task, queues, dead letters, notifications.",
        messaging_panels,
        ["messaging"],
    )

    return {"platform-overview": platform, "bookings": bookings, "messaging": messaging}


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    for name, built in build().items():
        (out / f"{name}.json").write_text(render(built))


if __name__ == "__main__":
    main()
