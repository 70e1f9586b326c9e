"""Expire due holds in batches, safely from any number of replicas."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from boxoffice.booking.v1 import events_pb2
from boxoffice_contracts.envelope import build_envelope, iso
from boxoffice_db.models import Booking, BookingStatus, Payment
from boxoffice_db.seats import release_seats
from boxoffice_messaging.outbox import add_event
from prometheus_client import Counter, Histogram
from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql import func

EXPIRED = Counter("boxoffice_holds_expired_total", "Holds marked EXPIRED by the reaper")
EXPIRY_LAG = Histogram(
    "boxoffice_expiry_lag_seconds",
    "Time from a hold's expires_at to the reaper marking it EXPIRED",
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60),
)
BATCH_SIZE = Histogram(
    "boxoffice_reaper_batch_size",
    "Holds expired per batch (a batch is one transaction)",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)

# Payment statuses (boxoffice_payments.PaymentStatus values) that mean money may be moving.
PAYMENT_IN_PROGRESS = ("pending", "authorized")


def has_payment_in_progress() -> ColumnElement[bool]:
    """The booking has a payment the provider has not settled yet (as far as we know)."""
    return exists().where(Payment.booking_id == Booking.id, Payment.status.in_(PAYMENT_IN_PROGRESS))


def expire_batch(session: Session, batch_size: int) -> int:
    """Expire up to `batch_size` due holds in the caller's transaction; return how many.

    SKIP LOCKED lets replicas take disjoint batches, and skips a booking that a payment or a
    cancellation has locked: that one is looked at again on the next sweep. Holds with a
    payment in progress are left to `payment_checks`, which asks the provider first.
    """
    due = session.scalars(
        select(Booking)
        .where(
            Booking.status == BookingStatus.PENDING,
            Booking.expires_at <= func.now(),
            ~has_payment_in_progress(),
        )
        .order_by(Booking.expires_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
        .options(selectinload(Booking.seats))
    ).all()
    return expire_bookings(session, due)


def seconds_until_next_expiry(session: Session) -> float | None:
    """By the database's clock, how long until the next PENDING hold falls due (None: none)."""
    wait = session.scalar(
        select(func.extract("epoch", func.min(Booking.expires_at) - func.clock_timestamp())).where(
            Booking.status == BookingStatus.PENDING, ~has_payment_in_progress()
        )
    )
    return None if wait is None else float(wait)


def expire_bookings(session: Session, bookings: Sequence[Booking]) -> int:
    """Mark these locked PENDING bookings EXPIRED, release their seats, announce each."""
    if not bookings:
        return 0
    BATCH_SIZE.observe(len(bookings))
    now = datetime.now(UTC)
    release_seats(session, [b.id for b in bookings])
    for booking in bookings:
        booking.status = BookingStatus.EXPIRED
        booking.expired_at = now
        add_event(
            session,
            build_envelope(
                "booking.expired",
                booking.id,
                events_pb2.BookingExpired(
                    booking_id=str(booking.id),
                    showtime_id=str(booking.showtime_id),
                    seats=[s.label for s in booking.seats],
                    expires_at=iso(booking.expires_at),
                    expired_at=iso(now),
                ),
            ),
        )
        EXPIRY_LAG.observe(max(0.0, (now - booking.expires_at).total_seconds()))
    EXPIRED.inc(len(bookings))
    return len(bookings)
