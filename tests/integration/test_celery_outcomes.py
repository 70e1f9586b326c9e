"""Every way a task ends is counted, so KEDA's running term returns to 0 and never drifts.

A real worker process (tests/support/outcome_worker.py) runs tasks that succeed, fail, retry,
reject and raise Ignore, plus a message no task understands; its /metrics then show
started - (succeeded + failed + retried + rejected + ignored) == 0, the message not understood
under name="None", and celery-exporter's labels.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict

import httpx
import pytest
from boxoffice_devstack.servers import free_port
from prometheus_client.parser import text_string_to_metric_families

from tests.support.outcome_worker import QUEUE, create_app
from tests.support.processes import ServiceProcess, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

SENT = {"probe.ok": 3, "probe.fail": 2, "probe.ignore": 2, "probe.reject": 2, "probe.retry": 1}


def counters(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for sample in family.samples:
            if sample.name.startswith("celery_task_") and sample.name.endswith("_total"):
                found[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return found


def by_name(series: dict[tuple[tuple[str, str], ...], float]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for labels, value in series.items():
        totals[dict(labels)["name"]] += value
    return totals


def test_every_outcome_is_counted_and_running_returns_to_zero(stack: Stack) -> None:
    port = free_port()
    env = stack.env(BOXOFFICE_METRICS_PORT=str(port))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker = ServiceProcess(
        "outcome-worker", "tests.support.outcome_worker", env, stack.var / "outcome-logs"
    )
    worker.start()
    try:
        worker.wait_for_log("ready.", timeout=120)
        app = create_app()
        for name, count in SENT.items():
            for _ in range(count):
                app.send_task(name, queue=QUEUE)
        app.send_task("probe.not_a_task", queue=QUEUE)
        url = f"http://127.0.0.1:{port}/metrics"

        def settled() -> bool:
            c = counters(url)
            ended = sum(
                sum(by_name(c[f"celery_task_{o}_total"]).values())
                for o in ("succeeded", "failed", "retried", "ignored")
            ) + sum(v for k, v in by_name(c["celery_task_rejected_total"]).items() if k != "None")
            started = sum(by_name(c["celery_task_started_total"]).values())
            return started == sum(SENT.values()) + 1 and ended == started  # + the retry's rerun

        try:
            wait_until(settled, 60, "every task to end", interval=0.5)
        except TimeoutError:
            raise AssertionError({k: dict(by_name(v)) for k, v in counters(url).items()}) from None
        c = counters(url)
        assert by_name(c["celery_task_ignored_total"])["probe.ignore"] == 2
        assert by_name(c["celery_task_rejected_total"])["probe.reject"] == 2
        assert by_name(c["celery_task_retried_total"])["probe.retry"] == 1
        assert by_name(c["celery_task_succeeded_total"])["probe.retry"] == 1
        assert by_name(c["celery_task_succeeded_total"])["probe.ok"] == 3
        # A message no task understands never started: counted under celery-exporter's "None".
        wait_until(
            lambda: by_name(counters(url)["celery_task_rejected_total"]).get("None") == 1,
            30,
            "the unknown task's rejection",
        )
        failed = {dict(k)["exception"]: v for k, v in c["celery_task_failed_total"].items() if v}
        assert failed == {"ValueError": 2}
        # At INFO, Celery's routine "received" and "succeeded" lines are left out; how a task
        # failed, was retried, rejected or ignored is still logged.
        log = worker.log()
        assert " received" not in log
        assert " succeeded in " not in log
        assert log.count("probe failure") >= 2
        assert "retry" in log
        assert "ignored" in log
        hostname = f"probe@{socket.gethostname()}"
        for labels in c["celery_task_started_total"]:
            assert dict(labels) == {
                "name": dict(labels)["name"],
                "hostname": hostname,
                "queue_name": QUEUE,
            }
    finally:
        worker.stop()


@pytest.mark.parametrize("events", [False, True], ids=["default", "for-flower"])
def test_a_worker_sends_task_events_only_when_asked_to(stack: Stack, events: bool) -> None:
    """Flower reads task events; nothing else does (task metrics and status come from worker
    signals), so they are off unless BOXOFFICE_CELERY_TASK_EVENTS turns them on, as the chart
    does with Flower. Read here as Flower reads them, from the broker's event channel."""
    port = free_port()
    env = stack.env(
        BOXOFFICE_METRICS_PORT=str(port), BOXOFFICE_CELERY_TASK_EVENTS=str(events).lower()
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker = ServiceProcess(
        "outcome-worker", "tests.support.outcome_worker", env, stack.var / "events-logs"
    )
    app = create_app()
    seen: list[str] = []
    connection = app.connection()
    receiver = app.events.Receiver(
        connection, handlers={"*": lambda event: seen.append(event["type"])}
    )
    # capture() drains with a 1 s safety timeout and stops when should_stop is set.
    listener = threading.Thread(
        target=receiver.capture, kwargs={"limit": None, "wakeup": False}, daemon=True
    )
    worker.start()
    try:
        worker.wait_for_log("ready.", timeout=120)
        listener.start()
        time.sleep(1.0)  # the subscription is live before the task is sent
        app.send_task("probe.ok", queue=QUEUE)
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(
            lambda: by_name(counters(url)["celery_task_succeeded_total"]).get("probe.ok") == 1,
            60,
            "the task to succeed",
            interval=0.2,
        )
        time.sleep(1.0)  # events of the task still on their way
    finally:
        receiver.should_stop = True
        listener.join(5)
        connection.release()
        worker.stop()
    assert not listener.is_alive()
    tasks = {kind for kind in seen if kind.startswith("task-")}
    if events:
        assert {"task-received", "task-started", "task-succeeded"} <= tasks, seen
    else:
        assert tasks == set(), seen
