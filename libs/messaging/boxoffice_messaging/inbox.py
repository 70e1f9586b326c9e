"""Consumer idempotency: one side effect per (event id, channel), however often it arrives."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from boxoffice_db.engine import session_scope
from boxoffice_db.models import Delivery
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


def send_once(
    event_id: uuid.UUID,
    channel: str,
    send: Callable[[], None],
    *,
    persist_for_seconds: float = 60.0,
) -> bool:
    """Run the external side effect `send` once per (event, channel); True if it ran now.

    Owns its transactions, unlike `deliver_once`, so it can handle the one dangerous
    failure: `send` succeeded (the SMTP server accepted the email) but the commit that
    records it failed (PostgreSQL restarting). Then it keeps trying to record "sent" for up
    to `persist_for_seconds` instead of letting a retry send the email a second time.
    What remains is a `kill -9` between the server's acceptance and the commit: a few
    milliseconds in which a redelivery would send again (at least once, never lost).
    """
    sent = False

    def send_and_note() -> None:
        nonlocal sent
        send()
        sent = True

    try:
        with session_scope() as session:
            return deliver_once(session, event_id, channel, send_and_note)
    except Exception:
        if not sent:
            raise
        log.warning(
            "sent, but recording it failed; retrying the record",
            extra={"event_id": str(event_id), "channel": channel},
        )
    _record_sent(event_id, channel, persist_for_seconds)
    return True


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
