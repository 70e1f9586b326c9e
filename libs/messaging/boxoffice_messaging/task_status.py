"""Task status in the `tasks` table, written from Celery signals.

A worker's writes (started, succeeded, failed, retried, revoked) go through this process's
status writer (see status_writer): off the task's thread, merged per task and batched, best
effort: a task's work matters more than its status row, so a database outage is logged and
the task carries on. Rows are upserted because a worker may see a task before the
publisher's PENDING row commits, or never (a task sent by a process that does not track
publishing). The publisher's PENDING rows and progress reports are written at once.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from boxoffice_db.engine import session_scope
from boxoffice_db.models import TaskRecord, TaskStatus
from celery import Task, current_task
from celery.signals import (
    before_task_publish,
    task_failure,
    task_prerun,
    task_retry,
    task_revoked,
    task_success,
    worker_process_shutdown,
    worker_shutdown,
)
from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert

from boxoffice_messaging import status_writer

log = logging.getLogger(__name__)

ERROR_LIMIT = 2000
RESULT_LIMIT = 4000
# Argument keys that identify things without saying anything about a person.
SAFE_KEYS = (
    "event_id",
    "event_type",
    "aggregate_id",
    "booking_id",
    "showtime_id",
    "schema_version",
)


def summarize_args(args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What the arguments were, without personal data: ids and event types, else only types.

    An Envelope's payload holds seats and amounts, and other tasks may one day pass emails
    or phone numbers, so nothing outside SAFE_KEYS is copied.
    """

    def one(value: Any) -> Any:
        if isinstance(value, Mapping):
            kept = {k: str(value[k])[:100] for k in SAFE_KEYS if k in value}
            return kept or {"type": "object", "keys": len(value)}
        if isinstance(value, bool | int | float) or value is None:
            return value
        return {"type": type(value).__name__}

    return {"args": [one(a) for a in args], "kwargs": {k: one(v) for k, v in kwargs.items()}}


def json_result(value: Any) -> dict[str, Any] | None:
    """A task's return value as JSON for the `result` column, if it is small and plain."""
    if value is None:
        return None
    if isinstance(value, bool | int | float | str):
        return {"value": value if not isinstance(value, str) else value[:RESULT_LIMIT]}
    if isinstance(value, dict | list) and len(repr(value)) <= RESULT_LIMIT:
        return {"value": value}
    return {"type": type(value).__name__}


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# A write that fails on a connection PostgreSQL dropped (a restart) succeeds on a fresh one:
# a couple of quick retries keep the status right without holding a task up for long.
STATUS_WRITE_PAUSES = (0.2, 0.5)


def _best_effort(what: str, task_id: str | None, write: Any, *args: Any, **kwargs: Any) -> None:
    if not task_id:
        return
    for pause in (*STATUS_WRITE_PAUSES, None):
        try:
            write(*args, **kwargs)
            return
        except Exception as exc:
            if pause is None:
                log.warning("could not record task %s: %s", what, exc, extra={"task_id": task_id})
                return
            time.sleep(pause)


def record_published(
    task_id: str, name: str, queue: str | None, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    """A task was sent: PENDING, unless a worker already got further."""
    values = {
        "id": task_id,
        "name": name,
        "queue": queue,
        "status": TaskStatus.PENDING,
        "args_summary": summarize_args(args, kwargs),
        "retries": 0,
    }
    with session_scope() as session:
        session.execute(
            insert(TaskRecord)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[TaskRecord.id])
        )


