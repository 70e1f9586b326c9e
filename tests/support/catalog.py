"""Test data made through the booking service's own catalog functions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from boxoffice_booking.catalog import create_screen, create_showtime, create_venue
from boxoffice_db.engine import session_scope


def make_showtime(
    rows: int = 4, seats_per_row: int = 10, blocked: tuple[str, ...] = ("A1",)
) -> uuid.UUID:
    """A venue, a screen of `rows` x `seats_per_row`, and a showtime tomorrow; returns its id."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:rows]
    with session_scope() as session:
        venue = create_venue(session, f"Test Venue {uuid.uuid4().hex[:6]}", "Asia/Kolkata")
        screen = create_screen(
            session, venue.id, "Screen 1", {r: seats_per_row for r in letters}, blocked=blocked
        )
        starts = datetime.now(UTC) + timedelta(days=1)
        showtime = create_showtime(
            session,
            screen.id,
            "Test Film",
            starts,
            starts + timedelta(hours=2),
            {"standard": 20000},
        )
        return showtime.id
