"""Re-send outbox deliveries that were published but never reached a worker.

Redis can lose a message after publishing: kombu's Redis transport pops a message (BRPOP)
and only then records it as unacknowledged, so a worker killed between the two loses it;
so does a Redis that crashes before its append-only file is flushed. The `tasks` table
shows such a delivery as PENDING long after it was published. When its queue is empty
(nothing is waiting that it could be behind), the relay sends it again under the same task
id. Consumers are idempotent by event id, so a message that was merely slow costs one
duplicate delivery that changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from boxoffice_db.models import OutboxEvent, TaskRecord, TaskStatus
from celery import Celery
from prometheus_client import Counter
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from boxoffice_messaging.outbox import event_args_repr
from boxoffice_messaging.queues import queue_lengths
from boxoffice_messaging.routes import EVENT_ROUTES, Route

log = logging.getLogger(__name__)

# The tasks that deliver outbox events: the only PENDING rows a re-send can settle.
EVENT_TASKS = sorted({route.task for routes in EVENT_ROUTES.values() for route in routes})

REDELIVERED = Counter(
    "boxoffice_outbox_redelivered_total",
    "Outbox deliveries re-sent because they stayed PENDING with their queue empty",
    ["name"],
)


def _event_id(task: TaskRecord) -> uuid.UUID | None:
    args = task.args_summary.get("args") if isinstance(task.args_summary, dict) else None
    if not args or not isinstance(args[0], dict):
        return None
    try:
        return uuid.UUID(str(args[0].get("event_id")))
    except ValueError:
        return None


def redeliver_lost(
    session: Session, app: Celery, redis: Redis, older_than: timedelta, limit: int = 200
) -> int:
    """Re-send stale PENDING outbox deliveries whose queue is empty; returns how many.

    Only deliveries of event tasks, and only in queues that are empty now, are looked at: a
    queue with a backlog (or that no worker consumes) must not fill the `limit` with rows
    that cannot be re-sent, and starve the lost deliveries of every other queue behind them.
    """
    cutoff = datetime.now(UTC) - older_than
    stale = (
        TaskRecord.status == TaskStatus.PENDING,
        TaskRecord.created_at < cutoff,
        TaskRecord.updated_at < cutoff,
        TaskRecord.name.in_(EVENT_TASKS),
        TaskRecord.queue.is_not(None),
    )
    queues = [str(q) for q in session.scalars(select(TaskRecord.queue).where(*stale).distinct())]
    if not queues:
        return 0
    lengths = queue_lengths(redis, tuple(queues))
    empty = [queue for queue in queues if lengths.get(queue) == 0]
    if not empty:
        return 0
    candidates = session.scalars(
        select(TaskRecord)
        .where(*stale, TaskRecord.queue.in_(empty))
        .order_by(TaskRecord.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    waiting_ids = {
        event_id: task for task in candidates if (event_id := _event_id(task)) is not None
    }
    if not waiting_ids:
        return 0
    events = session.scalars(
        select(OutboxEvent).where(
            OutboxEvent.event_id.in_(waiting_ids), OutboxEvent.published_at.is_not(None)
        )
    ).all()
    sent = 0
    for event in events:
        task = waiting_ids[event.event_id]
        route = Route(task.name, str(task.queue))
        if route not in EVENT_ROUTES.get(event.event_type, ()):
            continue
        app.send_task(
            route.task,
            args=[event.payload],
            queue=route.queue,
            task_id=task.id,
            argsrepr=event_args_repr(event.payload),
            kwargsrepr="{}",
        )
        task.updated_at = datetime.now(UTC)
        REDELIVERED.labels(route.task).inc()
        sent += 1
        log.warning(
            "re-sent a delivery still pending %ss after publishing",
            int((datetime.now(UTC) - task.created_at).total_seconds()),
            extra={"task_id": task.id, "task": task.name, "event_id": str(event.event_id)},
        )
    return sent
