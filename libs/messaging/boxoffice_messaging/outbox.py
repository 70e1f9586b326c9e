"""The transactional outbox: events are rows written with the state change, then relayed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from boxoffice.messaging.v1.envelope_pb2 import Envelope
from boxoffice_contracts.envelope import EventPayload, build_envelope, to_json
from boxoffice_db import kept
from boxoffice_db.kept import DriverStatement
from boxoffice_db.models import OutboxEvent, TaskRecord, TaskStatus
from boxoffice_telemetry.tracing import current_trace_context, span_from_carrier
from celery import Celery, group
from kombu import Producer
from prometheus_client import Counter, Histogram
from sqlalchemy import BigInteger, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from boxoffice_messaging.routes import EVENT_ROUTES, Route
from boxoffice_messaging.task_status import summarize_args

PUBLISHED = Counter("boxoffice_outbox_published_total", "Outbox events published by the relay")
PUBLISH_LAG = Histogram(
    "boxoffice_outbox_publish_lag_seconds",
    "Time from an event's commit to the outbox until the relay published it",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def outbox_payload(envelope: Envelope) -> dict[str, Any]:
    """An outbox row's payload: the envelope as JSON, with the current trace context.

    The context rides along, so the relay and the consumer continue the trace of the
    request (or task) that caused the event.
    """
    if not envelope.trace_context:
        envelope.trace_context.update(current_trace_context())
    return to_json(envelope)


def add_event(session: Session, envelope: Envelope) -> None:
    """Stage an event in the caller's transaction; it is sent only if that transaction commits."""
    # A plain INSERT now rather than an ORM object flushed later: cheaper on the hot paths,
    # and events of one aggregate get their ids (the relay's order) in the order they happen.
    # Built once, run as Core on the session's connection (the ORM's bulk insert adds nothing).
    session.connection().execute(
        _ADD_EVENT,
        {
            "event_id": uuid.UUID(envelope.event_id),
            "event_type": envelope.event_type,
            "aggregate_id": uuid.UUID(envelope.aggregate_id),
            "payload": outbox_payload(envelope),
        },
    )


_ADD_EVENT = insert(OutboxEvent).values(
    event_id=bindparam("event_id"),
    event_type=bindparam("event_type"),
    aggregate_id=bindparam("aggregate_id"),
    payload=bindparam("payload", type_=OutboxEvent.__table__.c.payload.type),
)


