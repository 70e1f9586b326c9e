"""Celery metrics with celery-exporter's names, labels and buckets; tracing and log context.

celery-exporter (danihodovic/celery-exporter, `src/exporter.py`) is one process reading the
whole cluster's events; here each process counts what happens in it, from Celery's signals:
sent in the producer, received in the worker's consumer, the rest in the process running the
task. Summed over one job (the chart gives every Boxoffice pod job="boxoffice"), the series are
what celery-exporter would export, so the celery-mixin's dashboards and alerts work unchanged:

- task counters `{name, hostname, queue_name}` (failed: plus `exception`); when a worker
  receives a task, the other outcome counters of that task are touched with 0, as the
  exporter does, so rates read 0 rather than nothing;
- `celery_task_runtime{name, hostname, queue_name}`: run time of successful tasks, in
  prometheus_client's default buckets (the exporter's default);
- `celery_task_queue_wait_time{name, hostname, queue_name}`: publish (or ETA) to start;
- `celery_worker_tasks_active{hostname}`: tasks running now in this worker.

Queue lengths, worker liveness and worker/process counts per queue are cluster-wide: the
scheduler leader exports them once (`boxoffice_telemetry.cluster`). `hostname` is the worker's
node name (`notifier-email@<pod>`) or, for producers, `<service>@<pod>`; no ids or payloads.

Trace context travels in the message headers (W3C `traceparent`); each message also carries
`published_at` so the worker can tell how long it waited in the queue. Spans carry the OpenTelemetry
messaging attributes (`messaging.system`, `messaging.operation.type`, `messaging.message.id`,
`messaging.destination.name`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog
from celery import Task, signals
from celery.exceptions import Reject
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from prometheus_client import Counter, Gauge, Histogram

from boxoffice_telemetry.metrics import process_exited
from boxoffice_telemetry.tracing import context_from, inject_into, tracer

log = logging.getLogger(__name__)

LABELS = ["name", "hostname", "queue_name"]
PUBLISHED_AT_HEADER = "published_at"

TASK_SENT = Counter("celery_task_sent", "Sent when a task message is published.", LABELS)
TASK_RECEIVED = Counter("celery_task_received", "Sent when the worker receives a task.", LABELS)
TASK_STARTED = Counter(
    "celery_task_started", "Sent just before the worker executes the task.", LABELS
)
TASK_SUCCEEDED = Counter("celery_task_succeeded", "Sent if the task executed successfully.", LABELS)
TASK_FAILED = Counter(
    "celery_task_failed", "Sent if the execution of the task failed.", [*LABELS, "exception"]
)
TASK_RETRIED = Counter(
    "celery_task_retried", "Sent if the task failed, but will be retried in the future.", LABELS
)
TASK_REJECTED = Counter(
    "celery_task_rejected",
    "The task was rejected by the worker, possibly to be re-queued or moved to a dead letter"
    " queue.",
    LABELS,
)
TASK_REVOKED = Counter("celery_task_revoked", "Sent if the task has been revoked.", LABELS)
# Not in celery-exporter (its events have no IGNORED state): a task that raised Ignore ends here,
# so started - (succeeded + failed + retried + rejected + ignored) is what is still running.
TASK_IGNORED = Counter(
    "celery_task_ignored", "The task raised Ignore: it ended without a result state.", LABELS
)
TASK_RUNTIME = Histogram("celery_task_runtime", "Histogram of task runtime measurements.", LABELS)
TASK_QUEUE_WAIT = Histogram(
    "celery_task_queue_wait_time",
    "Histogram of task queue wait time: publish (or ETA, if later) to the task starting.",
    LABELS,
)
TASKS_ACTIVE = Gauge(
    "celery_worker_tasks_active",
    "The number of tasks the worker is currently processing",
    ["hostname"],
    multiprocess_mode="livesum",
)
# The outcome counters a received task touches with 0 (failed gets exception="").
_OUTCOMES = (TASK_STARTED, TASK_SUCCEEDED, TASK_RETRIED, TASK_REJECTED, TASK_REVOKED)

_running: dict[str, tuple[float, trace.Span, object | None]] = {}
_publishing: dict[str, trace.Span] = {}
_state_lock = threading.Lock()
_producer = {"hostname": f"celery@{socket.gethostname()}"}


def producer_hostname() -> str:
    """The `hostname` label of tasks this process sends (`<service>@<host>`)."""
    return _producer["hostname"]


def _queue_of(request: Any) -> str:
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("queue") or "unknown")


def _task_name(sender: object, fallback: object = None) -> str:
    name = getattr(sender, "name", None) or fallback or sender
    return str(name)


def _hostname_of(request: Any) -> str:
    return str(getattr(request, "hostname", None) or producer_hostname())


# ---- producer side -------------------------------------------------------------------------


def _before_publish(
    sender: object = None, headers: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    if headers is None:
        return
    headers[PUBLISHED_AT_HEADER] = time.time()
    task_id = headers.get("id")
    span = tracer().start_span(
        f"publish {_task_name(sender)}",
        kind=trace.SpanKind.PRODUCER,
        attributes={
            "messaging.system": "celery",
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": str(kwargs.get("routing_key") or ""),
            "messaging.message.id": str(task_id or ""),
            "celery.task_name": _task_name(sender),
        },
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        inject_into(headers)
    finally:
        otel_context.detach(token)
    if task_id:
        with _state_lock:
            _publishing[str(task_id)] = span
    else:
        span.end()


def _after_publish(
    sender: object = None,
    headers: Mapping[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    TASK_SENT.labels(_task_name(sender), producer_hostname(), routing_key or "unknown").inc()
    task_id = (headers or {}).get("id")
    with _state_lock:
        span = _publishing.pop(str(task_id), None) if task_id else None
    if span is not None:
        span.end()


def instrument_celery_producer(service: str | None = None) -> None:
    """Count and trace the tasks this process publishes (relay, scheduler, API)."""
    if service:
        _producer["hostname"] = f"{service}@{socket.gethostname()}"
    signals.before_task_publish.connect(_before_publish, weak=False)
    signals.after_task_publish.connect(_after_publish, weak=False)


# ---- worker side ---------------------------------------------------------------------------


def _received(request: Any = None, **_: Any) -> None:
    if request is None:
        return
    labels = (request.name, _hostname_of(request), _queue_of(request))
    TASK_RECEIVED.labels(*labels).inc()
    for counter in _OUTCOMES:
        counter.labels(*labels).inc(0)
    TASK_FAILED.labels(*labels, "").inc(0)


def _ready_at(request: Any) -> float | None:
    published = getattr(request, PUBLISHED_AT_HEADER, None)
    if not isinstance(published, int | float):
        return None
    ready = float(published)
    eta = getattr(request, "eta", None)
    if isinstance(eta, str):
        with contextlib.suppress(ValueError):
            ready = max(ready, datetime.fromisoformat(eta).timestamp())
    return ready


def _prerun(task_id: str = "", task: Task[Any, Any] | None = None, **_: Any) -> None:
    if task is None:
        return
    request = task.request
    queue = _queue_of(request)
    hostname = _hostname_of(request)
    TASK_STARTED.labels(task.name, hostname, queue).inc()
    TASKS_ACTIVE.labels(hostname).inc()
    ready = _ready_at(request)
    if ready is not None:
        TASK_QUEUE_WAIT.labels(task.name, hostname, queue).observe(max(0.0, time.time() - ready))
    carrier = {
        key: value
        for key in ("traceparent", "tracestate")
        if isinstance(value := getattr(request, key, None), str)
    }
    span = tracer().start_span(
        f"run {task.name}",
        context=context_from(carrier),
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "celery",
            "messaging.operation.type": "process",
            "messaging.operation.name": "run",
            "messaging.destination.name": queue,
            "messaging.message.id": task_id,
            "messaging.consumer.group.name": queue,
            "celery.task_name": task.name,
            "celery.retries": int(request.retries or 0),
        },
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    with _state_lock:
        _running[task_id] = (time.perf_counter(), span, token)
    structlog.contextvars.bind_contextvars(task=task.name, task_id=task_id)


def _postrun(
    task_id: str = "", task: Task[Any, Any] | None = None, state: str | None = None, **_: Any
) -> None:
    structlog.contextvars.unbind_contextvars("task", "task_id")
    with _state_lock:
        started = _running.pop(task_id, None)
    if task is None or started is None:
        return
    began, span, token = started
    labels = (task.name, _hostname_of(task.request), _queue_of(task.request))
    TASKS_ACTIVE.labels(labels[1]).dec()
    # FAILURE and RETRY are counted by their own signals; every started task ends in one of these.
    if state == "SUCCESS":
        TASK_SUCCEEDED.labels(*labels).inc()
        TASK_RUNTIME.labels(*labels).observe(time.perf_counter() - began)
    elif state == "REJECTED":
        TASK_REJECTED.labels(*labels).inc()
    elif state == "IGNORED":
        TASK_IGNORED.labels(*labels).inc()
    if state is not None:
        span.set_attribute("celery.state", state)
    span.end()
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]


def _failure(
    sender: Task[Any, Any] | None = None,
    task_id: str = "",
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    if sender is None or isinstance(exception, Reject):
        # Celery also signals a failure for Reject; it ends as REJECTED (see _postrun), once.
        return
    TASK_FAILED.labels(
        sender.name,
        _hostname_of(sender.request),
        _queue_of(sender.request),
        type(exception).__name__ if exception else "unknown",
    ).inc()
    with _state_lock:
        running = _running.get(task_id)
    if running is not None and exception is not None:
        running[1].record_exception(exception)
        running[1].set_status(Status(StatusCode.ERROR, type(exception).__name__))


def _retry(sender: Task[Any, Any] | None = None, request: Any = None, **_: Any) -> None:
    if sender is not None:
        req = request or sender.request
        TASK_RETRIED.labels(sender.name, _hostname_of(req), _queue_of(req)).inc()


def _not_understood(sender: Any = None, message: Any = None, **_: Any) -> None:
    # A message no task here understands (unknown name or undecodable): it never started, so it
    # is not a rejected *task*; celery-exporter names such tasks "None" and the celery-mixin
    # ignores that name. Names this worker does not know become "None": no stray series.
    headers: Mapping[str, Any] = getattr(message, "headers", None) or {}
    info: Mapping[str, Any] = getattr(message, "delivery_info", None) or {}
    name = str(headers.get("task", ""))
    known = getattr(getattr(sender, "app", None), "tasks", {})
    TASK_REJECTED.labels(
        name if name in known else "None",
        str(getattr(sender, "hostname", None) or producer_hostname()),
        str(info.get("routing_key") or "unknown"),
    ).inc()


def _revoked(request: Any = None, **_: Any) -> None:
    if request is not None:
        TASK_REVOKED.labels(request.name, _hostname_of(request), _queue_of(request)).inc()


def _child_exited(pid: int = 0, **_: Any) -> None:
    process_exited(pid or os.getpid())


def instrument_celery_worker(service: str | None = None) -> None:
    """Count, time and trace every task this process runs; tag its log lines with the task.

    Celery's signals are process-wide, as is a worker: one call covers every app in it.
    """
    instrument_celery_producer(service)  # tasks that send tasks
    signals.task_received.connect(_received, weak=False)
    signals.task_prerun.connect(_prerun, weak=False)
    signals.task_postrun.connect(_postrun, weak=False)
    signals.task_failure.connect(_failure, weak=False)
    signals.task_retry.connect(_retry, weak=False)
    signals.task_rejected.connect(_not_understood, weak=False)
    signals.task_unknown.connect(_not_understood, weak=False)
    signals.task_revoked.connect(_revoked, weak=False)
    signals.worker_process_shutdown.connect(_child_exited, weak=False)
