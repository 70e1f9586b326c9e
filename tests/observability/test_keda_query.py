"""The KEDA trigger the chart renders counts queued + running tasks exactly, and does not drift.

Evaluated by promtool over counters shaped like a busy reaper: every started task ends in one of
succeeded, failed, retried, rejected or ignored, three are always running, seven wait in Redis.
Messages rejected before they started (name="None") and another release's series do not count.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.helm.chart import NAMESPACE, VALUE_SETS, name, render


def keda_query(component: str) -> str:
    scaled = render(VALUE_SETS["keda"]).get("ScaledObject", name(component))
    query: str = scaled["spec"]["triggers"][0]["metadata"]["query"]
    return query


def series(metric: str, namespace: str, values: str, **labels: str) -> dict[str, str]:
    base = {
        "job": "boxoffice",
        "namespace": namespace,
        "component": "reaper",
        "queue_name": "reaper",
    }
    matchers = ",".join(f'{k}="{v}"' for k, v in (base | labels).items())
    return {"series": f"{metric}{{{matchers}}}", "values": values}


def test_keda_query_is_queued_plus_running_and_does_not_drift(tmp_path: Path) -> None:
    assert shutil.which("promtool"), "install the Debian package `prometheus`"
    task = {"name": "reaper.expire_due_holds", "hostname": "reaper@pod-a"}
    inputs = [
        series("celery_queue_length", NAMESPACE, "7+0x60", component="scheduler"),
        series("celery_task_started_total", NAMESPACE, "3+10x60", **task),
        series("celery_task_succeeded_total", NAMESPACE, "0+6x60", **task),
        series(
            "celery_task_failed_total", NAMESPACE, "0+1x60", exception="OperationalError", **task
        ),
        series("celery_task_retried_total", NAMESPACE, "0+1x60", **task),
        series("celery_task_rejected_total", NAMESPACE, "0+1x60", **task),
        series("celery_task_ignored_total", NAMESPACE, "0+1x60", **task),
        # Never started: not running, must not be subtracted.
        series(
            "celery_task_rejected_total", NAMESPACE, "0+5x60", name="None", hostname="reaper@pod-a"
        ),
        # Another release on the same Prometheus.
        series("celery_queue_length", "cinema", "500+0x60", component="scheduler"),
        series("celery_task_started_total", "cinema", "0+100x60", **task),
    ]
    query = keda_query("reaper")
    cases = [
        {"expr": query, "eval_time": t, "exp_samples": [{"labels": "{}", "value": 10}]}
        for t in ("1m", "30m", "60m")
    ]
    test_file = tmp_path / "keda_test.yaml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": inputs, "promql_expr_test": cases}],
            }
        )
    )
    result = subprocess.run(
        ["promtool", "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