def record_started(
    task: Task[Any, Any], task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    request = task.request
    queue = (request.delivery_info or {}).get("routing_key")
    status_writer.submit(
        task_id,
        task.name,
        {
            "queue": queue,
            "status": TaskStatus.STARTED,
            "retries": request.retries or 0,
            "worker": _worker_name(),
            "started_at": datetime.now(UTC),
            "completed_at": None,
            "runtime_seconds": None,
        },
        {"args_summary": summarize_args(args, kwargs)},
    )


def _finish(task_id: str, name: str, status: TaskStatus, **changes: Any) -> None:
    """The task ended: its status, when, and (from the row's started_at) how long it ran."""
    status_writer.submit(
        task_id, name, {"status": status, "completed_at": datetime.now(UTC), **changes}
    )


def report_progress(current: int, total: int | None = None, message: str | None = None) -> None:
    """From inside a running task: how far it got (shown by GET /v1/tasks/{id})."""
    task = current_task
    task_id = task.request.id if task else None
    if task is None or not task_id:
        return

    def write() -> None:
        # The task's STARTED row may still be queued in the status writer: write it first.
        status_writer.flush()
        with session_scope() as session:
            session.execute(
                update(TaskRecord)
                .where(TaskRecord.id == task_id)
                .values(
                    progress_current=current,
                    progress_total=total,
                    progress_message=(message or None) and message[:500],
                    updated_at=func.now(),
                )
            )

    _best_effort("progress", task_id, write)


def _tracked(task: object) -> bool:
    return bool(getattr(task, "track_status", False))


@task_prerun.connect(weak=False)
def _on_prerun(
    task_id: str | None = None,
    task: Task[Any, Any] | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    if task is not None and _tracked(task) and task_id:
        record_started(task, task_id, args, kwargs or {})


@task_success.connect(weak=False)
def _on_success(sender: Task[Any, Any] | None = None, result: Any = None, **_: Any) -> None:
    task_id = sender.request.id if sender is not None else None
    if sender is not None and _tracked(sender) and task_id:
        _finish(task_id, sender.name, TaskStatus.SUCCESS, result=json_result(result), error=None)


@task_failure.connect(weak=False)
def _on_failure(
    sender: Task[Any, Any] | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    if sender is not None and _tracked(sender) and task_id:
        error = f"{type(exception).__name__}: {exception}"[:ERROR_LIMIT]
        _finish(task_id, sender.name, TaskStatus.FAILURE, error=error)


@task_retry.connect(weak=False)
def _on_retry(
    sender: Task[Any, Any] | None = None, request: Any = None, reason: Any = None, **_: Any
) -> None:
    if sender is None or request is None or not _tracked(sender):
        return
    if not request.id:
        return
    status_writer.submit(
        request.id,
        sender.name,
        {
            "status": TaskStatus.RETRY,
            "error": str(reason)[:ERROR_LIMIT],
            "retries": (request.retries or 0) + 1,
        },
    )


@task_revoked.connect(weak=False)
def _on_revoked(
    sender: Task[Any, Any] | None = None, request: Any = None, expired: bool = False, **_: Any
) -> None:
    if sender is None or request is None or not _tracked(sender):
        return
    if request.id:
        reason = "expired before it ran" if expired else "revoked"
        _finish(request.id, sender.name, TaskStatus.REVOKED, error=reason)


@worker_shutdown.connect(weak=False)
@worker_process_shutdown.connect(weak=False)
def _flush_on_shutdown(**_: Any) -> None:
    # A warm shutdown finished the tasks in hand; their last status must not be lost.
    status_writer.flush()


def track_published_tasks() -> None:
    """Record PENDING rows for the tasks this process sends (the CLI's dead-letter replay).

    Not for a process that runs `outbox.publish_pending`: the relay writes its tasks' rows
    itself, before publishing, in the batch's transaction, and this signal's insert of the same
    row, on another connection, would wait for that transaction while it waits for the publish.
    """
    before_task_publish.connect(_on_publish, weak=False)


def _on_publish(
    sender: str | None = None,
    body: Any = None,
    headers: Mapping[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    headers = headers or {}
    task_id = headers.get("id")
    if sender is None or not task_id or headers.get("retries"):
        return  # a retry's new message: the worker's task_retry signal records it
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = {}
    if isinstance(body, list | tuple) and len(body) >= 2:
        args, kwargs = body[0], body[1]
    _best_effort("publish", task_id, record_published, task_id, sender, routing_key, args, kwargs)
