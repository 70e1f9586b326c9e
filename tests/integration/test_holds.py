"""Holds against real PostgreSQL: the database, not Python, forbids double booking."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from boxoffice_bookings import holds
from boxoffice_bookings.cancellation import cancel_booking
from boxoffice_bookings.errors import InvalidSeats, SeatsUnavailable
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, BookingStatus, OutboxEvent, SeatState, ShowtimeSeat
from sqlalchemy import func, select, update

from tests.support import catalog
from tests.support.catalog import assert_sweep_expires_lapsed_hold, make_showtime
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def showtime_id(stack: Stack) -> uuid.UUID:
    return make_showtime(rows=2, seats_per_row=5)


def hold(showtime_id: uuid.UUID, seats: list[str], ttl: int = 600) -> holds.Held:
    return catalog.hold(showtime_id, seats, "a@example.com", ttl_seconds=ttl)


def test_second_hold_on_same_seat_is_rejected_naming_the_seat(showtime_id: uuid.UUID) -> None:
    hold(showtime_id, ["B1", "B2"])
    with pytest.raises(SeatsUnavailable) as error:
        hold(showtime_id, ["B2", "B3"])
    assert error.value.extensions["seats"] == ["B2"]
    with session_scope() as session:
        # The loser's transaction rolled back whole: B3 is still free, no stray booking.
        b3 = session.get(ShowtimeSeat, (showtime_id, "B3"))
        assert b3 is not None
        assert b3.state is SeatState.AVAILABLE


def test_concurrent_holds_on_one_seat_have_exactly_one_winner(showtime_id: uuid.UUID) -> None:
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            hold(showtime_id, ["B4", "B5"])
            outcomes.append("won")
        except SeatsUnavailable:
            outcomes.append("lost")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]


def test_a_database_constraint_forbids_a_held_seat_without_an_owner(
    showtime_id: uuid.UUID,
) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), session_scope() as session:
        session.execute(
            update(ShowtimeSeat)
            .where(ShowtimeSeat.showtime_id == showtime_id, ShowtimeSeat.label == "A2")
            .values(state=SeatState.HELD, hold_expires_at=datetime.now(UTC))
        )


def test_lapsed_hold_does_not_block_its_seats_before_the_reaper_runs(
    showtime_id: uuid.UUID,
) -> None:
    first = hold(showtime_id, ["A3"], ttl=600)
    with session_scope() as session:
        session.execute(
            update(Booking)
            .where(Booking.id == first.id)
            .values(expires_at=func.now() - timedelta(seconds=1))
        )
        session.execute(
            update(ShowtimeSeat)
            .where(ShowtimeSeat.booking_id == first.id)
            .values(hold_expires_at=func.now() - timedelta(seconds=1))
        )
    second = hold(showtime_id, ["A3"])
    assert second.status is BookingStatus.PENDING
    # The reaper later expires the first booking without touching the new owner's seat.
    assert_sweep_expires_lapsed_hold(showtime_id, "A3", lapsed=first.id, holder=second.id)


def outbox_event_types(booking_id: uuid.UUID) -> list[str]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(OutboxEvent.event_type)
                .where(OutboxEvent.aggregate_id == booking_id)
                .order_by(OutboxEvent.id)
            )
        )


def booking_status(booking_id: uuid.UUID) -> BookingStatus:
    with session_scope() as session:
        status = session.scalar(select(Booking.status).where(Booking.id == booking_id))
    assert status is not None
    return status


def cancel_then_fail(booking_id: uuid.UUID) -> None:
    with session_scope() as session:
        cancel_booking(session, booking_id, cutoff_minutes=60)
        raise RuntimeError("the transaction fails after the change")


def test_a_change_and_its_event_commit_together_or_not_at_all(showtime_id: uuid.UUID) -> None:
    booking = hold(showtime_id, ["A4"])
    # A hold announces nothing (nobody consumes it): only the booking's outcome is an event.
    assert outbox_event_types(booking.id) == []
    with pytest.raises(RuntimeError, match="after the change"):
        cancel_then_fail(booking.id)
    # Rolled back: neither the cancellation nor its event.
    assert booking_status(booking.id) is BookingStatus.PENDING
    assert outbox_event_types(booking.id) == []
    with session_scope() as session:
        cancel_booking(session, booking.id, cutoff_minutes=60)
    assert booking_status(booking.id) is BookingStatus.CANCELLED
    assert outbox_event_types(booking.id) == ["booking.cancelled"]
    with pytest.raises(InvalidSeats):
        hold(showtime_id, ["A5", "Z9"])
    with session_scope() as session:
        # The rejected hold left no booking behind.
        bookings = session.scalars(select(Booking.id).where(Booking.showtime_id == showtime_id))
        assert list(bookings) == [booking.id]
