"""The transactional outbox: events are rows written with the state change, then relayed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from boxoffice.messaging.v1.envelope_pb2 import Envelope
from boxoffice_contracts.envelope import to_json
from boxoffice_db.models import OutboxEvent
from boxoffice_telemetry.tracing import current_trace_context, span_from_carrier
from celery import Celery, group
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from boxoffice_messaging.routes import EVENT_ROUTES


def add_event(session: Session, envelope: Envelope) -> None:
    """Stage an event in the caller's transaction; it is sent only if that transaction commits.

    The current trace context rides along in the envelope, so the relay and the consumer
    continue the trace of the request (or task) that caused the event.
    """
    if not envelope.trace_context:
        envelope.trace_context.update(current_trace_context())
    session.add(
        OutboxEvent(
            event_id=uuid.UUID(envelope.event_id),
            event_type=envelope.event_type,
            aggregate_id=uuid.UUID(envelope.aggregate_id),
            payload=to_json(envelope),
        )
    )


def publish_event(app: Celery, event_type: str, payload: dict[str, Any]) -> None:
    """Send an event to every task routed for it; several routes go as one group."""
    signatures = [
        app.signature(route.task, args=[payload], queue=route.queue)
        for route in EVENT_ROUTES.get(event_type, ())
    ]
    if len(signatures) > 1:
        group(signatures).apply_async()
    elif signatures:
        signatures[0].apply_async()


def publish_pending(session: Session, app: Celery, batch_size: int) -> int:
    """Publish up to `batch_size` unsent events in order and mark them sent.

    Rows are locked with SKIP LOCKED so several relays share the backlog. A crash after
    publishing and before commit re-sends the batch; consumers deduplicate by event id.
    """
    rows = session.scalars(
        select(OutboxEvent)
        .where(OutboxEvent.published_at.is_(None))
        .order_by(OutboxEvent.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return 0
    for row in rows:
        with span_from_carrier(
            f"outbox publish {row.event_type}",
            row.payload.get("trace_context"),
            attributes={"boxoffice.event_type": row.event_type},
        ):
            publish_event(app, row.event_type, row.payload)
    session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_([row.id for row in rows]))
        .values(published_at=datetime.now(UTC), attempts=OutboxEvent.attempts + 1)
    )
    return len(rows)
