"""Holds with a payment in progress are not expired before the provider has been asked."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from boxoffice_booking import holds
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, BookingStatus, Payment, ShowtimeSeat
from boxoffice_reaper.expiry import expire_batch
from boxoffice_reaper.payment_checks import RecheckThrottle, check_paying_holds
from sqlalchemy import func, update

from tests.support.catalog import make_showtime
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

GRACE = timedelta(minutes=15)


class ProviderAnswers:
    """What the provider says about each order, and how often it was asked."""

    def __init__(self) -> None:
        self.statuses: dict[str, str] = {}
        self.asked: list[str] = []

    def __call__(self, provider: str, reference: str) -> str:
        self.asked.append(reference)
        status = self.statuses[reference]
        if status == "unreachable":
            raise ConnectionError("provider timed out")
        return status


def lapsed_hold(showtime_id: uuid.UUID, seat: str, overdue: timedelta) -> uuid.UUID:
    with session_scope() as session:
        booking = holds.hold_seats(session, showtime_id, [seat], "p@example.com", None, 600, 10)
        session.flush()
        for table, key, column in (
            (Booking, Booking.id, "expires_at"),
            (ShowtimeSeat, ShowtimeSeat.booking_id, "hold_expires_at"),
        ):
            session.execute(
                update(table).where(key == booking.id).values({column: func.now() - overdue})
            )
        return booking.id


def start_payment(booking_id: uuid.UUID, reference: str) -> uuid.UUID:
    with session_scope() as session:
        payment = Payment(
            booking_id=booking_id,
            provider="test",
            status="pending",
            amount_minor=20000,
            currency="INR",
            provider_reference=reference,
        )
        session.add(payment)
        session.flush()
        return payment.id


def status_of(booking_id: uuid.UUID) -> BookingStatus:
    with session_scope() as session:
        booking = session.get(Booking, booking_id)
        assert booking is not None
        return booking.status


def test_provider_is_asked_before_a_paying_hold_is_expired(stack: Stack) -> None:
    showtime_id = make_showtime(rows=1, seats_per_row=8)
    provider = ProviderAnswers()
    tag = uuid.uuid4().hex[:8]
    cases = {
        "failed": ("A2", timedelta(seconds=5), "failed", BookingStatus.EXPIRED),
        "paying": ("A3", timedelta(seconds=5), "pending", BookingStatus.PENDING),
        "paid": ("A4", timedelta(seconds=5), "succeeded", BookingStatus.PENDING),
        "down": ("A5", timedelta(seconds=5), "unreachable", BookingStatus.PENDING),
        "too-late": ("A6", GRACE + timedelta(minutes=1), "pending", BookingStatus.EXPIRED),
    }
    bookings, payments = {}, {}
    for name, (seat, overdue, answer, _) in cases.items():
        bookings[name] = lapsed_hold(showtime_id, seat, overdue)
        reference = f"order_{name}_{tag}"
        payments[name] = start_payment(bookings[name], reference)
        provider.statuses[reference] = answer
    unpaid = lapsed_hold(showtime_id, "A7", timedelta(seconds=5))

    # The plain sweep expires the unpaid hold and leaves every paying one alone.
    with session_scope() as session:
        expire_batch(session, 100)
    assert status_of(unpaid) is BookingStatus.EXPIRED
    assert all(status_of(b) is BookingStatus.PENDING for b in bookings.values())

    throttle = RecheckThrottle(60)
    check_paying_holds(provider, throttle, GRACE)
    for name, (_, _, _, expected) in cases.items():
        assert status_of(bookings[name]) is expected, name
    with session_scope() as session:
        failed = session.get(Payment, payments["failed"])
        assert failed is not None
        assert failed.status == "failed"
        paid = session.get(Payment, payments["paid"])
        assert paid is not None
        assert paid.status == "pending"  # confirming is the payment path's job, not ours

    # Within the recheck period nobody is asked twice.
    asked = len(provider.asked)
    check_paying_holds(provider, throttle, GRACE)
    assert len(provider.asked) == asked
