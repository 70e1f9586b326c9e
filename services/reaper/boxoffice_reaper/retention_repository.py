"""Retention's statements: anonymise finished bookings, delete rows past their retention.

Each function handles one batch of at most `limit` rows in the caller's transaction, taking
rows with SKIP LOCKED so replicas share the work and the booking path is never blocked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from boxoffice_db.engine import session_scope
from boxoffice_db.models import (
    BOOTSTRAP_KEY_NAME,
    ApiKey,
    Booking,
    BookingStatus,
    Delivery,
    OutboxEvent,
    TaskRecord,
    TaskStatus,
)
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

# What a customer's email becomes: still a syntactically valid address, owned by nobody.
ANONYMISED_EMAIL = "anonymised@anonymised.invalid"
FINISHED = (BookingStatus.EXPIRED, BookingStatus.CANCELLED)
# Task rows in these states are history; running ones are kept whatever their age.
FINISHED_TASK_STATES = ("SUCCESS", "FAILURE", "REVOKED")


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
    """API keys revoked before `cutoff`: they authenticate nothing and only hold a hash.

    The bootstrap key's tombstone stays: without it the API would seed the revoked key again
    at its next start.
    """
    where = and_(
        ApiKey.revoked_at.is_not(None),
        ApiKey.revoked_at < cutoff,
        ApiKey.name != BOOTSTRAP_KEY_NAME,
    )
    return _delete_batch(session, ApiKey, ApiKey.id, where, limit)


def table_exists(name: str) -> bool:
    with session_scope() as session:
        return inspect(session.connection()).has_table(name)
