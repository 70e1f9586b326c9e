"""Holds: every seat change is a conditional UPDATE in PostgreSQL, the only arbiter."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from boxoffice.booking.v1 import events_pb2
from boxoffice_contracts.envelope import build_envelope, iso
from boxoffice_db.models import (
    Booking,
    BookingSeat,
    BookingStatus,
    SeatState,
    Showtime,
    ShowtimePrice,
    ShowtimeSeat,
)
from boxoffice_db.seats import seat_is_free
from boxoffice_messaging.outbox import add_event
from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql import func

from boxoffice_booking.problems import InvalidSeats, NotFound, SeatsUnavailable
from boxoffice_booking.seat_cache import encode_state

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_reference() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


def get_booking(session: Session, booking_id: uuid.UUID, *, lock: bool = False) -> Booking:
    stmt = select(Booking).where(Booking.id == booking_id).options(selectinload(Booking.seats))
    if lock:
        stmt = stmt.with_for_update()
    booking = session.scalars(stmt).one_or_none()
    if booking is None:
        raise NotFound(f"No booking {booking_id}.")
    return booking


def hold_seats(
    session: Session,
    showtime_id: uuid.UUID,
    labels: list[str],
    email: str,
    phone: str | None,
    ttl_seconds: int,
    max_seats: int,
    *,
    sms_opt_out: bool = False,
) -> Booking:
    """Hold `labels` for a new PENDING booking, or raise naming the seats someone else has."""
    if len(set(labels)) != len(labels):
        raise InvalidSeats("A seat is listed twice.", seats=sorted(labels))
    if len(labels) > max_seats:
        raise InvalidSeats(f"At most {max_seats} seats can be held at once.", seats=labels)
    showtime = session.get(Showtime, showtime_id)
    if showtime is None:
        raise NotFound(f"No showtime {showtime_id}.")

    # Losers leave before taking any lock: under a rush most requests want seats already
    # gone, and queueing them on the row locks would slow the winners down too. A seat seen
    # taken here was taken when read; one seen free is still checked under lock below.
    taken_now = sorted(
        session.scalars(
            select(ShowtimeSeat.label).where(
                ShowtimeSeat.showtime_id == showtime_id,
                ShowtimeSeat.label.in_(labels),
                ShowtimeSeat.state.in_([SeatState.HELD, SeatState.SOLD]),
                ~seat_is_free(),
            )
        )
    )
    if taken_now:
        raise SeatsUnavailable(f"Seats already taken: {', '.join(taken_now)}.", seats=taken_now)

    # Lock the requested seats in one order so that overlapping holds never deadlock.
    seats = session.execute(
        select(ShowtimeSeat.label, ShowtimeSeat.state, ShowtimeSeat.category)
        .where(ShowtimeSeat.showtime_id == showtime_id, ShowtimeSeat.label.in_(labels))
        .order_by(ShowtimeSeat.label)
        .with_for_update()
    ).all()
    found = {seat.label: seat for seat in seats}
    unknown = sorted(set(labels) - found.keys())
    if unknown:
        raise InvalidSeats(f"Unknown seats: {', '.join(unknown)}.", seats=unknown)
    blocked = sorted(s.label for s in seats if s.state == SeatState.BLOCKED)
    if blocked:
        raise InvalidSeats(f"Seats not for sale: {', '.join(blocked)}.", seats=blocked)

    prices: dict[str, int] = {
        category: amount
        for category, amount in session.execute(
            select(ShowtimePrice.category, ShowtimePrice.amount_minor).where(
                ShowtimePrice.showtime_id == showtime_id
            )
        )
    }
    unpriced = sorted(s.label for s in seats if s.category not in prices)
    if unpriced:
        raise InvalidSeats(f"Seats have no price: {', '.join(unpriced)}.", seats=unpriced)

    booking = Booking(
        id=uuid.uuid4(),
        reference=new_reference(),
        showtime_id=showtime_id,
        status=BookingStatus.PENDING,
        customer_email=str(email),
        customer_phone=phone,
        sms_opt_out=sms_opt_out,
        total_minor=sum(prices[found[label].category] for label in labels),
        currency=showtime.currency,
        expires_at=func.now() + timedelta(seconds=ttl_seconds),
    )
    session.add(booking)
    session.flush()

    held = set(
        session.scalars(
            update(ShowtimeSeat)
            .where(
                ShowtimeSeat.showtime_id == showtime_id,
                ShowtimeSeat.label.in_(labels),
                seat_is_free(),
            )
            .values(state=SeatState.HELD, booking_id=booking.id, hold_expires_at=booking.expires_at)
            .returning(ShowtimeSeat.label)
        )
    )
    taken = sorted(set(labels) - held)
    if taken:
        raise SeatsUnavailable(f"Seats already taken: {', '.join(taken)}.", seats=taken)

    for label in sorted(labels):
        category = found[label].category
        session.add(
            BookingSeat(
                booking_id=booking.id, label=label, category=category, price_minor=prices[category]
            )
        )
    session.flush()
    session.refresh(booking)
    add_event(
        session,
        build_envelope(
            "hold.created",
            booking.id,
            events_pb2.HoldCreated(
                booking_id=str(booking.id),
                showtime_id=str(showtime_id),
                seats=sorted(labels),
                expires_at=iso(booking.expires_at),
                total_minor=booking.total_minor,
                currency=booking.currency,
            ),
        ),
    )
    return booking


def held_states(booking: Booking) -> dict[str, str]:
    """The seat-cache entries of a fresh hold."""
    return dict.fromkeys(
        (s.label for s in booking.seats), encode_state(SeatState.HELD, booking.expires_at)
    )


def lock_seats(session: Session, booking: Booking) -> None:
    """Lock the booking's seat rows; the lock order is booking, then seats, as in the reaper."""
    session.execute(
        select(ShowtimeSeat.label)
        .where(
            ShowtimeSeat.showtime_id == booking.showtime_id,
            ShowtimeSeat.label.in_([s.label for s in booking.seats]),
        )
        .order_by(ShowtimeSeat.label)
        .with_for_update()
    ).all()


def sell_seats(session: Session, booking: Booking) -> bool:
    """Mark all the booking's seats sold, re-acquiring lapsed ones if still free; or none.

    All or nothing: if any seat is someone else's now, the partial update is rolled back.
    """
    labels = [seat.label for seat in booking.seats]
    savepoint = session.begin_nested()
    sold = session.scalars(
        update(ShowtimeSeat)
        .where(
            ShowtimeSeat.showtime_id == booking.showtime_id,
            ShowtimeSeat.label.in_(labels),
            or_(ShowtimeSeat.booking_id == booking.id, seat_is_free()),
        )
        .values(state=SeatState.SOLD, booking_id=booking.id, hold_expires_at=None)
        .returning(ShowtimeSeat.label)
    ).all()
    if len(sold) != len(labels):
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def bookings_query(
    customer_email: str | None, status: BookingStatus | None, showtime_id: uuid.UUID | None
) -> Select[Booking]:
    """Bookings filtered by customer email (case-insensitive), status and showtime."""
    stmt = select(Booking).options(selectinload(Booking.seats))
    if customer_email is not None:
        stmt = stmt.where(func.lower(Booking.customer_email) == customer_email.lower())
    if status is not None:
        stmt = stmt.where(Booking.status == status)
    if showtime_id is not None:
        stmt = stmt.where(Booking.showtime_id == showtime_id)
    return stmt
