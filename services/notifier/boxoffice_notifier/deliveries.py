"""One delivery per (event, channel), with every attempt and the final outcome recorded."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from boxoffice_db.engine import session_scope
from boxoffice_messaging.inbox import SentMarks, default_marks
from sqlalchemy.orm import Session

from boxoffice_notifier import repository
from boxoffice_notifier.errors import redact


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


@dataclass(frozen=True)
class Skip:
    """The channel does not apply to this event (opted out, no number, not configured)."""

    reason: str


Send = Callable[[], str | None]
# Decides, inside the transaction that holds the delivery row, what to do: read what the
# message needs and return the send to run, or a Skip saying why there is nothing to send.
Plan = Callable[[Session], Send | Skip]

FINAL = {"sent", "failed", "skipped"}


def deliver(key: DeliveryKey, plan: Plan, *, marks: SentMarks | None = None) -> Outcome:
    """Send what `plan` decides unless this (event, channel) already reached a final state.

    The delivery row stays locked while sending, so a concurrent redelivery of the same event
    waits and then finds it done. Any failure rolls the send back, records the attempt in its
    own transaction and is raised again: the task retries or dead-letters it (tasks.py). If
    the process dies mid-send the row is unlocked unsent and a redelivery sends again: at
    least once, duplicates narrowed to that window.
    `plan` runs in that transaction (so what it reads costs no transaction of its own), and not
    at all for a delivery already done. `marks` defaults to the broker's Redis.
    """
    # A "sent" mark in Redis, written the instant the provider accepts, covers a worker
    # killed (or PostgreSQL restarting) before this transaction commits.
    marks = marks or default_marks()
    try:
        with session_scope() as session:
            if repository.lock_delivery(session, key) in FINAL:
                return Outcome.ALREADY_DONE
            action = plan(session)
            if isinstance(action, Skip):
                repository.set_delivery(session, key, status="skipped", error=action.reason)
                return Outcome.SKIPPED
            if marks.is_marked(key.event_id, key.channel):
                repository.set_delivery(session, key, status="sent", sent_at=datetime.now(UTC))
                return Outcome.ALREADY_DONE
            provider_message_id = action()
            marks.mark(key.event_id, key.channel)
            repository.set_delivery(
                session,
                key,
                status="sent",
                sent_at=datetime.now(UTC),
                count_attempt=True,
                error=None,
                provider_message_id=provider_message_id,
            )
            return Outcome.SENT
    except Exception as exc:
        # Whatever failed (a provider's refusal, an outage, a bug), the attempt is counted and
        # the error goes on to the task, which retries or dead-letters it (`on_give_up` then
        # records the delivery as failed): nothing is dropped here.
        record_attempt(key, redact(f"{type(exc).__name__}: {exc}"))
        raise


def skip(key: DeliveryKey, reason: str) -> Outcome:
    """Record that this channel does not apply (opted out, no number, not configured)."""
    with session_scope() as session:
        if repository.lock_delivery(session, key) in FINAL:
            return Outcome.ALREADY_DONE
        repository.set_delivery(session, key, status="skipped", error=reason)
        return Outcome.SKIPPED


def finish(key: DeliveryKey, status: str, reason: str, *, count_attempt: bool = True) -> None:
    """Record a final unsent outcome (counting the attempt) unless it had been sent."""
    with session_scope() as session:
        if repository.lock_delivery(session, key) == "sent":
            return
        repository.set_delivery(
            session, key, status=status, count_attempt=count_attempt, error=redact(reason)
        )


def record_attempt(key: DeliveryKey, reason: str) -> None:
    """Count a failed attempt that will be retried."""
    with session_scope() as session:
        if repository.lock_delivery(session, key) in FINAL:
            return
        repository.set_delivery(session, key, status="retrying", count_attempt=True, error=reason)