class BookingRef(Protocol):
    """A booking, or a row naming one: its id and its showtime's."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def showtime_id(self) -> uuid.UUID: ...


def add_booking_event(
    session: Session,
    event_type: str,
    booking: BookingRef,
    payload_type: Callable[..., EventPayload],
    *,
    event_id: uuid.UUID | None = None,
    **fields: Any,
) -> None:
    """Stage an event about `booking`: its payload names the booking and the showtime."""
    payload = payload_type(
        booking_id=str(booking.id), showtime_id=str(booking.showtime_id), **fields
    )
    add_event(session, build_envelope(event_type, booking.id, payload, event_id=event_id))


def task_id_for(event_id: uuid.UUID, route: Route) -> str:
    """The Celery task id of an event's delivery to one task: the same on every re-send.

    A relay that crashes after publishing re-sends the batch; the same task id keeps one
    `tasks` row per delivery, and the consumer's inbox drops the duplicate.
    """
    return str(uuid.uuid5(event_id, route.task))


def event_args_repr(payload: dict[str, Any]) -> str:
    """The `argsrepr` of a task that carries `payload`: its summary without personal data."""
    return repr(summarize_args([payload], {})["args"])


def publish_event(
    app: Celery,
    event_type: str,
    payload: dict[str, Any],
    event_id: uuid.UUID | None = None,
    producer: Producer | None = None,
) -> None:
    """Send an event to every task routed for it; several routes go as one group.

    With `event_id`, each delivery gets its stable task id (see task_id_for). A caller that
    sends many passes its `producer`: one broker connection taken from the pool for all.
    """
    shown = event_args_repr(payload)
    signatures = [
        app.signature(
            route.task,
            args=[payload],
            queue=route.queue,
            # What events, Flower and worker logs show of the arguments: ids and the event
            # type, not the payload (and not the CPU of Celery's repr of all of it).
            argsrepr=shown,
            kwargsrepr="{}",
            # Without an event id Celery picks the task id: an explicit None would break it.
            **({"task_id": task_id_for(event_id, route)} if event_id is not None else {}),
        )
        for route in EVENT_ROUTES.get(event_type, ())
    ]
    # No queue declared per message: the broker is Redis, where a task goes to the list named
    # by its queue (kombu's anonymous exchange) whether or not anyone declared it, and Celery's
    # default, a cached declaration of the queue bound anew to the channel for every message,
    # cost a fifth of this function's CPU (0.42-0.64 against 0.33-0.55 ms an event, issue 18).
    if len(signatures) > 1:
        group(signatures).apply_async(producer=producer, declare=[])
    elif signatures:
        signatures[0].apply_async(producer=producer, declare=[])


# The rows of the tasks a batch will start, one statement built once and run with every row's
# parameters (a multi-row VALUES built per batch cost a compile each time: a quarter of the
# relay's CPU). A worker that started the task first (a message published again) wrote its row
# without the booking.
_task_rows = insert(TaskRecord)
_ADD_TASK_ROWS = _task_rows.on_conflict_do_update(
    index_elements=[TaskRecord.id],
    set_={"booking_id": _task_rows.excluded.booking_id},
    where=TaskRecord.booking_id.is_(None),
)


_outbox = OutboxEvent.__table__
# The batch, locked with SKIP LOCKED, and for each row whether it may go now: no older unsent
# event of its aggregate outside the batch (one locked by another relay). One statement: the
# CTE locks once (MATERIALIZED) and both of its uses read the same rows.
_batch = (
    select(
        _outbox.c.id,
        _outbox.c.event_id,
        _outbox.c.event_type,
        _outbox.c.aggregate_id,
        _outbox.c.payload,
        _outbox.c.created_at,
    )
    .where(_outbox.c.published_at.is_(None))
    .order_by(_outbox.c.id)
    .limit(bindparam("batch_size"))
    .with_for_update(skip_locked=True)
    .cte("batch")
    .prefix_with("MATERIALIZED")
)
_older = _outbox.alias("older")
_blocked = (
    select(_older.c.id)
    .where(
        _older.c.published_at.is_(None),
        _older.c.aggregate_id == _batch.c.aggregate_id,
        _older.c.id < _batch.c.id,
        _older.c.id.not_in(select(_batch.c.id)),
    )
    .exists()
)
_LOCK_BATCH = DriverStatement.of(select(_batch, ~_blocked).order_by(_batch.c.id))
_MARK_PUBLISHED = DriverStatement.of(
    update(OutboxEvent)
    .where(OutboxEvent.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    .values(published_at=bindparam("published_at"), attempts=OutboxEvent.attempts + 1)
)


class _Pending(NamedTuple):
    id: int
    event_id: uuid.UUID
    event_type: str
    aggregate_id: uuid.UUID
    payload: dict[str, Any]
    created_at: datetime
    ready: bool


def publish_pending(session: Session, app: Celery, batch_size: int) -> int:
    """Publish up to `batch_size` unsent events, in order per aggregate, and mark them sent.

    Several relays share the backlog: each locks a batch with SKIP LOCKED. An event is only
    published when no older unsent event of its aggregate is outside this batch (still
    locked by another relay, or beyond the batch), so a booking's events go out in the
    order they were written whatever the number of relays. A crash after publishing and
    before the commit re-sends the batch; consumers deduplicate by event id.
    Returns how many rows were examined, so the caller knows whether more may be waiting.
    """
    # Two statements on kept cursors (boxoffice_db.kept): through the ORM, loading the batch,
    # its blockers and the update cost more client CPU than the publishing, on every poll.
    connection = session.connection()
    rows = [
        _Pending(*row)
        for row in kept.execute(connection, _LOCK_BATCH, {"batch_size": batch_size}).fetchall()
    ]
    ready = [row for row in rows if row.ready]
    if not ready:
        return 0
    # The tasks' rows are written before their messages exist. Written after publishing, a
    # worker could start a task first: its status writer's batch (upserts of tasks rows, in
    # its own order) and this insert then waited on each other's uncommitted rows, a deadlock
    # PostgreSQL broke after deadlock_timeout (1 s) by failing this batch, which the relay then
    # published a second time. Now a worker's write of one of these rows waits for this
    # transaction and nothing here waits for the worker.
    task_rows = [
        {
            "id": task_id_for(row.event_id, route),
            "name": route.task,
            "queue": route.queue,
            "status": TaskStatus.PENDING,
            "args_summary": summarize_args([row.payload], {}),
            # Every event's aggregate is a booking: its client may read the task.
            "booking_id": row.aggregate_id,
            "retries": 0,
        }
        for row in ready
        for route in EVENT_ROUTES.get(row.event_type, ())
    ]
    if task_rows:
        connection.execute(_ADD_TASK_ROWS, task_rows)
    # One Redis round trip for the whole batch: kombu's publish batch pipelines the LPUSHes
    # (in order, so each booking's events keep theirs) and sends them when the block ends.
    # Its flush is not retried: a failure raises, this transaction rolls back and the relay
    # sends the batch again, as after any failed publish.
    with app.producer_or_acquire() as producer, producer.batch():
        for row in ready:
            with span_from_carrier(
                f"outbox publish {row.event_type}",
                row.payload.get("trace_context"),
                attributes={"boxoffice.event_type": row.event_type},
            ):
                publish_event(app, row.event_type, row.payload, row.event_id, producer)
    kept.execute(
        connection,
        _MARK_PUBLISHED,
        {"ids": [row.id for row in ready], "published_at": datetime.now(UTC)},
    )
    now = datetime.now(UTC)
    for row in ready:
        PUBLISH_LAG.observe(max(0.0, (now - row.created_at).total_seconds()))
    PUBLISHED.inc(len(ready))
    return len(rows)


@dataclass(frozen=True)
class Backlog:
    """Unsent outbox rows and how long the oldest has waited."""

    unsent: int
    oldest_age_seconds: float


def outbox_backlog(session: Session) -> Backlog:
    """The outbox backlog, as the relay's gauges and the operators' queries report it."""
    count, oldest = session.execute(
        select(func.count(), func.min(OutboxEvent.created_at)).where(
            OutboxEvent.published_at.is_(None)
        )
    ).one()
    age = 0.0
    if oldest is not None:
        age = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
    return Backlog(unsent=int(count), oldest_age_seconds=age)
