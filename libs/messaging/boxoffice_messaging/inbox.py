"""Consumer idempotency: one side effect per (event id, channel), however often it arrives."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from boxoffice_db.models import Delivery
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session


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
