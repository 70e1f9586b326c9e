"""Showtime reads."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from boxoffice_booking.auth import require_scope
from boxoffice_booking.catalog import read_seat_map
from boxoffice_booking.deps import SessionDep
from boxoffice_booking.schemas import SeatMapPublic

router = APIRouter(prefix="/v1/showtimes", tags=["showtimes"])


@router.get(
    "/{showtime_id}/seats",
    dependencies=[require_scope("bookings:read")],  # type: ignore[list-item]
)
def read_showtime_seats(showtime_id: uuid.UUID, session: SessionDep) -> SeatMapPublic:
    """The seat map of a showtime with each seat available, held, sold or blocked."""
    seat_map = read_seat_map(session, showtime_id)
    session.rollback()  # return the connection before the answer is validated (see bookings)
    return seat_map
