"""Holds against real PostgreSQL: the database, not Python, forbids double booking."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from boxoffice_booking import holds
from boxoffice_booking.problems import InvalidSeats, SeatsUnavailable
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, BookingStatus, OutboxEvent, SeatState, ShowtimeSeat
from boxoffice_reaper.expiry import expire_batch
from sqlalchemy import func, select, update

from tests.support.catalog import make_showtime
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def showtime_id(stack: Stack) -> uuid.UUID:
    return make_showtime(rows=2, seats_per_row=5)


def hold(showtime_id: uuid.UUID, seats: list[str], ttl: int = 600) -> Booking:
    with session_scope() as session:
        return holds.hold_seats(session, showtime_id, seats, "a@example.com", None, ttl, 10)


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
    with session_scope() as session:
        # The reaper later expires the first booking without touching the new owner's seat.
        expire_batch(session, 100)
    with session_scope() as session:
        seat = session.get(ShowtimeSeat, (showtime_id, "A3"))
        assert seat is not None
        assert seat.booking_id == second.id
        first_now = session.get(Booking, first.id)
        assert first_now is not None
        assert first_now.status is BookingStatus.EXPIRED


def test_hold_and_its_event_commit_together(showtime_id: uuid.UUID) -> None:
    booking = hold(showtime_id, ["A4"])
    with session_scope() as session:
        events = session.scalars(
            select(OutboxEvent.event_type).where(OutboxEvent.aggregate_id == booking.id)
        ).all()
    assert events == ["hold.created"]
    with pytest.raises(InvalidSeats), session_scope() as session:
        holds.hold_seats(session, showtime_id, ["A5", "Z9"], "a@example.com", None, 600, 10)
    with session_scope() as session:
        # The rejected request left neither a booking nor an event behind.
        bookings = session.scalars(select(Booking.id).where(Booking.showtime_id == showtime_id))
        assert list(bookings) == [booking.id]
        assert (
            session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(
                    OutboxEvent.aggregate_id.in_(
                        select(Booking.id).where(Booking.showtime_id == showtime_id)
                    )
                )
            )
            == 1
        )
