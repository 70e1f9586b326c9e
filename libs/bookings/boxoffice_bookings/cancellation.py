"""Cancelling a booking: a hold at any time, a confirmed booking until the cut-off (refunded)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from boxoffice.booking.v1 import events_pb2
from boxoffice_db.models import Booking, BookingStatus, Payment
from boxoffice_messaging.outbox import add_booking_event
from sqlalchemy.orm import Session
from sqlalchemy.sql import func

from boxoffice_bookings import repository, seat_repository
from boxoffice_bookings.errors import BookingStateConflict, CancellationClosed
from boxoffice_bookings.payments import get_booking
from boxoffice_bookings.refunds import request_refund


@dataclass
class Cancellation:
    booking: Booking
    seat_changes: dict[str, str]  # label -> seat-cache state, applied after the commit
    refund_ids: list[uuid.UUID] = field(default_factory=list)  # to execute after the commit


def cancel_booking(session: Session, booking_id: uuid.UUID, cutoff_minutes: int) -> Cancellation:
    """Cancel a hold, or a confirmed booking before the cut-off (its captures refunded).

    The refunds are owed in this transaction and asked of the provider after it commits.
    """
    booking = get_booking(session, booking_id, lock=True)
    if booking.status is BookingStatus.CANCELLED:
        return Cancellation(booking, {})
    if booking.status is BookingStatus.EXPIRED:
        raise BookingStateConflict(
            f"Booking {booking.reference} already expired.", status_now=booking.status
        )
    previous = booking.status
    if previous is BookingStatus.CONFIRMED:
        starts_at = repository.showtime_starts_at(session, booking.showtime_id)
        closes_at = starts_at - timedelta(minutes=cutoff_minutes)
        if datetime.now(UTC) >= closes_at:
            raise CancellationClosed(
                f"Confirmed bookings can be cancelled until {cutoff_minutes} minutes before "
                "the showtime.",
                closed_at=closes_at.isoformat(),
            )
    refund_ids: list[uuid.UUID] = []
    refunded = 0
    for capture in repository.captures_without_refund(session, booking.id):
        payment = session.get(Payment, capture.payment_id)
        assert payment is not None  # the ledger row's foreign key
        refund_id = request_refund(
            session,
            booking,
            payment,
            capture.provider_ref,
            capture.amount_minor,
            capture.currency,
            "cancelled",
            announce=False,  # booking.cancelled says what is refunded
        )
        if refund_id is not None:
            refund_ids.append(refund_id)
            refunded += capture.amount_minor
    released = seat_repository.release_seats(session, [booking.id])
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = func.now()
    session.flush()
    session.refresh(booking)
    add_booking_event(
        session,
        "booking.cancelled",
        booking,
        events_pb2.BookingCancelled,
        seats=sorted(released),
        previous_status=previous.value,
        refunded_minor=refunded,
        currency=booking.currency,
    )
    return Cancellation(booking, dict.fromkeys(released, "a"), refund_ids)
