"""Background task status and the operators' monitoring queries."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Annotated, Any

from boxoffice_db.models import TaskRecord, TaskStatus
from boxoffice_messaging.queues import queue_lengths, unacked_count
from boxoffice_messaging.redis_client import redis_from_settings
from boxoffice_messaging.task_queries import TaskFilter, find_task, list_tasks, task_stats
from fastapi import Path, Query
from pydantic import BaseModel, Field

from boxoffice_booking.auth import Principal, require_scope
from boxoffice_booking.deps import SessionDep, SessionRouter, SettingsDep
from boxoffice_booking.ownership import may_read_owned
from boxoffice_booking.problems import NotFound, Problem
from boxoffice_booking.validators import Rfc3339Time

log = logging.getLogger(__name__)

router = SessionRouter(prefix="/v1/tasks", tags=["tasks"])

READ = require_scope("bookings:read")
ADMIN = require_scope("admin")


class InvalidQuery(Problem):
    status, slug, title = 422, "invalid-query", "The query parameters do not fit together"


class TaskProgress(BaseModel):
    current: int | None
    total: int | None
    message: str | None


class TaskPublic(BaseModel):
    """A background task: what it is, where it got to, and how it ended."""

    id: str
    name: str
    queue: str | None
    status: TaskStatus
    progress: TaskProgress
    args_summary: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    retries: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    runtime_seconds: float | None


class TaskList(BaseModel):
    items: list[TaskPublic]
    limit: int
    offset: int


class RuntimeByName(BaseModel):
    name: str
    completed: int
    avg_seconds: float
    p95_seconds: float


class QueueBacklog(BaseModel):
    waiting: dict[str, int] = Field(description="messages waiting in each queue")
    unacknowledged: int = Field(description="messages taken by workers, not yet acknowledged")


class TaskStatsPublic(BaseModel):
    window_seconds: int
    runtime_by_name: list[RuntimeByName]
    failures_last_hour: dict[str, int]
    by_status: dict[str, int]
    backlog: QueueBacklog | None = Field(description="null when Redis cannot be reached")


def task_public(task: TaskRecord) -> TaskPublic:
    return TaskPublic(
        id=task.id,
        name=task.name,
        queue=task.queue,
        status=task.status,
        progress=TaskProgress(
            current=task.progress_current,
            total=task.progress_total,
            message=task.progress_message,
        ),
        args_summary=task.args_summary,
        result=task.result,
        error=task.error,
        retries=task.retries,
        created_at=task.created_at,
        started_at=task.started_at,
        completed_at=task.completed_at,
        runtime_seconds=task.runtime_seconds,
    )


@router.get("", dependencies=[ADMIN])
def read_tasks(
    session: SessionDep,
    status: TaskStatus | None = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    queue: Annotated[str | None, Query(max_length=100)] = None,
    since: Rfc3339Time | None = None,
    until: Rfc3339Time | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> TaskList:
    """Tasks, newest first, filtered by status, name, queue and a created-at window."""
    if since is not None and until is not None and since >= until:
        raise InvalidQuery("since must be before until.")
    where = TaskFilter(status=status, name=name, queue=queue, since=since, until=until)
    tasks = list_tasks(session, where, limit=limit, offset=offset)
    return TaskList(items=[task_public(t) for t in tasks], limit=limit, offset=offset)


@router.get("/stats", dependencies=[ADMIN])
def read_task_stats(
    session: SessionDep,
    settings: SettingsDep,
    window_minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 60,
) -> TaskStatsPublic:
    """Average and p95 run time by task, failures in the last hour, backlog by queue."""
    stats = task_stats(session, timedelta(minutes=window_minutes))
    backlog: QueueBacklog | None = None
    try:
        client = redis_from_settings(settings, socket_timeout=2, socket_connect_timeout=2)
        with client:
            backlog = QueueBacklog(
                waiting=queue_lengths(client), unacknowledged=unacked_count(client)
            )
    except Exception as exc:
        log.warning("queue lengths unavailable: %s", exc)
    return TaskStatsPublic(
        window_seconds=stats.window_seconds,
        runtime_by_name=[
            RuntimeByName(
                name=r.name,
                completed=r.completed,
                avg_seconds=r.avg_seconds,
                p95_seconds=r.p95_seconds,
            )
            for r in stats.runtime_by_name
        ],
        failures_last_hour=stats.failures_last_hour,
        by_status=stats.by_status,
        backlog=backlog,
    )


@router.get("/{task_id}")
def read_task(
    task_id: Annotated[str, Path(max_length=64)],
    session: SessionDep,
    principal: Annotated[Principal, READ],
) -> TaskPublic:
    """One task's status, progress, result or error, and timings.

    A task about another client's booking, or about no booking, is a 404 exactly like a
    missing task, unless the key has `bookings:read:all`.
    """
    found = find_task(session, task_id)
    public = None
    if found is not None and may_read_owned(principal, found.owner_id):
        public = task_public(found.task)
    session.rollback()  # return the connection before the answer is sent (see bookings)
    if public is None:
        raise NotFound(f"No task {task_id!r}.")
    return public
