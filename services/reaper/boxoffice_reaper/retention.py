"""Data retention: forget customers' personal data and old bookkeeping rows after a while.

Each step works in small batches, one short transaction each, with SKIP LOCKED, so it never
holds locks long, never blocks the booking path, and replicas running it at once share the
work. Tables that other parts of the system add later (task status, idempotency keys) are
cleaned only where they exist, so the reaper runs on any schema version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from boxoffice_db.engine import session_scope
from boxoffice_db.models import (
    ApiKey,
    Booking,
    BookingStatus,
    Delivery,
    OutboxEvent,
    TaskRecord,
    TaskStatus,
)
from boxoffice_settings import Settings
from prometheus_client import Counter
from sqlalchemy import (
    ColumnElement,
    and_,
    column,
    delete,
    inspect,
    select,
    table,
    tuple_,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import func

log = logging.getLogger(__name__)

RETENTION_ROWS = Counter(
    "boxoffice_retention_rows_total",
    "Rows anonymised or deleted by data retention",
    ["table", "action"],
)

# What a customer's email becomes: still a syntactically valid address, owned by nobody.
ANONYMISED_EMAIL = "anonymised@anonymised.invalid"
FINISHED = (BookingStatus.EXPIRED, BookingStatus.CANCELLED)
# Task rows in these states are history; running ones are kept whatever their age.
FINISHED_TASK_STATES = ("SUCCESS", "FAILURE", "REVOKED")

Batch = Callable[[Session, datetime, int], int]


def anonymise_bookings(session: Session, cutoff: datetime, limit: int) -> int:
    """Replace email and phone of expired/cancelled bookings that ended before `cutoff`."""
    ended_at = func.coalesce(Booking.expired_at, Booking.cancelled_at, Booking.created_at)
    due = (
        select(Booking.id)
        .where(Booking.status.in_(FINISHED), Booking.anonymised_at.is_(None), ended_at < cutoff)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = session.execute(
        update(Booking)
        .where(Booking.id.in_(due))
        .values(customer_email=ANONYMISED_EMAIL, customer_phone=None, anonymised_at=func.now())
        .returning(Booking.id)
    )
    return len(result.all())


def _delete_batch(
    session: Session, target: Any, key: Any, where: ColumnElement[bool], limit: int
) -> int:
    """Delete up to `limit` rows of `target` matching `where`, skipping rows others lock."""
    due = select(key).where(where).limit(limit).with_for_update(skip_locked=True)
    result = session.execute(delete(target).where(key.in_(due.scalar_subquery())))
    return _rowcount(result)


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def delete_old_outbox(session: Session, cutoff: datetime, limit: int) -> int:
    """Published events older than `cutoff`; unsent ones are never deleted."""
    where = and_(OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < cutoff)
    return _delete_batch(session, OutboxEvent, OutboxEvent.id, where, limit)


def delete_old_deliveries(session: Session, cutoff: datetime, limit: int) -> int:
    """Delivery (inbox) rows older than `cutoff`: their events can no longer be redelivered."""
    due = (
        select(Delivery.event_id, Delivery.channel)
        .where(Delivery.created_at < cutoff)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).subquery()
    result = session.execute(
        delete(Delivery).where(
            Delivery.event_id == due.c.event_id, Delivery.channel == due.c.channel
        )
    )
    return _rowcount(result)


def delete_old_tasks(session: Session, cutoff: datetime, limit: int) -> int:
    """Finished task-status rows older than `cutoff`."""
    tasks = TaskRecord.__table__
    where = and_(
        tasks.c.status.in_([TaskStatus(state) for state in FINISHED_TASK_STATES]),
        func.coalesce(tasks.c.completed_at, tasks.c.created_at) < cutoff,
    )
    return _delete_batch(session, tasks, tasks.c.id, where, limit)


def delete_expired_idempotency_keys(session: Session, cutoff: datetime, limit: int) -> int:
    """Stored responses whose replay window (`expires_at`) ended before `cutoff`."""
    keys = table("idempotency_keys", column("principal"), column("key"), column("expires_at"))
    due = (
        select(keys.c.principal, keys.c.key)
        .where(keys.c.expires_at < cutoff)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = session.execute(delete(keys).where(tuple_(keys.c.principal, keys.c.key).in_(due)))
    return _rowcount(result)


def delete_old_webhook_events(session: Session, cutoff: datetime, limit: int) -> int:
    """Provider webhook ids kept for deduplication, once providers no longer retry them."""
    events = table(
        "payment_webhook_events", column("provider"), column("event_id"), column("received_at")
    )
    due = (
        select(events.c.provider, events.c.event_id)
        .where(events.c.received_at < cutoff)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = session.execute(
        delete(events).where(tuple_(events.c.provider, events.c.event_id).in_(due))
    )
    return _rowcount(result)


def delete_revoked_api_keys(session: Session, cutoff: datetime, limit: int) -> int:
    """API keys revoked before `cutoff`: they authenticate nothing and only hold a hash."""
    where = and_(ApiKey.revoked_at.is_not(None), ApiKey.revoked_at < cutoff)
    return _delete_batch(session, ApiKey, ApiKey.id, where, limit)


def table_exists(name: str) -> bool:
    with session_scope() as session:
        return inspect(session.connection()).has_table(name)


@dataclass(frozen=True)
class Step:
    table: str
    action: str
    batch: Batch
    keep_days: float


def run_step(step: Step, batch_size: int, now: datetime | None = None) -> int:
    """Run one step batch by batch, a transaction each, until a batch comes back short."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=step.keep_days)
    total = 0
    while True:
        with session_scope() as session:
            done = step.batch(session, cutoff, batch_size)
        total += done
        RETENTION_ROWS.labels(step.table, step.action).inc(done)
        if done < batch_size:
            return total


def run_steps(steps: list[Step], batch_size: int, now: datetime | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for step in steps:
        if not table_exists(step.table):
            log.info("retention: no %s table here; skipped", step.table)
            continue
        counts[f"{step.table}.{step.action}"] = run_step(step, batch_size, now)
    if any(counts.values()):
        log.info("retention done", extra={"counts": counts})
    return counts


def retention_steps(settings: Settings) -> list[Step]:
    """The weekly clean-up: personal data, outbox, deliveries, task status."""
    return [
        Step("bookings", "anonymised", anonymise_bookings, settings.retention_personal_data_days),
        Step("outbox", "deleted", delete_old_outbox, settings.retention_outbox_days),
        Step("deliveries", "deleted", delete_old_deliveries, settings.retention_deliveries_days),
        Step("tasks", "deleted", delete_old_tasks, settings.retention_tasks_days),
        Step(
            "payment_webhook_events",
            "deleted",
            delete_old_webhook_events,
            settings.retention_webhook_events_days,
        ),
    ]


def expired_key_steps(settings: Settings) -> list[Step]:
    """The hourly clean-up: revoked API keys past their retention, expired idempotency keys."""
    return [
        # Expired at `expires_at` itself: nothing extra to keep.
        Step("idempotency_keys", "deleted", delete_expired_idempotency_keys, 0),
        Step(
            "api_keys",
            "deleted",
            delete_revoked_api_keys,
            settings.retention_revoked_api_keys_days,
        ),
    ]


def purge_retention(settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Anonymise and delete whatever the retention settings say is old enough."""
    return run_steps(retention_steps(settings), settings.retention_batch_size, now)


def purge_expired_keys(settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Delete expired idempotency keys and long-revoked API keys."""
    return run_steps(expired_key_steps(settings), settings.retention_batch_size, now)
