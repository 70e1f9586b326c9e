# ruff: noqa: E501 - PromQL reads best on one line
"""Boxoffice / Platform overview: RED for the API and the workers, queues, targets, processes."""

from __future__ import annotations

from typing import Any

from scripts.dashboards.grafana import (
    RATE,
    Layout,
    Panel,
    dashboard,
    eq,
    green_red,
    quantile,
    quantiles,
    red_green,
    sel,
)


def _ratio(status: str) -> str:
    return (
        f"(sum(rate(http_requests_total{sel(eq('status', status))}[{RATE}])) or vector(0))"
        f" / clamp_min(sum(rate(http_requests_total{sel()}[{RATE}])), 1e-9)"
    )


def build() -> dict[str, Any]:
    layout = Layout()
    layout.row("API (booking) — rate, errors, duration")
    layout.add(
        Panel(
            "Requests / s by handler",
            [(f"sum by (handler) (rate(http_requests_total{sel()}[{RATE}]))", "{{handler}}")],
            unit="reqps",
            stack=True,
        ),
        Panel(
            "5xx error ratio",
            [(_ratio("5xx"), "5xx ratio"), (_ratio("4xx"), "4xx ratio")],
            unit="percentunit",
        ),
        Panel("Latency (all handlers)", quantiles("http_request_duration_seconds"), unit="s"),
        Panel(
            "p99 latency by handler",
            quantile(0.99, "http_request_duration_seconds", "handler"),
            unit="s",
        ),
        Panel(
            "Error budget burn rate (1h, SLO 99.9%)",
            [(f"sum(boxoffice:http_request_errors:ratio_rate1h{sel()}) / 0.001", "burn rate")],
            kind="stat",
            thresholds=green_red(1),
            w=8,
        ),
        Panel(
            "Requests slower than 300 ms (5m)",
            [(f"sum(boxoffice:http_request_slow:ratio_rate5m{sel()})", "slow ratio")],
            kind="stat",
            unit="percentunit",
            thresholds=green_red(0.01),
            w=8,
        ),
        Panel(
            "Requests in flight",
            [(f"sum(http_requests_in_progress{sel()})", "in flight")],
            kind="stat",
            w=8,
        ),
    )
    layout.row("Workers and queues")
    layout.add(
        Panel(
            "Workers up",
            [(f"sum by (hostname) (celery_worker_up{sel()})", "{{hostname}}")],
            thresholds=red_green(1),
            w=8,
        ),
        Panel(
            "Queue depth",
            [(f"sum by (queue_name) (celery_queue_length{sel()})", "{{queue_name}}")],
            w=16,
        ),
        Panel(
            "Tasks succeeded / s by task",
            [(f"sum by (name) (rate(celery_task_succeeded_total{sel()}[{RATE}]))", "{{name}}")],
            unit="ops",
            stack=True,
        ),
        Panel(
            "Tasks failed / s by task",
            [(f"sum by (name) (rate(celery_task_failed_total{sel()}[{RATE}]))", "{{name}}")],
            unit="ops",
        ),
        Panel(
            "Task run time p95 by task",
            quantile(0.95, "celery_task_runtime", "name"),
            unit="s",
            desc="Successful runs (celery-exporter observes run time on success).",
        ),
        Panel(
            "Queue wait p95 by queue",
            quantile(0.95, "celery_task_queue_wait_time", "queue_name"),
            unit="s",
        ),
    )
    layout.row("Processes")
    layout.add(
        Panel(
            "Scrape targets up",
            [(f"up{sel()}", "{{component}} {{pod}}")],
            w=8,
            desc="One series per pod (a deleted pod's target disappears instead of reading 0; the 'Components up' panel and BoxofficeComponentDown notice it).",
        ),
        Panel("Components up", [(f"count by (component) (up{sel()} == 1)", "{{component}}")], w=8),
        Panel(
            "CPU by process",
            [(f"rate(process_cpu_seconds_total{sel()}[{RATE}])", "{{component}} {{pod}}")],
            unit="percentunit",
            w=8,
        ),
        Panel(
            "Resident memory by process",
            [(f"process_resident_memory_bytes{sel()}", "{{component}} {{pod}}")],
            unit="bytes",
            w=24,
        ),
    )
    return dashboard(
        "boxoffice-platform",
        "Boxoffice / Platform overview",
        "RED for the API and the workers, queue depths, workers up, targets and processes of one release.",
        layout,
        ["platform"],
    )
