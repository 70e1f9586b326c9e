"""Holds, payments and cancellations."""

from __future__ import annotations

import uuid

from boxoffice_db.models import Booking
from fastapi import APIRouter, Response
from prometheus_client import Counter

from boxoffice_booking import holds
from boxoffice_booking.auth import require_scope
from boxoffice_booking.deps import SessionDep, SettingsDep
from boxoffice_booking.problems import InvalidSeats, SeatsUnavailable
from boxoffice_booking.schemas import (
    BookingCreate,
    BookingPublic,
    BookingSeatPublic,
    Customer,
    PaymentCreate,
    PaymentPublic,
)

router = APIRouter(prefix="/v1/bookings", tags=["bookings"])

HOLDS = Counter("boxoffice_holds_total", "Hold attempts by result", ["result"])
CONFIRMATIONS = Counter("boxoffice_confirmations_total", "Bookings confirmed")
CANCELLATIONS = Counter("boxoffice_cancellations_total", "Bookings cancelled")
REVENUE = Counter(
    "boxoffice_revenue_minor", "Payments captured, in minor units (paise, cents)", ["currency"]
)

# Every handler builds its answer inside its transaction and then ends it (commit or
# rollback), so no pooled connection stays checked out after the handler's thread returns.
# FastAPI validates a sync handler's answer in another thread-pool job; a request holding a
# connection while it waits for that thread can, under load, leave every thread waiting for a
# connection (found by `make bench`; see docs/benchmarks.md).
READ = require_scope("bookings:read")
WRITE = require_scope("bookings:write")


def booking_public(booking: Booking) -> BookingPublic:
    return BookingPublic(
        id=booking.id,
        reference=booking.reference,
        status=booking.status.value,
        showtime_id=booking.showtime_id,
        seats=[
            BookingSeatPublic(label=s.label, category=s.category, price_minor=s.price_minor)
            for s in booking.seats
        ],
        total_minor=booking.total_minor,
        currency=booking.currency,
        customer=Customer(
            email=booking.customer_email,
            phone=booking.customer_phone,
            sms_opt_out=booking.sms_opt_out,
        ),
        expires_at=booking.expires_at,
        created_at=booking.created_at,
        confirmed_at=booking.confirmed_at,
        expired_at=booking.expired_at,
        cancelled_at=booking.cancelled_at,
    )


@router.post("", status_code=201, dependencies=[WRITE])  # type: ignore[list-item]
def create_booking(
    body: BookingCreate, session: SessionDep, settings: SettingsDep, response: Response
) -> BookingPublic:
    """Hold seats for `hold_ttl_seconds`; 409 names the seats somebody else has."""
    try:
        booking = holds.hold_seats(
            session,
            body.showtime_id,
            body.seats,
            body.customer.email,
            body.customer.phone,
            settings.hold_ttl_seconds,
            settings.max_seats_per_hold,
            sms_opt_out=body.customer.sms_opt_out,
        )
        public = booking_public(booking)
        session.commit()
    except SeatsUnavailable:
        session.rollback()  # free the seat locks and the connection before answering
        HOLDS.labels("conflict").inc()
        raise
    except InvalidSeats:
        session.rollback()
        HOLDS.labels("rejected").inc()
        raise
    HOLDS.labels("created").inc()
    response.headers["Location"] = f"/v1/bookings/{booking.id}"
    return public


@router.get("/{booking_id}", dependencies=[READ])  # type: ignore[list-item]
def read_booking(booking_id: uuid.UUID, session: SessionDep) -> BookingPublic:
    """A booking with its seats and status."""
    public = booking_public(holds.get_booking(session, booking_id))
    session.rollback()
    return public


@router.post("/{booking_id}/payments", status_code=201, dependencies=[WRITE])  # type: ignore[list-item]
def create_payment(
    booking_id: uuid.UUID, body: PaymentCreate, session: SessionDep
) -> PaymentPublic:
    """Pay for a held booking; on success it is CONFIRMED and the customer is notified."""
    payment, booking = holds.pay_booking(session, booking_id, body.provider, body.outcome)
    public = PaymentPublic(
        id=payment.id,
        booking_id=booking.id,
        provider=payment.provider,
        status=payment.status,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        booking=booking_public(booking),
    )
    session.commit()
    if payment.status == "succeeded":
        CONFIRMATIONS.inc()
        REVENUE.labels(payment.currency).inc(payment.amount_minor)
    return public


@router.post("/{booking_id}/cancel", dependencies=[WRITE])  # type: ignore[list-item]
def cancel_booking(booking_id: uuid.UUID, session: SessionDep) -> BookingPublic:
    """Cancel a booking; its seats return to sale at once."""
    public = booking_public(holds.cancel_booking(session, booking_id))
    session.commit()
    CANCELLATIONS.inc()
    return public
