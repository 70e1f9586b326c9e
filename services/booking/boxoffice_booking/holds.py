"""Holds, payments and cancellations: every seat change is a conditional UPDATE in PostgreSQL."""

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
    Payment,
    SeatState,
    Showtime,
    ShowtimePrice,
    ShowtimeSeat,
)
from boxoffice_db.seats import release_seats, seat_is_free
from boxoffice_messaging.outbox import add_event
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql import func

from boxoffice_booking.problems import (
    BookingStateConflict,
    HoldExpired,
    InvalidSeats,
    NotFound,
    SeatsUnavailable,
)

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


def _sell_seats(session: Session, booking: Booking) -> bool:
    """Mark the booking's seats sold, re-acquiring any that lapsed if they are still free."""
    labels = [seat.label for seat in booking.seats]
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
    return len(sold) == len(labels)


def pay_booking(
    session: Session, booking_id: uuid.UUID, provider: str, outcome: str
) -> tuple[Payment, Booking]:
    """Settle a payment with the local test provider and confirm the booking on success."""
    booking = get_booking(session, booking_id, lock=True)
    if booking.status in (BookingStatus.CONFIRMED, BookingStatus.CANCELLED):
        raise BookingStateConflict(
            f"Booking {booking.reference} is {booking.status.value}.", status_now=booking.status
        )
    payment = Payment(
        id=uuid.uuid4(),
        booking_id=booking.id,
        provider=provider,
        status="failed" if outcome == "failed" else "succeeded",
        amount_minor=booking.total_minor,
        currency=booking.currency,
    )
    session.add(payment)
    if outcome == "failed":
        return payment, booking

    # Lock order is booking, then seats: the same as the reaper's.
    session.execute(
        select(ShowtimeSeat.label)
        .where(
            ShowtimeSeat.showtime_id == booking.showtime_id,
            ShowtimeSeat.label.in_([s.label for s in booking.seats]),
        )
        .order_by(ShowtimeSeat.label)
        .with_for_update()
    ).all()
    if not _sell_seats(session, booking):
        payment.status = "refunded"
        session.flush()
        session.commit()
        raise HoldExpired(
            f"The hold of booking {booking.reference} expired and its seats were taken; "
            "the payment was refunded.",
            payment_id=str(payment.id),
        )
    booking.status = BookingStatus.CONFIRMED
    booking.confirmed_at = func.now()
    session.flush()
    session.refresh(booking)
    add_event(
        session,
        build_envelope(
            "booking.confirmed",
            booking.id,
            events_pb2.BookingConfirmed(
                booking_id=str(booking.id),
                showtime_id=str(booking.showtime_id),
                seats=[s.label for s in booking.seats],
                total_minor=booking.total_minor,
                currency=booking.currency,
                payment_id=str(payment.id),
            ),
        ),
    )
    return payment, booking


def cancel_booking(session: Session, booking_id: uuid.UUID) -> Booking:
    """Cancel a held or confirmed booking; its seats return to sale at once."""
    booking = get_booking(session, booking_id, lock=True)
    if booking.status is BookingStatus.CANCELLED:
        return booking
    if booking.status is BookingStatus.EXPIRED:
        raise BookingStateConflict(
            f"Booking {booking.reference} already expired.", status_now=booking.status
        )
    previous = booking.status
    released = release_seats(session, [booking.id])
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = func.now()
    session.flush()
    session.refresh(booking)
    add_event(
        session,
        build_envelope(
            "booking.cancelled",
            booking.id,
            events_pb2.BookingCancelled(
                booking_id=str(booking.id),
                showtime_id=str(booking.showtime_id),
                seats=sorted(released),
                previous_status=previous.value,
            ),
        ),
    )
    return booking
