"""Test data made through the booking service's own catalog functions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from boxoffice_booking.catalog import create_screen, create_showtime, create_venue
from boxoffice_db.engine import session_scope


def make_showtime(
    rows: int = 4,
    seats_per_row: int = 10,
    blocked: tuple[str, ...] = ("A1",),
    starts_in: timedelta = timedelta(days=1),
    venue_name: str | None = None,
    film: str = "Test Film",
) -> uuid.UUID:
    """A venue, a screen of `rows` x `seats_per_row`, and a showtime (tomorrow); returns its id."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:rows]
    with session_scope() as session:
        venue = create_venue(
            session, venue_name or f"Test Venue {uuid.uuid4().hex[:6]}", "Asia/Kolkata"
        )
        screen = create_screen(
            session, venue.id, "Screen 1", {r: seats_per_row for r in letters}, blocked=blocked
        )
        starts = datetime.now(UTC) + starts_in
        showtime = create_showtime(
            session,
            screen.id,
            film,
            starts,
            starts + timedelta(hours=2),
            {"standard": 20000},
        )
        return showtime.id


def make_booking(
    showtime_id: uuid.UUID,
    seats: list[str],
    email: str = "ada@example.com",
    phone: str | None = "+919800000001",
    *,
    confirm: bool = True,
    sms_opt_out: bool = False,
) -> uuid.UUID:
    """A booking held (and by default paid with the test provider) through the booking service."""
    from boxoffice_booking.holds import hold_seats, pay_booking

    with session_scope() as session:
        booking = hold_seats(
            session, showtime_id, seats, email, phone, 600, 10, sms_opt_out=sms_opt_out
        )
        booking_id = booking.id
    if confirm:
        with session_scope() as session:
            pay_booking(session, booking_id, "test", "succeeded")
    return booking_id
