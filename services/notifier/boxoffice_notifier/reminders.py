"""Showtime reminders: each confirmed booking is reminded once, whatever the schedule cadence."""

from __future__ import annotations

import uuid
from datetime import timedelta

from boxoffice.notifier.v1 import notifier_pb2
from boxoffice_contracts.envelope import build_envelope, iso
from boxoffice_db.models import Booking, BookingReminder, BookingStatus, Showtime
from boxoffice_messaging.outbox import add_event
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

# Reminder event ids are derived from the booking, so even a reminder announced twice (a
# crash between claim and commit is impossible, but a replayed outbox row is not) is one
# delivery per channel.
REMINDER_NAMESPACE = uuid.UUID("6f1d3a52-5b0e-4a47-9c41-3f7c2b8e9a10")


def reminder_event_id(booking_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(REMINDER_NAMESPACE, f"showtime-reminder:{booking_id}")


def claim_due_reminders(session: Session, window: timedelta, limit: int = 1000) -> int:
    """Claim confirmed bookings whose showtime starts within `window` and announce them.

    The claim row and the outbox event commit together: a booking is claimed once (primary
    key), and a claimed booking's reminder is never lost (transactional outbox).
    """
    due = (
        select(Booking.id, Booking.showtime_id, Showtime.starts_at)
        .join(Showtime, Showtime.id == Booking.showtime_id)
        .where(
            Booking.status == BookingStatus.CONFIRMED,
            Showtime.starts_at > func.now(),
            Showtime.starts_at <= func.now() + window,
            ~select(BookingReminder.booking_id)
            .where(BookingReminder.booking_id == Booking.id)
            .exists(),
        )
        .order_by(Showtime.starts_at)
        .limit(limit)
    )
    rows = session.execute(due).all()
    if not rows:
        return 0
    claimed = set(
        session.scalars(
            insert(BookingReminder)
            .values([{"booking_id": row.id} for row in rows])
            .on_conflict_do_nothing(index_elements=[BookingReminder.booking_id])
            .returning(BookingReminder.booking_id)
        )
    )
    for row in rows:
        if row.id not in claimed:  # another run claimed it at the same moment
            continue
        add_event(
            session,
            build_envelope(
                "notifier.showtime_reminder_due",
                row.id,
                notifier_pb2.ShowtimeReminderDue(
                    booking_id=str(row.id),
                    showtime_id=str(row.showtime_id),
                    starts_at=iso(row.starts_at),
                ),
                event_id=reminder_event_id(row.id),
            ),
        )
    return len(claimed)
