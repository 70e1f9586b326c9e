"""Seat ownership changes shared by the booking API and the reaper."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, func

from boxoffice_db.models import SeatState, ShowtimeSeat


def seat_is_free() -> ColumnElement[bool]:
    """Available, or held by a hold whose expiry has passed (checked on read, invariant 4)."""
    return or_(
        ShowtimeSeat.state == SeatState.AVAILABLE,
        and_(ShowtimeSeat.state == SeatState.HELD, ShowtimeSeat.hold_expires_at <= func.now()),
    )


def release_seats(session: Session, booking_ids: Sequence[uuid.UUID]) -> list[str]:
    """Return the seats still owned by these bookings to sale; seats re-sold since stay put."""
    if not booking_ids:
        return []
    result = session.execute(
        update(ShowtimeSeat)
        .where(ShowtimeSeat.booking_id.in_(booking_ids))
        .values(state=SeatState.AVAILABLE, booking_id=None, hold_expires_at=None)
        .returning(ShowtimeSeat.label)
    )
    return list(result.scalars())
