"""Consumer idempotency: one side effect per (event id, channel), however often it arrives."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

from boxoffice_db.engine import session_scope
from boxoffice_db.models import Delivery
from boxoffice_settings import get_settings
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def deliver_once(
    session: Session, event_id: uuid.UUID, channel: str, send: Callable[[], None]
) -> bool:
    """Run `send` unless this (event, channel) was already delivered; True if it ran.

    The delivery row stays locked while sending, so a concurrent redelivery waits and then
    sees `sent`. If the process dies mid-send the transaction rolls back and a redelivery
    sends again: at least once, with the duplicate window narrowed to the commit itself.
    """
    session.execute(
        insert(Delivery)
        .values(event_id=event_id, channel=channel, status="pending")
        .on_conflict_do_nothing(index_elements=[Delivery.event_id, Delivery.channel])
    )
    delivery = session.scalars(
        select(Delivery)
        .where(Delivery.event_id == event_id, Delivery.channel == channel)
        .with_for_update()
    ).one()
    if delivery.status == "sent":
        return False
    send()
    delivery.status = "sent"
    delivery.sent_at = datetime.now(UTC)
    delivery.error = None
    return True


class SentMarks:
    """A second, fast record of "sent" in Redis, written the instant the side effect is done.

    The delivery row in PostgreSQL is the record; but it commits a round trip after the
    SMTP server accepted the email, and not at all while PostgreSQL restarts. A worker
    killed in that gap would let a redelivery send again. The mark, one SET right after
    `send`, narrows the gap to well under a millisecond and covers a PostgreSQL outage.
    Best effort: if Redis is unreachable the delivery row alone decides.
    """

    TTL_SECONDS = 7 * 24 * 3600

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def key(event_id: uuid.UUID, channel: str) -> str:
        return f"boxoffice:sent:{channel}:{event_id}"

    def is_marked(self, event_id: uuid.UUID, channel: str) -> bool:
        try:
            return bool(self.redis.exists(self.key(event_id, channel)))
        except RedisError as exc:
            log.warning("sent marks unavailable: %s", exc)
            return False

    def mark(self, event_id: uuid.UUID, channel: str) -> None:
        try:
            self.redis.set(self.key(event_id, channel), "1", ex=self.TTL_SECONDS)
        except RedisError as exc:
            log.warning("could not mark as sent in Redis: %s", exc)


@lru_cache(maxsize=1)
def default_marks() -> SentMarks:
    """Marks on the broker's Redis, with short timeouts so an outage costs little."""
    return SentMarks(
        Redis.from_url(get_settings().redis_url, socket_timeout=1, socket_connect_timeout=1)
    )


def send_once(
    event_id: uuid.UUID,
    channel: str,
    send: Callable[[], None],
    *,
    marks: SentMarks | None = None,
    persist_for_seconds: float = 60.0,
) -> bool:
    """Run the external side effect `send` once per (event, channel); True if it ran now.

    Owns its transactions, unlike `deliver_once`, so it can handle the dangerous failure:
    `send` succeeded (the SMTP server accepted the email) but the commit that records it
    failed (PostgreSQL restarting). The Redis mark (see SentMarks) is already written by
    then, and the record is retried for up to `persist_for_seconds`; a redelivery that
    finds the mark records "sent" and sends nothing. What remains is a `kill -9` between
    the server's acceptance and the mark: a window of well under a millisecond in which a
    redelivery would send again (at least once, never lost).
    """
    marks = marks or default_marks()
    sent = False

    def send_unless_marked() -> None:
        nonlocal sent
        if marks.is_marked(event_id, channel):
            log.info(
                "already sent (marked in Redis); recording it",
                extra={"event_id": str(event_id), "channel": channel},
            )
            raise _AlreadyMarked
        send()
        sent = True
        marks.mark(event_id, channel)

    try:
        with session_scope() as session:
            return deliver_once(session, event_id, channel, send_unless_marked)
    except _AlreadyMarked:
        _record_sent(event_id, channel, persist_for_seconds)
        return False
    except Exception:
        if not sent:
            raise
        log.warning(
            "sent, but recording it failed; retrying the record",
            extra={"event_id": str(event_id), "channel": channel},
            exc_info=True,
        )
    _record_sent(event_id, channel, persist_for_seconds)
    return True


class _AlreadyMarked(Exception):
    """Raised inside deliver_once to roll its transaction back without sending."""


def _record_sent(event_id: uuid.UUID, channel: str, persist_for_seconds: float) -> None:
    deadline = time.monotonic() + persist_for_seconds
    pause = 0.2
    while True:
        try:
            with session_scope() as session:
                session.execute(
                    insert(Delivery)
                    .values(
                        event_id=event_id, channel=channel, status="sent", sent_at=datetime.now(UTC)
                    )
                    .on_conflict_do_update(
                        index_elements=[Delivery.event_id, Delivery.channel],
                        set_={"status": "sent", "sent_at": datetime.now(UTC), "error": None},
                    )
                )
            return
        except Exception:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
