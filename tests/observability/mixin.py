# ruff: noqa: E501 - the mixin's PromQL as published
"""The celery-mixin's alerts and dashboard queries, written out from its published source.

danihodovic/celery-exporter, `celery-mixin/`: the alerts as generated in
`prometheus_alerts.yaml`, the dashboard queries of `dashboards_out/celery-overview.json` and of
`dashboards/celery-tasks-overview.libsonnet` (queue wait time). They are copied as published,
with `celerySelector` and the dashboards' `$job` set to the chart's job, the way an SRE points
the mixin at a Boxoffice release (docs/observability.md); `$cluster` is empty (one cluster, no
cluster label), `$namespace` the release's namespace, `$queue_name` one queue.
"""

from __future__ import annotations

JOB_SELECTOR = 'job="boxoffice"'

# prometheus_alerts.yaml, with the default selector job=~".*celery.*" replaced.
ALERTS = {
    "CeleryTaskHighFailRate": """
sum(
  increase(
    celery_task_failed_total{
      job=~".*celery.*",
      queue_name!~"None",
      name!~"None"
    }[10m]
  )
)  by (job, namespace, queue_name, name)
/
(
  sum(
    increase(
      celery_task_failed_total{
        job=~".*celery.*",
        queue_name!~"None",
        name!~"None"
      }[10m]
    )
  )  by (job, namespace, queue_name, name)
  +
  sum(
    increase(
      celery_task_succeeded_total{
        job=~".*celery.*",
        queue_name!~"None",
        name!~"None"
      }[10m]
    )
  )  by (job, namespace, queue_name, name)
)
* 100 > 5
""",
    "CeleryHighQueueLength": """
sum(
  celery_queue_length{
    job=~".*celery.*",
    queue_name!~"None"
  }
)  by (job, namespace, queue_name)
> 100
""",
    "CeleryWorkerDown": """
celery_worker_up{job=~".*celery.*"} == 0
""",
}

_F = 'cluster="$cluster",\nnamespace="$namespace",\njob=~"$job"\n'
_Q = _F + ',\nqueue_name=~"$queue_name",\n\n'


def _increase(metric: str, window: str) -> str:
    return f"sum(\n  round(\n    increase(\n      {metric}{{\n        {_Q}      }}[{window}]\n    )\n  )\n)\n"


# dashboards_out/celery-overview.json ("Celery / Tasks / Overview"), panel title -> queries.
PANELS = {
    "Workers": [f"count(\n  celery_worker_up{{\n    {_F}\n  }} == 1\n)\n"],
    "Workers Active Tasks": [f"sum(\n  celery_worker_tasks_active{{\n    {_F}\n  }}\n)\n"],
    "Tasks received by workers [1w]": [_increase("celery_task_received_total", "1w")],
    "Tasks Success Rate [1w]": [
        _increase("celery_task_succeeded_total", "1w")
        + "/("
        + _increase("celery_task_succeeded_total", "1w")
        + "+"
        + _increase("celery_task_failed_total", "1w")
        + ")\n"
    ],
    "Average Runtime for Tasks [1w]": [
        f"sum(\n  rate(\n    celery_task_runtime_sum{{\n      {_Q}    }}[1w]\n  )\n)\n/\n"
        f"sum(\n  rate(\n    celery_task_runtime_count{{\n      {_Q}    }}[1w]\n  )\n) > 0\n"
    ],
    "Top Average Task Runtime [1w]": [
        f"sum (\n  rate(\n    celery_task_runtime_sum{{\n      {_Q}    }}[1w]\n  )\n) by(name)\n/\n"
        f"sum (\n  rate(\n    celery_task_runtime_count{{\n      {_Q}    }}[1w]\n  )\n) by (name) > 0\n"
    ],
    "Queue Length": [f"sum (\n  celery_queue_length{{\n    {_Q}  }}\n) by (job, queue_name)\n"],
    "Task Stats": [
        f"sum (\n  round(\n    increase(\n      celery_task_{outcome}_total{{\n        {_Q}      }}[$__range]\n    )\n  )\n) by (job) > 0\n"
        for outcome in ("succeeded", "sent", "received")
    ],
    "Tasks Completed": [
        f"sum (\n  round(\n    increase(\n      celery_task_{outcome}_total{{\n        {_Q}      }}[$__rate_interval]\n    )\n  )\n)\n"
        for outcome in ("succeeded", "sent", "received")
    ],
    "Tasks Runtime": [
        f"histogram_quantile({q},\n  sum(\n    irate(\n      celery_task_runtime_bucket{{\n        {_Q}      }}[$__rate_interval]\n    ) > 0\n  ) by (job, le)\n)\n"
        for q in ("0.50", "0.95", "0.99")
    ],
    # celery-tasks-overview.libsonnet: queueWaitTimeP50/P95 (its `queue` filter).
    "Queue Wait Time": [
        f"histogram_quantile({q},\n  sum(\n    rate(\n      celery_task_queue_wait_time_bucket{{\n        {_Q}      }}[$__rate_interval]\n    )\n  ) by (le)\n)\n"
        for q in ("0.50", "0.95")
    ],
}
# Panels whose queries may rightly be empty on a healthy system (none fail here).
MAY_BE_EMPTY: set[str] = set()


def alert_exprs() -> dict[str, str]:
    """The mixin's alerts with the chart's job as `celerySelector`."""
    return {name: expr.replace('job=~".*celery.*"', JOB_SELECTOR) for name, expr in ALERTS.items()}


def panel_exprs(namespace: str, queue: str, rate_interval: str = "1m") -> dict[str, list[str]]:
    """The mixin's panel queries with the variables an SRE would pick for one release."""
    values = {
        "$cluster": "",
        "$namespace": namespace,
        "$job": "boxoffice",
        "$queue_name": queue,
        "$__rate_interval": rate_interval,
        "$__range": "10m",
    }
    filled = {}
    for title, exprs in PANELS.items():
        out = []
        for expr in exprs:
            for variable, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
                expr = expr.replace(variable, value)
            out.append(expr)
        filled[title] = out
    return filled
