"""Showtime reminders: each confirmed booking is reminded once, whatever the schedule cadence."""

from __future__ import annotations

import uuid
from datetime import timedelta

from boxoffice.notifier.v1 import notifier_pb2
from boxoffice_contracts.envelope import iso
from boxoffice_messaging.outbox import add_booking_event
from sqlalchemy.orm import Session

from boxoffice_notifier import repository

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
    rows = repository.due_reminders(session, window, limit)
    if not rows:
        return 0
    claimed = repository.claim_reminders(session, [row.id for row in rows])
    for row in rows:
        if row.id not in claimed:  # another run claimed it at the same moment
            continue
        add_booking_event(
            session,
            "notifier.showtime_reminder_due",
            row,
            notifier_pb2.ShowtimeReminderDue,
            starts_at=iso(row.starts_at),
            event_id=reminder_event_id(row.id),
        )
    return len(claimed)
