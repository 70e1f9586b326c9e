"""The notifier's SQL: deliveries, the booking details a message tells, reminder claims and the
daily report's figures. The modules beside it keep the rules; they call these functions.

The delivery's statements run once per message, so they run on kept cursors
(`boxoffice_db.kept`): written with SQLAlchemy, compiled once, executed by psycopg.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from boxoffice_db import kept
from boxoffice_db.kept import DriverStatement
from boxoffice_db.models import (
    Booking,
    BookingReminder,
    BookingSeat,
    BookingStatus,
    Delivery,
    Screen,
    Showtime,
    Venue,
)
from sqlalchemy import (
    ARRAY,
    Connection,
    Row,
    String,
    bindparam,
    func,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.orm import Session


class DeliveryKey(Protocol):
    """What identifies a delivery row (boxoffice_notifier.deliveries.DeliveryKey)."""

    @property
    def event_id(self) -> uuid.UUID: ...
    @property
    def channel(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def booking_id(self) -> uuid.UUID | None: ...


# Insert the row if it is new, lock it either way, and say its status: one round trip. The
# no-op DO UPDATE takes the row lock as SELECT ... FOR UPDATE would (waiting for a concurrent
# holder, then seeing its committed status), which DO NOTHING does not.
_inserted = insert(Delivery).values(
    event_id=bindparam("event_id"),
    channel=bindparam("channel"),
    status="pending",
    attempts=0,
    kind=bindparam("kind"),
    booking_id=bindparam("booking_id"),
)
_LOCK = _inserted.on_conflict_do_update(
    index_elements=[Delivery.event_id, Delivery.channel],
    set_={"status": Delivery.status, "updated_at": Delivery.updated_at},
).returning(Delivery.status)
_LOCK_SQL = DriverStatement.of(_LOCK)


def lock_delivery(connection: Connection, key: DeliveryKey) -> str:
    """Insert the delivery row if new, lock it, and return its status."""
    [status] = _one(
        connection,
        _LOCK_SQL,
        {
            "event_id": key.event_id,
            "channel": key.channel,
            "kind": key.kind,
            "booking_id": key.booking_id,
        },
    )
    return str(status)


def set_delivery(
    connection: Connection, key: DeliveryKey, *, count_attempt: bool = False, **values: Any
) -> None:
    """Update the locked delivery's `values` (and count an attempt)."""
    kept.execute(
        connection,
        _update(tuple(sorted(values)), count_attempt),
        {
            "key_event_id": key.event_id,
            "key_channel": key.channel,
            **{f"new_{column}": value for column, value in values.items()},
        },
    )


def _one(
    connection: Connection, statement: DriverStatement, params: dict[str, Any]
) -> tuple[Any, ...]:
    row: tuple[Any, ...] | None = kept.execute(connection, statement, params).fetchone()
    if row is None:
        raise LookupError("the delivery's statement returned no row")
    return row


@functools.lru_cache(maxsize=32)
def _update(columns: tuple[str, ...], count_attempt: bool) -> DriverStatement:
    """UPDATE of `columns` (bound by name) on one delivery, built once per set of columns."""
    # Parameters named apart from the columns, which SQLAlchemy keeps for itself.
    values: dict[str, Any] = {column: bindparam(f"new_{column}") for column in columns}
    if count_attempt:
        values["attempts"] = Delivery.attempts + 1
    return DriverStatement.of(
        update(Delivery)
        .where(
            Delivery.event_id == bindparam("key_event_id"),
            Delivery.channel == bindparam("key_channel"),
        )
        .values(values)
    )


# One round trip, no ORM objects: the seats come as an array beside the booking's row. Built once;
# each call only binds the id.
_SEAT_LABELS = (
    select(
        func.coalesce(
            func.array_agg(aggregate_order_by(BookingSeat.label, BookingSeat.label)),
            literal([], ARRAY(String)),
        )
    )
    .where(BookingSeat.booking_id == Booking.id)
    .scalar_subquery()
)
_DETAILS = (
    select(
        Booking.id,
        Booking.reference,
        Booking.status,
        Booking.customer_email,
        Booking.customer_phone,
        Booking.sms_opt_out,
        Showtime.film_title,
        Venue.name,
        Venue.timezone,
        Screen.name,
        Showtime.starts_at,
        Showtime.ends_at,
        _SEAT_LABELS,
        Booking.total_minor,
        Booking.currency,
    )
    .join(Showtime, Showtime.id == Booking.showtime_id)
    .join(Screen, Screen.id == Showtime.screen_id)
    .join(Venue, Venue.id == Screen.venue_id)
    .where(Booking.id == bindparam("booking_id"))
)


