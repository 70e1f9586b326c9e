"""One delivery per (event, channel), with every attempt and the final outcome recorded."""

from __future__ import annotations

import enum
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boxoffice_db.engine import connection_scope
from boxoffice_messaging.inbox import SentMarks, default_marks
from sqlalchemy import Connection

from boxoffice_notifier import repository
from boxoffice_notifier.errors import redact
from boxoffice_notifier.ratelimit import RateLimiter


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


@dataclass(frozen=True)
class Budgeted:
    """A send that first takes one unit of its provider's shared budget (`RateLimiter`)."""

    budget: RateLimiter
    send: Send


# Decides, inside the transaction that holds the delivery row, what to do: read what the
# message needs and return the send to run, or a Skip saying why there is nothing to send.
# It gets the row of the key's booking details, read with the claim
# (repository.lock_delivery_with_booking), or None (no booking on the key, or no such booking).
Plan = Callable[[Connection, tuple[Any, ...] | None], Send | Budgeted | Skip]

FINAL = {"sent", "failed", "skipped"}
# How long a worker keeps trying to record a send the provider accepted (PostgreSQL down).
RECORD_SENT_TIMEOUT_SECONDS = 120.0

log = logging.getLogger(__name__)


def deliver(key: DeliveryKey, plan: Plan, *, marks: SentMarks | None = None) -> Outcome:
    """Send what `plan` decides unless this (event, channel) already reached a final state.

    The delivery row stays locked while sending, so a concurrent redelivery of the same event
    waits and then finds it done. A failure before the provider accepts rolls the send back,
    records the attempt in its own transaction and is raised again: the task retries or
    dead-letters it (tasks.py). Once the provider has accepted, the send is recorded whatever
    happens next: a failed commit (PostgreSQL restarting) is followed by `record_sent` in new
    transactions until one commits. Only a process killed between the provider's acceptance
    and the "sent" mark sends again on redelivery (at least once); an email sent again is the
    same message, with the same Message-ID.
    `plan` runs in that transaction (so what it reads costs no transaction of its own), and not
    at all for a delivery already done; the booking's details come with the claim. `marks`
    defaults to the broker's Redis.
    """
    # A "sent" mark in Redis, written the instant the provider accepts, covers a worker
    # killed (or PostgreSQL restarting) before this transaction commits.
    own_marks = marks is None
    marks = marks or default_marks()
    accepted: Accepted | None = None
    try:
        with connection_scope() as connection:
            status, booking = repository.lock_delivery_with_booking(connection, key)
            if status in FINAL:
                return Outcome.ALREADY_DONE
            action = plan(connection, booking)
            if isinstance(action, Skip):
                repository.set_delivery(connection, key, status="skipped", error=action.reason)
                return Outcome.SKIPPED
            if not _clear_to_send(key, action, marks, own_marks):
                repository.set_delivery(connection, key, status="sent", sent_at=datetime.now(UTC))
                return Outcome.ALREADY_DONE
            send = action.send if isinstance(action, Budgeted) else action
            accepted = Accepted(send(), datetime.now(UTC))
            marks.mark(key.event_id, key.channel)
            _set_sent(connection, key, accepted)
            return Outcome.SENT
    except Exception as exc:
        if accepted is not None:
            log.warning("recording a send the provider accepted: %s", redact(str(exc)))
            record_sent(key, accepted)
            return Outcome.SENT
        # Whatever failed (a provider's refusal, an outage, a bug), the attempt is counted and
        # the error goes on to the task, which retries or dead-letters it (`on_give_up` then
        # records the delivery as failed): nothing is dropped here.
        record_attempt(key, redact(f"{type(exc).__name__}: {exc}"))
        raise


def _clear_to_send(
    key: DeliveryKey, action: Send | Budgeted, marks: SentMarks, own_marks: bool
) -> bool:
    """False if a "sent" mark says an earlier attempt was accepted; else True, with one unit of
    the action's budget taken (if it has one).

    The default marks live on the broker's Redis, as the budgets do: there the budget's script
    checks the mark too, one round trip instead of two.
    """
    if isinstance(action, Budgeted) and own_marks:
        return action.budget.acquire(unless=marks.key(key.event_id, key.channel))
    if marks.is_marked(key.event_id, key.channel):
        return False
    if isinstance(action, Budgeted):
        action.budget.acquire()
    return True


@dataclass(frozen=True)
class Accepted:
    """What the provider answered when it accepted a message, and when."""

    provider_message_id: str | None
    at: datetime


def record_sent(key: DeliveryKey, accepted: Accepted) -> None:
    """Record an accepted send in a transaction of its own, retrying until one commits.

    Raising instead would retry the task, and the retry would send again if the Redis mark
    was lost too (a Sentinel failover while PostgreSQL restarts). The message stays unacked
    meanwhile; should the worker give up after `RECORD_SENT_TIMEOUT_SECONDS`, the error goes
    to the task as any other.
    """
    deadline = time.monotonic() + RECORD_SENT_TIMEOUT_SECONDS
    delay = 0.1
    while True:
        try:
            with connection_scope() as connection:
                if repository.lock_delivery(connection, key) != "sent":
                    _set_sent(connection, key, accepted)
                return
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("retrying the record of a send: %s", redact(str(exc)))
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _set_sent(connection: Connection, key: DeliveryKey, accepted: Accepted) -> None:
    repository.set_delivery(
        connection,
        key,
        status="sent",
        sent_at=accepted.at,
        count_attempt=True,
        error=None,
        provider_message_id=accepted.provider_message_id,
    )


def skip(key: DeliveryKey, reason: str) -> Outcome:
    """Record that this channel does not apply (opted out, no number, not configured)."""
    with connection_scope() as connection:
        if repository.lock_delivery(connection, key) in FINAL:
            return Outcome.ALREADY_DONE
        repository.set_delivery(connection, key, status="skipped", error=reason)
        return Outcome.SKIPPED


def finish(key: DeliveryKey, status: str, reason: str, *, count_attempt: bool = True) -> None:
    """Record a final unsent outcome (counting the attempt) unless it had been sent."""
    with connection_scope() as connection:
        if repository.lock_delivery(connection, key) == "sent":
            return
        repository.set_delivery(
            connection, key, status=status, count_attempt=count_attempt, error=redact(reason)
        )


def record_attempt(key: DeliveryKey, reason: str) -> None:
    """Count a failed attempt that will be retried."""
    with connection_scope() as connection:
        if repository.lock_delivery(connection, key) in FINAL:
            return
        repository.set_delivery(
            connection, key, status="retrying", count_attempt=True, error=reason
        )
