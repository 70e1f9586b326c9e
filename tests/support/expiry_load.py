"""Many holds expiring over a window, written straight into PostgreSQL, and how they ended.

The holds are inserted in bulk (the reaper, not the hold path, is under test here): one
seat each, `expires_at` spread evenly over the window, seats held exactly as a hold leaves
them.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from boxoffice_db.engine import session_scope
from boxoffice_db.models import (
    Booking,
    BookingSeat,
    BookingStatus,
    OutboxEvent,
    SeatState,
    ShowtimeSeat,
)
from sqlalchemy import delete, func, insert, select, update

from tests.support.catalog import make_showtime


def create_expiring_holds(count: int, window: timedelta, first_expiry: datetime) -> list[uuid.UUID]:
    """`count` one-seat holds whose expiries are spread evenly over `window`."""
    seats_per_row = 100
    per_showtime = 26 * seats_per_row
    ids: list[uuid.UUID] = []
    remaining = count
    while remaining:
        n = min(remaining, per_showtime)
        rows = math.ceil(n / seats_per_row)
        showtime_id = make_showtime(rows=rows, seats_per_row=seats_per_row, blocked=())
        with session_scope() as session:
            seats = session.execute(
                select(ShowtimeSeat.label, ShowtimeSeat.category)
                .where(ShowtimeSeat.showtime_id == showtime_id)
                .order_by(ShowtimeSeat.label)
                .limit(n)
            ).all()
            bookings, booking_seats, held = [], [], []
            for label, category in seats:
                index = len(ids)
                expires_at = first_expiry + window * (index / max(1, count - 1))
                booking_id = uuid.uuid4()
                ids.append(booking_id)
                bookings.append(
                    {
                        "id": booking_id,
                        "reference": uuid.uuid4().hex[:12].upper(),
                        "showtime_id": showtime_id,
                        "status": BookingStatus.PENDING,
                        "customer_email": f"load-{index}@example.com",
                        "total_minor": 20000,
                        "currency": "INR",
                        "expires_at": expires_at,
                    }
                )
                booking_seats.append(
                    {
                        "booking_id": booking_id,
                        "label": label,
                        "category": category,
                        "price_minor": 20000,
                    }
                )
                held.append(
                    {
                        "showtime_id": showtime_id,
                        "label": label,
                        "state": SeatState.HELD,
                        "booking_id": booking_id,
                        "hold_expires_at": expires_at,
                    }
                )
            session.execute(insert(Booking), bookings)
            session.execute(insert(BookingSeat), booking_seats)
            session.execute(update(ShowtimeSeat), held)
        remaining -= n
    return ids


@dataclass(frozen=True)
class ExpiryReport:
    holds: int
    expired: int
    still_pending: int
    events_per_booking: dict[int, int]  # how many bookings had 0, 1, 2... expiry events
    lag_p50: float
    lag_p99: float
    lag_max: float

    def __str__(self) -> str:
        return (
            f"{self.holds} holds: {self.expired} expired, {self.still_pending} pending; "
            f"expiry events per booking {self.events_per_booking}; lag p50 {self.lag_p50:.3f}s "
            f"p99 {self.lag_p99:.3f}s max {self.lag_max:.3f}s"
        )


def count_pending(ids: list[uuid.UUID]) -> int:
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Booking)
                .where(Booking.id.in_(ids), Booking.status == BookingStatus.PENDING)
            )
            or 0
        )


def expiry_report(ids: list[uuid.UUID]) -> ExpiryReport:
    with session_scope() as session:
        rows = session.execute(
            select(Booking.status, Booking.expires_at, Booking.expired_at).where(
                Booking.id.in_(ids)
            )
        ).all()
        event_counts: dict[uuid.UUID, int] = dict(
            session.execute(
                select(OutboxEvent.aggregate_id, func.count())
                .where(
                    OutboxEvent.aggregate_id.in_(ids),
                    OutboxEvent.event_type == "booking.expired",
                )
                .group_by(OutboxEvent.aggregate_id)
            )
            .tuples()
            .all()
        )
    histogram: dict[int, int] = {}
    for booking_id in ids:
        n = event_counts.get(booking_id, 0)
        histogram[n] = histogram.get(n, 0) + 1
    lags = sorted(
        (expired_at - expires_at).total_seconds()
        for status, expires_at, expired_at in rows
        if status is BookingStatus.EXPIRED and expired_at is not None
    )

    def quantile(q: float) -> float:
        return lags[min(len(lags) - 1, math.ceil(q * len(lags)) - 1)] if lags else math.nan

    return ExpiryReport(
        holds=len(ids),
        expired=sum(1 for status, _, _ in rows if status is BookingStatus.EXPIRED),
        still_pending=sum(1 for status, _, _ in rows if status is BookingStatus.PENDING),
        events_per_booking=histogram,
        lag_p50=quantile(0.5),
        lag_p99=quantile(0.99),
        lag_max=lags[-1] if lags else math.nan,
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


def discard_unsent_events(ids: list[uuid.UUID]) -> None:
    """Drop the load's unsent outbox rows, so later tests' relays do not email thousands."""
    with session_scope() as session:
        session.execute(
            delete(OutboxEvent).where(
                OutboxEvent.aggregate_id.in_(ids), OutboxEvent.published_at.is_(None)
            )
        )
