"""Celery metrics (celery-exporter's names and labels), tracing and log context, from signals.

The counters are counted where the thing happens (sent in the producer, received in the
worker's consumer, the rest in the process running the task), so a scrape of every process
gives what celery-exporter derives from the event stream. Labels are `name`, `queue_name` and,
on failures, `exception`: no hostname, ids or payloads, so series stay bounded.

Trace context travels in the message headers (W3C `traceparent`); each message also carries
`published_at` so the worker can tell how long it waited in the queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog
from celery import Task, signals
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from prometheus_client import Counter, Gauge, Histogram

from boxoffice_telemetry.metrics import process_exited
from boxoffice_telemetry.tracing import context_from, inject_into, tracer

log = logging.getLogger(__name__)

LABELS = ["name", "queue_name"]
PUBLISHED_AT_HEADER = "published_at"

# Seconds: quick tasks (a sweep, an email) to slow ones (a report).
RUNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

TASK_SENT = Counter("celery_task_sent", "Tasks published", LABELS)
TASK_RECEIVED = Counter("celery_task_received", "Tasks received by a worker", LABELS)
TASK_STARTED = Counter("celery_task_started", "Tasks started", LABELS)
TASK_SUCCEEDED = Counter("celery_task_succeeded", "Tasks that succeeded", LABELS)
TASK_FAILED = Counter("celery_task_failed", "Tasks that failed", [*LABELS, "exception"])
TASK_RETRIED = Counter("celery_task_retried", "Tasks scheduled for a retry", LABELS)
TASK_REJECTED = Counter("celery_task_rejected", "Tasks rejected (dead-lettered)", LABELS)
TASK_REVOKED = Counter("celery_task_revoked", "Tasks revoked", LABELS)
TASK_RUNTIME = Histogram(
    "celery_task_runtime_seconds", "Task run time", LABELS, buckets=RUNTIME_BUCKETS
)
TASK_QUEUE_WAIT = Histogram(
    "celery_task_queue_wait_seconds",
    "Time from publish (or ETA) to a worker starting the task",
    LABELS,
    buckets=WAIT_BUCKETS,
)
WORKER_UP = Gauge(
    "celery_worker_up",
    "1 while this worker consumes, 0 once it shuts down",
    ["hostname"],
    multiprocess_mode="max",
)
TASKS_ACTIVE = Gauge(
    "celery_worker_tasks_active",
    "Tasks running in this worker now",
    ["hostname"],
    multiprocess_mode="livesum",
)

_running: dict[str, tuple[float, trace.Span, object | None]] = {}
_publishing: dict[str, trace.Span] = {}
_state_lock = threading.Lock()


def _queue_of(request: Any) -> str:
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("queue") or "unknown")


def _task_name(sender: object, fallback: object = None) -> str:
    name = getattr(sender, "name", None) or fallback or sender
    return str(name)


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
            "messaging.destination.name": str(kwargs.get("routing_key") or ""),
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
    TASK_SENT.labels(_task_name(sender), routing_key or "unknown").inc()
    task_id = (headers or {}).get("id")
    with _state_lock:
        span = _publishing.pop(str(task_id), None) if task_id else None
    if span is not None:
        span.end()


def instrument_celery_producer() -> None:
    """Count and trace the tasks this process publishes (relay, scheduler, API)."""
    signals.before_task_publish.connect(_before_publish, weak=False)
    signals.after_task_publish.connect(_after_publish, weak=False)


# ---- worker side ---------------------------------------------------------------------------


def _received(request: Any = None, **_: Any) -> None:
    if request is not None:
        TASK_RECEIVED.labels(request.name, _queue_of(request)).inc()


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
    TASK_STARTED.labels(task.name, queue).inc()
    TASKS_ACTIVE.labels(request.hostname or "unknown").inc()
    ready = _ready_at(request)
    if ready is not None:
        TASK_QUEUE_WAIT.labels(task.name, queue).observe(max(0.0, time.time() - ready))
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
            "messaging.destination.name": queue,
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
    queue = _queue_of(task.request)
    TASK_RUNTIME.labels(task.name, queue).observe(time.perf_counter() - began)
    TASKS_ACTIVE.labels(task.request.hostname or "unknown").dec()
    if state == "SUCCESS":
        TASK_SUCCEEDED.labels(task.name, queue).inc()
    elif state == "REJECTED":
        TASK_REJECTED.labels(task.name, queue).inc()
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
    if sender is None:
        return
    TASK_FAILED.labels(
        sender.name, _queue_of(sender.request), type(exception).__name__ if exception else "unknown"
    ).inc()
    with _state_lock:
        running = _running.get(task_id)
    if running is not None and exception is not None:
        running[1].record_exception(exception)
        running[1].set_status(Status(StatusCode.ERROR, type(exception).__name__))


def _retry(sender: Task[Any, Any] | None = None, request: Any = None, **_: Any) -> None:
    if sender is not None:
        TASK_RETRIED.labels(sender.name, _queue_of(request or sender.request)).inc()


def _rejected(sender: Any = None, message: Any = None, **_: Any) -> None:
    # A message no task here understands (unknown name or undecodable): counted, not traced.
    # Names this worker does not know become "unknown", so a stray producer adds no series.
    headers: Mapping[str, Any] = getattr(message, "headers", None) or {}
    info: Mapping[str, Any] = getattr(message, "delivery_info", None) or {}
    name = str(headers.get("task", ""))
    known = getattr(getattr(sender, "app", None), "tasks", {})
    TASK_REJECTED.labels(
        name if name in known else "unknown", str(info.get("routing_key") or "unknown")
    ).inc()


def _revoked(request: Any = None, **_: Any) -> None:
    if request is not None:
        TASK_REVOKED.labels(request.name, _queue_of(request)).inc()


def _worker_ready(sender: Any = None, **_: Any) -> None:
    WORKER_UP.labels(_hostname(sender)).set(1)


def _worker_stopping(sender: Any = None, **_: Any) -> None:
    WORKER_UP.labels(_hostname(sender)).set(0)


def _hostname(sender: Any) -> str:
    # worker_ready's sender is the consumer; worker_shutting_down's is the hostname itself.
    name = sender if isinstance(sender, str) else getattr(sender, "hostname", None)
    return str(name or "unknown")


def _child_exited(pid: int = 0, **_: Any) -> None:
    process_exited(pid or os.getpid())


def instrument_celery_worker() -> None:
    """Count, time and trace every task this process runs; tag its log lines with the task.

    Celery's signals are process-wide, as is a worker: one call covers every app in it.
    """
    instrument_celery_producer()  # tasks that send tasks
    signals.task_received.connect(_received, weak=False)
    signals.task_prerun.connect(_prerun, weak=False)
    signals.task_postrun.connect(_postrun, weak=False)
    signals.task_failure.connect(_failure, weak=False)
    signals.task_retry.connect(_retry, weak=False)
    signals.task_rejected.connect(_rejected, weak=False)
    signals.task_unknown.connect(_rejected, weak=False)
    signals.task_revoked.connect(_revoked, weak=False)
    signals.worker_ready.connect(_worker_ready, weak=False)
    signals.worker_shutting_down.connect(_worker_stopping, weak=False)
    signals.worker_process_shutdown.connect(_child_exited, weak=False)
