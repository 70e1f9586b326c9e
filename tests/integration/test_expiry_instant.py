"""A hold's seats are free the instant it expires, before any reaper has run."""

from __future__ import annotations

import pytest
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, BookingStatus
from sqlalchemy import func, select

from tests.support.catalog import assert_sweep_expires_lapsed_hold, hold, make_showtime
from tests.support.processes import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def test_a_seat_is_free_the_instant_its_hold_expires(stack: Stack) -> None:
    showtime_id = make_showtime(rows=1, seats_per_row=4)
    first = hold(showtime_id, ["A2"], "a@example.com", ttl_seconds=1)

    def expired_by_the_database_clock() -> bool:
        with session_scope() as session:
            return bool(session.scalar(select(func.clock_timestamp() >= first.expires_at)))

    wait_until(expired_by_the_database_clock, 10, "the hold's expiry", interval=0.005)
    # No reaper has run: the old booking is still PENDING, and its seat is already for sale.
    second = hold(showtime_id, ["A2"], "b@example.com")
    with session_scope() as session:
        old = session.get(Booking, first.id)
        assert old is not None
        assert old.status is BookingStatus.PENDING
    assert second.status is BookingStatus.PENDING

    # The sweep that follows expires the old booking and leaves the new holder's seat alone.
    assert_sweep_expires_lapsed_hold(showtime_id, "A2", lapsed=first.id, holder=second.id)
