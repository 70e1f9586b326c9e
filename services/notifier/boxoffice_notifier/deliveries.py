"""One delivery per (event, channel), with every attempt and the final outcome recorded."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from boxoffice_db.engine import session_scope
from boxoffice_db.models import Delivery
from boxoffice_messaging.inbox import default_marks
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from boxoffice_notifier.errors import PermanentDeliveryError, TransientDeliveryError


class Outcome(enum.StrEnum):
    SENT = "sent"
    ALREADY_DONE = "already_done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class DeliveryKey:
    event_id: uuid.UUID
    channel: str
    kind: str
    booking_id: uuid.UUID | None = None


FINAL = {"sent", "failed", "skipped"}


def deliver(key: DeliveryKey, send: Callable[[], str | None]) -> Outcome:
    """Run `send` unless this (event, channel) already reached a final state.

    The delivery row stays locked while sending, so a concurrent redelivery of the same event
    waits and then finds it done. A transient failure rolls the send back, records the
    attempt in its own transaction and re-raises for the caller to retry; a permanent one is
    recorded as `failed` and not raised. If the process dies mid-send the row is unlocked
    unsent and a redelivery sends again: at least once, duplicates narrowed to that window.
    """
    # A "sent" mark in Redis, written the instant the provider accepts, covers a worker
    # killed (or PostgreSQL restarting) before this transaction commits.
    marks = default_marks()
    try:
        with session_scope() as session:
            delivery = _lock_row(session, key)
            if delivery.status in FINAL:
                return Outcome.ALREADY_DONE
            if marks.is_marked(key.event_id, key.channel):
                delivery.status = "sent"
                delivery.sent_at = datetime.now(UTC)
                return Outcome.ALREADY_DONE
            provider_message_id = send()
            marks.mark(key.event_id, key.channel)
            delivery.status = "sent"
            delivery.sent_at = datetime.now(UTC)
            delivery.attempts += 1
            delivery.error = None
            delivery.provider_message_id = provider_message_id
            return Outcome.SENT
    except PermanentDeliveryError as exc:
        finish(key, "failed", exc.reason)
        return Outcome.FAILED
    except TransientDeliveryError as exc:
        record_attempt(key, exc.reason)
        raise


def skip(key: DeliveryKey, reason: str) -> Outcome:
    """Record that this channel does not apply (opted out, no number, not configured)."""
    with session_scope() as session:
        delivery = _lock_row(session, key)
        if delivery.status in FINAL:
            return Outcome.ALREADY_DONE
        delivery.status = "skipped"
        delivery.error = reason
        return Outcome.SKIPPED


def finish(key: DeliveryKey, status: str, reason: str) -> None:
    """Record a final unsent outcome (counting the attempt) unless it had been sent."""
    with session_scope() as session:
        delivery = _lock_row(session, key)
        if delivery.status == "sent":
            return
        delivery.status = status
        delivery.attempts += 1
        delivery.error = reason


def record_attempt(key: DeliveryKey, reason: str) -> None:
    """Count a failed attempt that will be retried."""
    with session_scope() as session:
        delivery = _lock_row(session, key)
        if delivery.status in FINAL:
            return
        delivery.status = "retrying"
        delivery.attempts += 1
        delivery.error = reason


def _lock_row(session: Session, key: DeliveryKey) -> Delivery:
    session.execute(
        insert(Delivery)
        .values(
            event_id=key.event_id,
            channel=key.channel,
            status="pending",
            kind=key.kind,
            booking_id=key.booking_id,
        )
        .on_conflict_do_nothing(index_elements=[Delivery.event_id, Delivery.channel])
    )
    return session.scalars(
        select(Delivery)
        .where(Delivery.event_id == key.event_id, Delivery.channel == key.channel)
        .with_for_update()
    ).one()
