"""Holds: every seat change is a conditional UPDATE in PostgreSQL, the only arbiter."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from boxoffice.booking.v1 import events_pb2
from boxoffice_contracts.envelope import build_envelope
from boxoffice_db.aio import AsyncConn
from boxoffice_db.models import (
    Booking,
    BookingSeat,
    BookingStatus,
    SeatState,
    Showtime,
    ShowtimeSeat,
)
from boxoffice_db.seats import seat_is_free
from boxoffice_messaging.outbox import outbox_payload
from psycopg.types.json import Jsonb
from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.sql import func

from boxoffice_booking.problems import InvalidSeats, NotFound, SeatsUnavailable
from boxoffice_booking.seat_cache import encode_state

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_reference() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


def get_booking(session: Session, booking_id: uuid.UUID, *, lock: bool = False) -> Booking:
    stmt = select(Booking).where(Booking.id == booking_id)
    if lock:
        # One query: the seats joined, only the booking row locked.
        stmt = stmt.options(joinedload(Booking.seats)).with_for_update(of=Booking)
    else:
        stmt = stmt.options(selectinload(Booking.seats))
    booking = session.scalars(stmt).unique().one_or_none()
    if booking is None:
        raise NotFound(f"No booking {booking_id}.")
    return booking


# One statement: lock the requested seats in label order (so overlapping holds never
# deadlock), judge them under the lock, and only if every one is free and priced insert the
# booking, take the seats, record their prices and write the `hold.created` event to the
# outbox (the envelope is built here, the values only the database knows patched in), so
# the API runs it as one autocommit round trip. The seat UPDATE needs no condition of its
# own: the rows are locked and were judged free in this statement, so nobody can take them
# in between, and the verdict is read from the newest row version (FOR UPDATE re-reads a row
# another transaction changed while we waited for its lock). Parameters are in psycopg's
# style, so the API's asyncio path and the SQLAlchemy session run the same text.
HOLD_SQL = """
WITH locked AS MATERIALIZED (
    SELECT s.label, s.state::text AS state, s.category, p.amount_minor,
           (s.state = 'available' OR (s.state = 'held' AND s.hold_expires_at <= now())) AS free
    FROM showtime_seats s
    LEFT JOIN showtime_prices p ON p.showtime_id = s.showtime_id AND p.category = s.category
    WHERE s.showtime_id = %(showtime_id)s AND s.label = ANY(%(labels)s)
    ORDER BY s.label
    FOR UPDATE OF s
),
verdict AS (
    SELECT count(*) = %(n)s AND bool_and(free) AND bool_and(amount_minor IS NOT NULL) AS ok,
           sum(amount_minor) AS total
    FROM locked
),
new_booking AS (
    INSERT INTO bookings (id, reference, showtime_id, status, customer_email, customer_phone,
                          sms_opt_out, total_minor, currency, expires_at)
    SELECT %(booking_id)s, %(reference)s, st.id, 'PENDING', %(email)s, %(phone)s,
           %(sms_opt_out)s, v.total, st.currency, now() + %(ttl)s::int * interval '1 second'
    FROM verdict v JOIN showtimes st ON st.id = %(showtime_id)s
    WHERE v.ok
    RETURNING expires_at, created_at, currency, total_minor
),
held AS (
    UPDATE showtime_seats s
    SET state = 'held', booking_id = %(booking_id)s, hold_expires_at = b.expires_at
    FROM new_booking b
    WHERE s.showtime_id = %(showtime_id)s AND s.label = ANY(%(labels)s)
    RETURNING s.label
),
priced AS (
    INSERT INTO booking_seats (booking_id, label, category, price_minor)
    SELECT %(booking_id)s, l.label, l.category, l.amount_minor FROM locked l, new_booking
    RETURNING label
),
announced AS (
    INSERT INTO outbox (event_id, event_type, aggregate_id, payload, attempts)
    SELECT %(event_id)s, 'hold.created', %(booking_id)s,
           jsonb_set(jsonb_set(jsonb_set(%(event)s,
               '{hold_created,expires_at}',
               to_jsonb(to_char(b.expires_at AT TIME ZONE 'UTC',
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))),
               '{hold_created,total_minor}', to_jsonb(b.total_minor::text)),
               '{hold_created,currency}', to_jsonb(b.currency)),
           0
    FROM new_booking b
    RETURNING event_id
)
SELECT l.label, l.state, l.category, l.amount_minor, l.free,
       b.expires_at, b.created_at, b.currency, b.total_minor,
       (SELECT count(*) FROM held) AS held, (SELECT count(*) FROM priced) AS priced,
       (SELECT count(*) FROM announced) AS announced
