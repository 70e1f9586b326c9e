"""The seat map with live states: from the Redis cache when it is ready, else PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from boxoffice_booking.problems import NotFound
from boxoffice_booking.schemas import SeatMapPublic, SeatStatePublic
from boxoffice_booking.seat_cache import SeatCache


def read_seat_map(session: Session, cache: SeatCache, showtime_id: uuid.UUID) -> SeatMapPublic:
    """Each seat available, held, sold or blocked; a lapsed hold already reads as available."""
    layout = cache.layout(session, showtime_id)
    if layout is None:
        raise NotFound(f"No showtime {showtime_id}.")
    states = cache.states(showtime_id)
    if states is None or len(states) < len(layout.seats):
        states = cache.rebuild(session, showtime_id)
    return SeatMapPublic(
        showtime_id=uuid.UUID(layout.showtime_id),
        film_title=layout.film_title,
        starts_at=datetime.fromisoformat(layout.starts_at),
        currency=layout.currency,
        seats=[
            SeatStatePublic(
                label=seat["label"],
                row=seat["row"],
                number=seat["number"],
                category=seat["category"],
                status=states.get(seat["label"], "available"),
                price_minor=seat["price_minor"],
                aisle_after=seat["aisle_after"],
                accessible=seat["accessible"],
            )
            for seat in layout.seats
        ],
    )
