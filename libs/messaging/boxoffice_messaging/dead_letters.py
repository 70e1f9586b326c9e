"""Dead letters: messages a service gave up on, kept with the reason, to inspect and replay.

Each service has its own dead-letter queue (the `service` column). They live in PostgreSQL,
not Redis: they must outlive a Redis restart, and operators query them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boxoffice_db.engine import session_scope
from boxoffice_db.models import DeadLetter, Delivery
from celery import Celery
from prometheus_client import Counter
from sqlalchemy import String, cast, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

# Not "boxoffice_dead_letters_total": that would clash with the gauge boxoffice_dead_letters.
DEAD_LETTERED = Counter(
    "boxoffice_messages_dead_lettered_total",
    "Messages moved to a dead-letter queue, by task and error type",
    ["name", "error_type"],
)

REASON_LIMIT = 4000


@dataclass(frozen=True)
class FailedMessage:
    """What a worker knows about a message when it gives up on it."""

    service: str
    task_name: str
    queue: str
    task_id: str | None
    args: Sequence[Any]
    kwargs: dict[str, Any]
    error: BaseException
    attempts: int
    reason: str

    @property
    def event_id(self) -> str | None:
        """The event id of an Envelope message, when the first argument is one."""
        if self.args and isinstance(self.args[0], dict):
            value = self.args[0].get("event_id")
            return str(value)[:64] if value is not None else None
        return None


def record_dead_letter(session: Session, failed: FailedMessage) -> bool:
    """Store a message in its service's dead-letter queue, in the caller's transaction.

    False if this task id was dead-lettered before (redelivered after a crash before the ack).
    """
    inserted = session.execute(
        insert(DeadLetter)
        .values(
            service=failed.service,
            task_name=failed.task_name,
            queue=failed.queue,
            task_id=failed.task_id,
            event_id=failed.event_id,
            message={"args": list(failed.args), "kwargs": dict(failed.kwargs)},
            error_type=type(failed.error).__name__,
            reason=failed.reason[:REASON_LIMIT],
            attempts=failed.attempts,
        )
        .on_conflict_do_nothing(index_elements=[DeadLetter.service, DeadLetter.task_id])
        .returning(DeadLetter.id)
    ).first()
    if inserted is not None:
        DEAD_LETTERED.labels(failed.task_name, type(failed.error).__name__).inc()
    return inserted is not None


def list_dead_letters(
    session: Session,
    service: str | None = None,
    *,
    include_replayed: bool = False,
    limit: int = 100,
) -> list[DeadLetter]:
    """Dead letters, newest first; replayed ones only if asked for."""
    query = select(DeadLetter).order_by(DeadLetter.created_at.desc()).limit(limit)
    if service is not None:
        query = query.where(DeadLetter.service == service)
    if not include_replayed:
        query = query.where(DeadLetter.replayed_at.is_(None))
    return list(session.scalars(query))


def count_dead_letters(session: Session) -> dict[str, int]:
    """Dead letters waiting for an operator (not replayed), by service."""
    rows = session.execute(
        select(DeadLetter.service, func.count())
        .where(DeadLetter.replayed_at.is_(None))
        .group_by(DeadLetter.service)
    ).all()
    return {service: count for service, count in rows}


def waiting_dead_letters() -> dict[str, int]:
    """`count_dead_letters` in a transaction of its own (the dead-letter gauge's scrape)."""
    with session_scope() as session:
        return count_dead_letters(session)


def find_dead_letter(session: Session, letter_id: str) -> DeadLetter | None:
    """A dead letter by its id, or by a unique prefix of it (as the CLI prints them)."""
    try:
        return session.get(DeadLetter, uuid.UUID(letter_id))
    except ValueError:
        pass
    matches = session.scalars(
        select(DeadLetter).where(cast(DeadLetter.id, String).startswith(letter_id)).limit(2)
    ).all()
    return matches[0] if len(matches) == 1 else None


def replay_dead_letter(session: Session, app: Celery, letter: DeadLetter) -> str:
    """Send the original message again to its task and queue; returns the new task id.

    The row is locked and stamped in the caller's transaction; if that transaction fails
    after the send, the message goes out twice, which the consumers' inbox makes harmless.
    """
    session.refresh(letter, with_for_update=True)
    if letter.replayed_at is not None:
        raise ValueError(f"dead letter {letter.id} was already replayed")
    if letter.event_id is not None:
        # A consumer that gave up recorded the delivery as failed, a final state it would
        # skip; the operator asks for another try, so reopen it.
        with contextlib.suppress(ValueError):
            session.execute(
                update(Delivery)
                .where(
                    Delivery.event_id == uuid.UUID(letter.event_id),
                    Delivery.status == "failed",
                )
                .values(status="pending")
            )
    result = app.send_task(
        letter.task_name,
        args=letter.message.get("args", []),
        kwargs=letter.message.get("kwargs", {}),
        queue=letter.queue,
    )
    letter.replayed_at = datetime.now(UTC)
    letter.replay_task_id = result.id
    return str(result.id)


def purge_dead_letters(
    session: Session, service: str | None = None, *, older_than: datetime | None = None
) -> int:
    """Delete dead letters (of one service, older than a time); returns how many."""
    statement = delete(DeadLetter)
    if service is not None:
        statement = statement.where(DeadLetter.service == service)
    if older_than is not None:
        statement = statement.where(DeadLetter.created_at < older_than)
    result = session.execute(statement)
    return int(getattr(result, "rowcount", 0))
