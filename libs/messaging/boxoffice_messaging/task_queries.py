"""The operators' monitoring queries over the `tasks` table (shared by the API and the CLI)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from boxoffice_db.models import Booking, TaskRecord, TaskStatus
from sqlalchemy import func, select
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class OwnedTask:
    """A task and the client that owns the booking it is about (None: about no booking)."""

    task: TaskRecord
    owner_id: uuid.UUID | None


def find_task(session: Session, task_id: str) -> OwnedTask | None:
    """One task with its booking's owner, in one query; None if there is no such task."""
    row = session.execute(
        select(TaskRecord, Booking.owner_id)
        .outerjoin(Booking, Booking.id == TaskRecord.booking_id)
        .where(TaskRecord.id == task_id)
    ).one_or_none()
    return None if row is None else OwnedTask(row[0], row[1])


@dataclass(frozen=True)
class TaskFilter:
    status: TaskStatus | None = None
    name: str | None = None
    queue: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_tasks(
    session: Session, where: TaskFilter, *, limit: int = 50, offset: int = 0
) -> list[TaskRecord]:
    """Tasks matching the filter, newest first."""
    query = select(TaskRecord).order_by(TaskRecord.created_at.desc(), TaskRecord.id)
    if where.status is not None:
        query = query.where(TaskRecord.status == where.status)
    if where.name is not None:
        query = query.where(TaskRecord.name == where.name)
    if where.queue is not None:
        query = query.where(TaskRecord.queue == where.queue)
    if where.since is not None:
        query = query.where(TaskRecord.created_at >= where.since)
    if where.until is not None:
        query = query.where(TaskRecord.created_at < where.until)
    return list(session.scalars(query.limit(limit).offset(offset)))


@dataclass(frozen=True)
class RuntimeStats:
    name: str
    completed: int
    avg_seconds: float
    p95_seconds: float


@dataclass(frozen=True)
class TaskStats:
    window_seconds: int
    runtime_by_name: list[RuntimeStats]
    failures_last_hour: dict[str, int]
    by_status: dict[str, int] = field(default_factory=dict)


def task_stats(session: Session, window: timedelta = timedelta(hours=1)) -> TaskStats:
    """Average and p95 run time by task name over `window`, failures in the last hour, and
    how many tasks of the window are in each status."""
    now = datetime.now(UTC)
    since = now - window
    runtime_rows = session.execute(
        select(
            TaskRecord.name,
            func.count(),
            func.avg(TaskRecord.runtime_seconds),
            func.percentile_cont(0.95).within_group(TaskRecord.runtime_seconds),
        )
        .where(
            TaskRecord.status == TaskStatus.SUCCESS,
            TaskRecord.completed_at >= since,
            TaskRecord.runtime_seconds.is_not(None),
        )
        .group_by(TaskRecord.name)
        .order_by(TaskRecord.name)
    ).all()
    failures = session.execute(
        select(TaskRecord.name, func.count())
        .where(
            TaskRecord.status == TaskStatus.FAILURE,
            TaskRecord.completed_at >= now - timedelta(hours=1),
        )
        .group_by(TaskRecord.name)
    ).all()
    statuses = session.execute(
        select(TaskRecord.status, func.count())
        .where(TaskRecord.created_at >= since)
        .group_by(TaskRecord.status)
    ).all()
    return TaskStats(
        window_seconds=int(window.total_seconds()),
        runtime_by_name=[
            RuntimeStats(name, int(count), float(avg or 0.0), float(p95 or 0.0))
            for name, count, avg, p95 in runtime_rows
        ],
        failures_last_hour={name: int(count) for name, count in failures},
        by_status={status.value: int(count) for status, count in statuses},
    )
