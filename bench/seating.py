"""Showtimes big enough that every hold in a run can take a seat nobody asked for before."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from boxoffice_booking.catalog import create_screen, create_showtime, create_venue
from boxoffice_db.engine import session_scope

ROWS = 26  # A..Z: the Lua script turns a seat number into a row letter
SEATS_PER_ROW = 200
SEATS_PER_SHOWTIME = ROWS * SEATS_PER_ROW


def seat_label(index: int) -> str:
    """The label of seat `index` of a bench showtime, as holds.lua computes it."""
    return f"{chr(65 + index // SEATS_PER_ROW)}{index % SEATS_PER_ROW + 1}"


def create_showtimes(count: int) -> list[str]:
    """`count` showtimes on one screen of ROWS x SEATS_PER_ROW seats; returns their ids."""
    rows = {chr(65 + r): SEATS_PER_ROW for r in range(ROWS)}
    ids: list[str] = []
    with session_scope() as session:
        venue = create_venue(session, f"Bench Cinema {uuid.uuid4().hex[:6]}", "Asia/Kolkata")
        screen = create_screen(session, venue.id, "Bench Screen", rows)
    first = datetime.now(UTC) + timedelta(days=1)
    for number in range(count):
        # Three hours apart: showtimes on one screen may not overlap (an exclusion constraint).
        starts = first + timedelta(hours=3 * number)
        with session_scope() as session:
            showtime = create_showtime(
                session,
                screen.id,
                "The Bench Picture",
                starts,
                starts + timedelta(hours=2),
                {"standard": 20000},
            )
            ids.append(str(showtime.id))
    return ids
