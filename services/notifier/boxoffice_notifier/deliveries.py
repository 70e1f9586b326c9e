"""One delivery per (event, channel), with every attempt and the final outcome recorded."""

from __future__ import annotations

import enum
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boxoffice_db.engine import session_scope
from boxoffice_db.models import Delivery
from boxoffice_messaging.inbox import default_marks
from sqlalchemy import Update, bindparam, update
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


@dataclass(frozen=True)
class Skip:
    """The channel does not apply to this event (opted out, no number, not configured)."""

    reason: str


Send = Callable[[], str | None]
# Decides, inside the transaction that holds the delivery row, what to do: read what the
# message needs and return the send to run, or a Skip saying why there is nothing to send.
Plan = Callable[[Session], Send | Skip]

FINAL = {"sent", "failed", "skipped"}


def deliver(key: DeliveryKey, plan: Plan) -> Outcome:
    """Send what `plan` decides unless this (event, channel) already reached a final state.

    The delivery row stays locked while sending, so a concurrent redelivery of the same event
    waits and then finds it done. A transient failure rolls the send back, records the
    attempt in its own transaction and re-raises for the caller to retry; a permanent one is
    recorded as `failed` and not raised. If the process dies mid-send the row is unlocked
    unsent and a redelivery sends again: at least once, duplicates narrowed to that window.
    `plan` runs in that transaction (so what it reads costs no transaction of its own), and not
    at all for a delivery already done.
    """
    # A "sent" mark in Redis, written the instant the provider accepts, covers a worker
    # killed (or PostgreSQL restarting) before this transaction commits.
    marks = default_marks()
    try:
        with session_scope() as session:
            if _lock(session, key) in FINAL:
                return Outcome.ALREADY_DONE
            action = plan(session)
            if isinstance(action, Skip):
                _set(session, key, status="skipped", error=action.reason)
                return Outcome.SKIPPED
            if marks.is_marked(key.event_id, key.channel):
                _set(session, key, status="sent", sent_at=datetime.now(UTC))
                return Outcome.ALREADY_DONE
            provider_message_id = action()
            marks.mark(key.event_id, key.channel)
            _set(
                session,
                key,
                status="sent",
                sent_at=datetime.now(UTC),
                count_attempt=True,
                error=None,
                provider_message_id=provider_message_id,
            )
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
        if _lock(session, key) in FINAL:
            return Outcome.ALREADY_DONE
        _set(session, key, status="skipped", error=reason)
        return Outcome.SKIPPED


def finish(key: DeliveryKey, status: str, reason: str) -> None:
    """Record a final unsent outcome (counting the attempt) unless it had been sent."""
    with session_scope() as session:
        if _lock(session, key) == "sent":
            return
        _set(session, key, status=status, count_attempt=True, error=reason)


def record_attempt(key: DeliveryKey, reason: str) -> None:
    """Count a failed attempt that will be retried."""
    with session_scope() as session:
        if _lock(session, key) in FINAL:
            return
        _set(session, key, status="retrying", count_attempt=True, error=reason)


# Insert the row if it is new, lock it either way, and say its status: one round trip. The
# no-op DO UPDATE takes the row lock as SELECT ... FOR UPDATE would (waiting for a concurrent
# holder, then seeing its committed status), which DO NOTHING does not.
_inserted = insert(Delivery).values(
    event_id=bindparam("event_id"),
    channel=bindparam("channel"),
    status="pending",
    kind=bindparam("kind"),
    booking_id=bindparam("booking_id"),
)
_LOCK = _inserted.on_conflict_do_update(
    index_elements=[Delivery.event_id, Delivery.channel],
    set_={"status": Delivery.status, "updated_at": Delivery.updated_at},
).returning(Delivery.status)


def _lock(session: Session, key: DeliveryKey) -> str:
    # Core on the session's connection: the ORM's bulk-statement machinery adds nothing here.
    status: str = (
        session.connection()
        .execute(
            _LOCK,
            {
                "event_id": key.event_id,
                "channel": key.channel,
                "kind": key.kind,
                "booking_id": key.booking_id,
            },
        )
        .scalar_one()
    )
    return status


def _set(session: Session, key: DeliveryKey, *, count_attempt: bool = False, **values: Any) -> None:
    session.connection().execute(
        _update(tuple(sorted(values)), count_attempt),
        {
            "key_event_id": key.event_id,
            "key_channel": key.channel,
            **{f"new_{column}": value for column, value in values.items()},
        },
    )


@functools.lru_cache(maxsize=32)
def _update(columns: tuple[str, ...], count_attempt: bool) -> Update:
    """UPDATE of `columns` (bound by name) on one delivery, built once per set of columns."""
    # Parameters named apart from the columns, which SQLAlchemy keeps for itself.
    values: dict[str, Any] = {column: bindparam(f"new_{column}") for column in columns}
    if count_attempt:
        values["attempts"] = Delivery.attempts + 1
    return (
        update(Delivery)
        .where(
            Delivery.event_id == bindparam("key_event_id"),
            Delivery.channel == bindparam("key_channel"),
        )
        .values(values)
    )