FROM locked l LEFT JOIN new_booking b ON true
ORDER BY l.label
"""


@dataclass(frozen=True)
class HoldRequest:
    """A validated hold: what HOLD_SQL needs, with the new booking's id and reference."""

    showtime_id: uuid.UUID
    labels: list[str]
    email: str
    phone: str | None
    ttl_seconds: int
    sms_opt_out: bool
    booking_id: uuid.UUID = field(default_factory=uuid.uuid4)
    reference: str = field(default_factory=new_reference)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)

    @classmethod
    def checked(
        cls,
        showtime_id: uuid.UUID,
        labels: list[str],
        email: str,
        phone: str | None,
        ttl_seconds: int,
        max_seats: int,
        sms_opt_out: bool = False,
    ) -> HoldRequest:
        if len(set(labels)) != len(labels):
            raise InvalidSeats("A seat is listed twice.", seats=sorted(labels))
        if len(labels) > max_seats:
            raise InvalidSeats(f"At most {max_seats} seats can be held at once.", seats=labels)
        return cls(showtime_id, list(labels), str(email), phone, ttl_seconds, sms_opt_out)

    def params(self) -> dict[str, Any]:
        envelope = build_envelope(
            "hold.created",
            self.booking_id,
            events_pb2.HoldCreated(
                booking_id=str(self.booking_id),
                showtime_id=str(self.showtime_id),
                seats=sorted(self.labels),
            ),
            event_id=self.event_id,
        )
        return {
            "event_id": self.event_id,
            "event": Jsonb(outbox_payload(envelope)),
            "showtime_id": self.showtime_id,
            "labels": self.labels,
            "n": len(self.labels),
            "booking_id": self.booking_id,
            "reference": self.reference,
            "email": self.email,
            "phone": self.phone,
            "sms_opt_out": self.sms_opt_out,
            "ttl": self.ttl_seconds,
        }

    def outcome(self, rows: Sequence[Any]) -> Booking | None:
        """The booking HOLD_SQL made, or None if it refused (see `refusal`)."""
        made = rows[0] if rows and rows[0].expires_at is not None else None
        if made is None:
            return None
        if made.held != len(self.labels) or made.priced != len(self.labels) or not made.announced:
            # The locks make this impossible; never answer 201 for a partial hold.
            raise RuntimeError(f"hold of {self.labels} took {made.held}, priced {made.priced}")
        booking = Booking(
            id=self.booking_id,
            reference=self.reference,
            showtime_id=self.showtime_id,
            status=BookingStatus.PENDING,
            customer_email=self.email,
            customer_phone=self.phone,
            sms_opt_out=self.sms_opt_out,
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
                booking_id=self.booking_id,
                label=r.label,
                category=r.category,
                price_minor=r.amount_minor,
            )
            for r in rows
        ]
        return booking

    def refusal(self, rows: Sequence[Any], showtime_exists: bool | None) -> Exception:
        """Why HOLD_SQL made no booking: taken, unknown, blocked or unpriced seats.

        `showtime_exists` is only needed (and only looked up) when no requested seat exists.
        """
        taken = sorted(r.label for r in rows if not r.free and r.state != SeatState.BLOCKED)
        if taken:
            return SeatsUnavailable(f"Seats already taken: {', '.join(taken)}.", seats=taken)
        if not rows and showtime_exists is False:
            return NotFound(f"No showtime {self.showtime_id}.")
        unknown = sorted(set(self.labels) - {r.label for r in rows})
        if unknown:
            return InvalidSeats(f"Unknown seats: {', '.join(unknown)}.", seats=unknown)
        blocked = sorted(r.label for r in rows if r.state == SeatState.BLOCKED)
        if blocked:
            return InvalidSeats(f"Seats not for sale: {', '.join(blocked)}.", seats=blocked)
        unpriced = sorted(r.label for r in rows if r.amount_minor is None)
        if unpriced:
            return InvalidSeats(f"Seats have no price: {', '.join(unpriced)}.", seats=unpriced)
        return RuntimeError(f"hold of {self.labels} was refused for no known reason")


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
    request = HoldRequest.checked(
        showtime_id, labels, email, phone, ttl_seconds, max_seats, sms_opt_out
    )
    rows = session.connection().exec_driver_sql(HOLD_SQL, request.params()).all()
    booking = request.outcome(rows)
    if booking is None:
        exists = None if rows else session.get(Showtime, showtime_id) is not None
        raise request.refusal(rows, exists)
    return booking


async def hold_seats_async(conn: AsyncConn, request: HoldRequest) -> Booking:
    """`hold_seats` on an autocommit asyncio connection: the statement is the transaction."""
    cursor = await conn.execute(HOLD_SQL, request.params())
    rows = await cursor.fetchall()
    booking = request.outcome(rows)
    if booking is None:
        exists = None
        if not rows:
            found = await conn.execute(
                "SELECT 1 FROM showtimes WHERE id = %s", (request.showtime_id,)
            )
            exists = await found.fetchone() is not None
        raise request.refusal(rows, exists)
    return booking


def held_states(booking: Booking) -> dict[str, str]:
    """The seat-cache entries of a fresh hold."""
    return dict.fromkeys(
        (s.label for s in booking.seats), encode_state(SeatState.HELD, booking.expires_at)
    )


def sell_seats(session: Session, booking: Booking) -> bool:
    """Mark all the booking's seats sold, re-acquiring lapsed ones if still free; or none.

    The seat rows are locked in label order (after the booking, as in the reaper), judged
    under the lock, and updated only if every one is still this booking's or free again:
    all or nothing without a savepoint.
    """
    labels = sorted(seat.label for seat in booking.seats)
    mine_or_free = or_(ShowtimeSeat.booking_id == booking.id, seat_is_free())
    sellable = session.execute(
        select(ShowtimeSeat.label, mine_or_free.label("sellable"))
        .where(ShowtimeSeat.showtime_id == booking.showtime_id, ShowtimeSeat.label.in_(labels))
        .order_by(ShowtimeSeat.label)
        .with_for_update()
    ).all()
    if len(sellable) != len(labels) or not all(row.sellable for row in sellable):
        return False
    session.execute(
        update(ShowtimeSeat)
        .where(ShowtimeSeat.showtime_id == booking.showtime_id, ShowtimeSeat.label.in_(labels))
        .values(state=SeatState.SOLD, booking_id=booking.id, hold_expires_at=None)
    )
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
