"""A hold's seats are free the instant it expires, before any reaper has run."""

from __future__ import annotations

import pytest
from boxoffice_booking import holds
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, BookingStatus, ShowtimeSeat
from boxoffice_reaper.expiry import expire_batch
from sqlalchemy import func, select

from tests.support.catalog import make_showtime
from tests.support.processes import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def test_a_seat_is_free_the_instant_its_hold_expires(stack: Stack) -> None:
    showtime_id = make_showtime(rows=1, seats_per_row=4)
    with session_scope() as session:
        first = holds.hold_seats(session, showtime_id, ["A2"], "a@example.com", None, 1, 10)

    def expired_by_the_database_clock() -> bool:
        with session_scope() as session:
            return bool(session.scalar(select(func.clock_timestamp() >= first.expires_at)))

    wait_until(expired_by_the_database_clock, 10, "the hold's expiry", interval=0.005)
    # No reaper has run: the old booking is still PENDING, and its seat is already for sale.
    with session_scope() as session:
        second = holds.hold_seats(session, showtime_id, ["A2"], "b@example.com", None, 600, 10)
        old = session.get(Booking, first.id)
        assert old is not None
        assert old.status is BookingStatus.PENDING
    assert second.status is BookingStatus.PENDING

    # The sweep that follows expires the old booking and leaves the new holder's seat alone.
    with session_scope() as session:
        expire_batch(session, 100)
    with session_scope() as session:
        seat = session.get(ShowtimeSeat, (showtime_id, "A2"))
        assert seat is not None
        assert seat.booking_id == second.id
        old = session.get(Booking, first.id)
        assert old is not None
        assert old.status is BookingStatus.EXPIRED
