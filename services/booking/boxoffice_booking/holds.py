"""Holds: every seat change is a conditional UPDATE in PostgreSQL, the only arbiter."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from boxoffice.booking.v1 import events_pb2
from boxoffice_contracts.envelope import build_envelope, iso
from boxoffice_db.models import (
    Booking,
    BookingSeat,
    BookingStatus,
    SeatState,
    Showtime,
    ShowtimeSeat,
)
from boxoffice_db.seats import seat_is_free
from boxoffice_messaging.outbox import add_event
from sqlalchemy import Row, Select, or_, select, text, update
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


# One round trip: lock the requested seats in label order (so overlapping holds never
# deadlock), judge them under the lock, and only if every one is free and priced insert the
# booking, take the seats and record their prices. The seat UPDATE needs no condition of its
# own: the rows are locked and were judged free in this statement, so nobody can take them
# in between, and the verdict is re-read from the newest row version (FOR UPDATE re-checks
# a row another transaction changed while we waited for its lock).
_HOLD = text(
    """
WITH locked AS MATERIALIZED (
    SELECT s.label, s.state::text AS state, s.category, p.amount_minor,
           (s.state = 'available' OR (s.state = 'held' AND s.hold_expires_at <= now())) AS free
    FROM showtime_seats s
    LEFT JOIN showtime_prices p ON p.showtime_id = s.showtime_id AND p.category = s.category
    WHERE s.showtime_id = :showtime_id AND s.label = ANY(:labels)
    ORDER BY s.label
    FOR UPDATE OF s
),
verdict AS (
    SELECT count(*) = :n AND bool_and(free) AND bool_and(amount_minor IS NOT NULL) AS ok,
           sum(amount_minor) AS total
    FROM locked
),
new_booking AS (
    INSERT INTO bookings (id, reference, showtime_id, status, customer_email, customer_phone,
                          sms_opt_out, total_minor, currency, expires_at)
    SELECT :booking_id, :reference, st.id, 'PENDING', :email, :phone, :sms_opt_out, v.total,
           st.currency, now() + :ttl * interval '1 second'
    FROM verdict v JOIN showtimes st ON st.id = :showtime_id
    WHERE v.ok
    RETURNING expires_at, created_at, currency, total_minor
),
held AS (
    UPDATE showtime_seats s
    SET state = 'held', booking_id = :booking_id, hold_expires_at = b.expires_at
    FROM new_booking b
    WHERE s.showtime_id = :showtime_id AND s.label = ANY(:labels)
    RETURNING s.label
),
priced AS (
    INSERT INTO booking_seats (booking_id, label, category, price_minor)
    SELECT :booking_id, l.label, l.category, l.amount_minor FROM locked l, new_booking
    RETURNING label
)
SELECT l.label, l.state, l.category, l.amount_minor, l.free,
       b.expires_at, b.created_at, b.currency, b.total_minor,
       (SELECT count(*) FROM held) AS held, (SELECT count(*) FROM priced) AS priced
FROM locked l LEFT JOIN new_booking b ON true
ORDER BY l.label
"""
)


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
    """Hold `labels` for a new PENDING booking, or raise naming the seats someone else has.

    The returned booking is not attached to `session`; it carries what the hold wrote.
    """
    if len(set(labels)) != len(labels):
        raise InvalidSeats("A seat is listed twice.", seats=sorted(labels))
    if len(labels) > max_seats:
        raise InvalidSeats(f"At most {max_seats} seats can be held at once.", seats=labels)
    booking_id = uuid.uuid4()
    reference = new_reference()
    rows = session.execute(
        _HOLD,
        {
            "showtime_id": showtime_id,
            "labels": labels,
            "n": len(labels),
            "booking_id": booking_id,
            "reference": reference,
            "email": str(email),
            "phone": phone,
            "sms_opt_out": sms_opt_out,
            "ttl": ttl_seconds,
        },
    ).all()
    made = rows[0] if rows and rows[0].expires_at is not None else None
    if made is None:
        _refuse(session, showtime_id, labels, rows)
    assert made is not None
    if made.held != len(labels) or made.priced != len(labels):  # the lock makes this impossible
        raise RuntimeError(f"hold of {labels} took {made.held} seats, priced {made.priced}")
    booking = Booking(
        id=booking_id,
        reference=reference,
        showtime_id=showtime_id,
        status=BookingStatus.PENDING,
        customer_email=str(email),
        customer_phone=phone,
        sms_opt_out=sms_opt_out,
        total_minor=made.total_minor,
        currency=made.currency,
        expires_at=made.expires_at,
        created_at=made.created_at,
        confirmed_at=None,
        expired_at=None,
        cancelled_at=None,
        anonymised_at=None,
    )
    booking.seats = [
        BookingSeat(
            booking_id=booking_id, label=r.label, category=r.category, price_minor=r.amount_minor
        )
        for r in rows
    ]
    add_event(
        session,
        build_envelope(
            "hold.created",
            booking_id,
            events_pb2.HoldCreated(
                booking_id=str(booking_id),
                showtime_id=str(showtime_id),
                seats=sorted(labels),
                expires_at=iso(made.expires_at),
                total_minor=made.total_minor,
                currency=made.currency,
            ),
        ),
    )
    return booking


def _refuse(
    session: Session, showtime_id: uuid.UUID, labels: list[str], rows: Sequence[Row[Any]]
) -> None:
    """Raise the reason a hold was not made: taken, unknown, blocked or unpriced seats."""
    taken = sorted(r.label for r in rows if not r.free and r.state != SeatState.BLOCKED)
    if taken:
        raise SeatsUnavailable(f"Seats already taken: {', '.join(taken)}.", seats=taken)
    if not rows and session.get(Showtime, showtime_id) is None:
        raise NotFound(f"No showtime {showtime_id}.")
    unknown = sorted(set(labels) - {r.label for r in rows})
    if unknown:
        raise InvalidSeats(f"Unknown seats: {', '.join(unknown)}.", seats=unknown)
    blocked = sorted(r.label for r in rows if r.state == SeatState.BLOCKED)
    if blocked:
        raise InvalidSeats(f"Seats not for sale: {', '.join(blocked)}.", seats=blocked)
    unpriced = sorted(r.label for r in rows if r.amount_minor is None)
    if unpriced:
        raise InvalidSeats(f"Seats have no price: {', '.join(unpriced)}.", seats=unpriced)
    raise RuntimeError(f"hold of {labels} was refused for no known reason")


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