# The claim and the booking's details in one round trip: the lock as a data-modifying CTE, the
# details (both bind `booking_id`) joined to it, NULLs when there is no such booking.
_LOCKED = _LOCK.cte("locked")
_DETAILS_OF = _DETAILS.subquery("details")
_LOCK_AND_DETAILS = DriverStatement.of(
    select(_LOCKED.c.status, *_DETAILS_OF.c).select_from(_LOCKED.outerjoin(_DETAILS_OF, true()))
)


def lock_delivery_with_booking(
    connection: Connection, key: DeliveryKey
) -> tuple[str, tuple[Any, ...] | None]:
    """`lock_delivery`, and the details of the key's booking (None: no booking, or no such
    booking) read by the same statement: one round trip instead of two. The details are as of
    the statement's start (one snapshot), before any wait for the row lock."""
    if key.booking_id is None:
        return lock_delivery(connection, key), None
    status, *details = _one(
        connection,
        _LOCK_AND_DETAILS,
        {
            "event_id": key.event_id,
            "channel": key.channel,
            "kind": key.kind,
            "booking_id": key.booking_id,
        },
    )
    return status, None if details[0] is None else tuple(details)


def due_reminders(
    session: Session, window: timedelta, limit: int
) -> Sequence[Row[uuid.UUID, uuid.UUID, datetime]]:
    """Confirmed bookings not yet reminded whose showtime starts within `window`, soonest first."""
    due = (
        select(Booking.id, Booking.showtime_id, Showtime.starts_at)
        .join(Showtime, Showtime.id == Booking.showtime_id)
        .where(
            Booking.status == BookingStatus.CONFIRMED,
            Showtime.starts_at > func.now(),
            Showtime.starts_at <= func.now() + window,
            ~select(BookingReminder.booking_id)
            .where(BookingReminder.booking_id == Booking.id)
            .exists(),
        )
        .order_by(Showtime.starts_at)
        .limit(limit)
    )
    return session.execute(due).all()


def claim_reminders(session: Session, booking_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Claim these bookings' reminders; returns those this call claimed (not another run)."""
    return set(
        session.scalars(
            insert(BookingReminder)
            .values([{"booking_id": booking_id} for booking_id in booking_ids])
            .on_conflict_do_nothing(index_elements=[BookingReminder.booking_id])
            .returning(BookingReminder.booking_id)
        )
    )


def venue_name(session: Session, venue_id: uuid.UUID) -> str | None:
    venue = session.get(Venue, venue_id)
    return venue.name if venue else None


def all_venue_ids(session: Session) -> list[uuid.UUID]:
    return list(session.scalars(select(Venue.id).order_by(Venue.name)))


def venue_day_figures(
    session: Session, venue_id: uuid.UUID, start: datetime, end: datetime
) -> tuple[dict[str, tuple[int, int]], int, int, int]:
    """At a venue in [start, end): confirmed bookings and revenue by currency, seats sold,
    holds expired, cancellations."""
    at_venue = (
        select(Booking.id)
        .join(Showtime, Showtime.id == Booking.showtime_id)
        .join(Screen, Screen.id == Showtime.screen_id)
        .where(Screen.venue_id == venue_id)
    )
    confirmed = at_venue.where(Booking.confirmed_at >= start, Booking.confirmed_at < end)
    by_currency = {
        currency: (int(count), int(revenue))
        for currency, count, revenue in session.execute(
            select(Booking.currency, func.count(), func.coalesce(func.sum(Booking.total_minor), 0))
            .where(Booking.id.in_(confirmed))
            .group_by(Booking.currency)
        )
    }
    seats_sold = session.scalar(
        select(func.count()).select_from(BookingSeat).where(BookingSeat.booking_id.in_(confirmed))
    )
    expiries = session.scalar(
        select(func.count()).where(
            Booking.id.in_(at_venue.where(Booking.expired_at >= start, Booking.expired_at < end))
        )
    )
    cancellations = session.scalar(
        select(func.count()).where(
            Booking.id.in_(
                at_venue.where(Booking.cancelled_at >= start, Booking.cancelled_at < end)
            )
        )
    )
    return by_currency, seats_sold or 0, expiries or 0, cancellations or 0
