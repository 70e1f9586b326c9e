"""Demo data: one venue, one screen, one showtime tomorrow evening."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from boxoffice_booking import catalog_repository
from boxoffice_booking.catalog import create_screen, create_showtime, create_venue

DEMO_ROWS = {row: 12 for row in "ABCDEFGH"}
DEMO_CATEGORIES = {"G": "premium", "H": "premium"}
DEMO_PRICES = {"standard": 25000, "premium": 40000}


def seed_demo(session: Session) -> uuid.UUID:
    """Create the demo showtime once and return its id (the existing one on later runs)."""
    existing = catalog_repository.find_showtime_id_by_film(session, "The Demo Picture")
    if existing is not None:
        return existing
    venue = create_venue(session, "Boxoffice Demo Cinema", "Asia/Kolkata")
    screen = create_screen(
        session, venue.id, "Screen 1", DEMO_ROWS, DEMO_CATEGORIES, blocked=["A1", "A12"]
    )
    starts = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=13, minute=30, second=0, microsecond=0
    )
    showtime = create_showtime(
        session, screen.id, "The Demo Picture", starts, starts + timedelta(hours=2), DEMO_PRICES
    )
    return showtime.id
