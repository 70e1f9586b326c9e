"""Expiring due holds in batches, safely from any number of replicas."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from boxoffice.booking.v1 import events_pb2
from boxoffice_contracts.envelope import iso
from boxoffice_db.engine import after_commit
from boxoffice_db.models import Booking, BookingStatus
from boxoffice_messaging.outbox import add_booking_event
from prometheus_client import Counter, Histogram
from sqlalchemy.orm import Session

from boxoffice_bookings import repository, seat_repository

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


def expire_batch(session: Session, batch_size: int) -> int:
    """Expire up to `batch_size` due holds in the caller's transaction; return how many.

    Holds with a payment in progress are left to `reconciliation`, which asks the provider
    first.
    """
    return expire_bookings(session, repository.lock_due_holds(session, batch_size))


def seconds_until_next_expiry(session: Session) -> float | None:
    """By the database's clock, how long until the next PENDING hold falls due (None: none)."""
    return repository.seconds_until_next_expiry(session)


def expire_bookings(session: Session, bookings: Sequence[Booking]) -> int:
    """Mark these locked PENDING bookings EXPIRED, release their seats, announce each."""
    if not bookings:
        return 0
    now = datetime.now(UTC)
    lags = [max(0.0, (now - booking.expires_at).total_seconds()) for booking in bookings]
    seat_repository.release_seats(session, [b.id for b in bookings])
    for booking in bookings:
        booking.status = BookingStatus.EXPIRED
        booking.expired_at = now
        add_booking_event(
            session,
            "booking.expired",
            booking,
            events_pb2.BookingExpired,
            seats=[s.label for s in booking.seats],
            expires_at=iso(booking.expires_at),
            expired_at=iso(now),
        )
    after_commit(session, lambda: _observe(lags))
    return len(bookings)


def _observe(lags: list[float]) -> None:
    """Count a batch once its transaction has committed."""
    BATCH_SIZE.observe(len(lags))
    for lag in lags:
        EXPIRY_LAG.observe(lag)
    EXPIRED.inc(len(lags))
