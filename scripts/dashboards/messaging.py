# ruff: noqa: E501 - PromQL reads best on one line
"""Boxoffice / Messaging: outbox, task flow and timings, queues, workers, dead letters."""

from __future__ import annotations

from typing import Any

from scripts.dashboards.grafana import (
    RATE,
    Layout,
    Panel,
    dashboard,
    green_red,
    quantile,
    quantiles,
    red_green,
    sel,
)


def _flow(outcome: str) -> str:
    return f"sum(rate(celery_task_{outcome}_total{sel()}[{RATE}])) or vector(0)"


def build() -> dict[str, Any]:
    layout = Layout()
    layout.row("Outbox")
    layout.add(
        Panel(
            "Outbox backlog (unsent rows)",
            [(f"max(boxoffice_outbox_backlog{sel()})", "backlog")],
            w=8,
        ),
        Panel(
            "Oldest unsent event age",
            [(f"max(boxoffice_outbox_oldest_unsent_age_seconds{sel()})", "age")],
            unit="s",
            thresholds=green_red(30),
            w=8,
        ),
        Panel(
            "Publish lag (written → published)",
            quantiles("boxoffice_outbox_publish_lag_seconds", qs=(0.5, 0.99)),
            unit="s",
            w=8,
        ),
        Panel(
            "Events published / s by type",
            [
                (
                    f"sum by (event_type) (rate(boxoffice_outbox_published_total{sel()}[{RATE}]))",
                    "{{event_type}}",
                )
            ],
            unit="ops",
            stack=True,
            w=24,
        ),
    )
    layout.row("Tasks")
    layout.add(
        Panel(
            "Task flow / s",
            [
                (_flow(o), o)
                for o in (
                    "sent",
                    "received",
                    "started",
                    "succeeded",
                    "failed",
                    "retried",
                    "rejected",
                    "revoked",
                )
            ],
            unit="ops",
        ),
        Panel(
            "Succeeded / s by task",
            [(f"sum by (name) (rate(celery_task_succeeded_total{sel()}[{RATE}]))", "{{name}}")],
            unit="ops",
            stack=True,
        ),
        Panel(
            "Failures / s by task and exception",
            [
                (
                    f"sum by (name, exception) (rate(celery_task_failed_total{sel()}[{RATE}]))",
                    "{{name}} {{exception}}",
                )
            ],
            unit="ops",
        ),
        Panel(
            "Retries and rejections / s by task",
            [
                (
                    f"sum by (name) (rate(celery_task_retried_total{sel()}[{RATE}]))",
                    "retried {{name}}",
                ),
                (
                    f"sum by (name) (rate(celery_task_rejected_total{sel()}[{RATE}]))",
                    "rejected {{name}}",
                ),
            ],
            unit="ops",
        ),
        Panel(
            "Run time p50 / p95 / p99 by task",
            quantiles("celery_task_runtime", by="name"),
            unit="s",
            desc="Successful runs (celery-exporter's celery_task_runtime).",
        ),
        Panel(
            "Queue wait p95 by queue",
            quantile(0.95, "celery_task_queue_wait_time", "queue_name"),
            unit="s",
            desc="From publish (or ETA, if later) to a worker starting the task.",
        ),
    )
    layout.row("Queues, workers, dead letters, notifications")
    layout.add(
        Panel(
            "Queue depth",
            [(f"sum by (queue_name) (celery_queue_length{sel()})", "{{queue_name}}")],
            w=8,
            desc="Exported once per queue, by the scheduler leader.",
        ),
        Panel(
            "Workers up",
            [(f"sum by (hostname) (celery_worker_up{sel()})", "{{hostname}}")],
            thresholds=red_green(1),
            w=8,
        ),
        Panel(
            "Workers and processes by queue",
            [
                (
                    f"sum by (queue_name) (celery_active_worker_count{sel()})",
                    "workers {{queue_name}}",
                ),
                (
                    f"sum by (queue_name) (celery_active_process_count{sel()})",
                    "processes {{queue_name}}",
                ),
            ],
            w=8,
        ),
        Panel(
            "Dead letters by service",
            [(f"max by (service) (boxoffice_dead_letters{sel()}) or vector(0)", "{{service}}")],
            thresholds=green_red(1),
            w=8,
        ),
        Panel(
            "Notification delivery latency p95 by channel",
            quantile(0.95, "boxoffice_notification_delivery_latency_seconds", "channel"),
            unit="s",
            desc="From the event's occurred_at to the provider accepting the message.",
            w=8,
        ),
        Panel(
            "Notifications / s by channel and outcome",
            [
                (
                    f"sum by (channel, outcome) (rate(boxoffice_notifications_total{sel()}[{RATE}]))",
                    "{{channel}} {{outcome}}",
                )
            ],
            unit="ops",
            w=8,
        ),
        Panel("Scheduler leader", [(f"boxoffice_scheduler_leader{sel()}", "{{pod}}")]),
        Panel(
            "Tasks running now by worker",
            [(f"sum by (hostname) (celery_worker_tasks_active{sel()})", "{{hostname}}")],
        ),
    )
    return dashboard(
        "boxoffice-messaging",
        "Boxoffice / Messaging",
        "Outbox backlog and lag, task rates, failures and run time by task, queues, workers, dead letters, notifications of one release.",
        layout,
        ["messaging"],
    )
