"""Payments, refunds, late payments and cancellations, through the configured providers.

A captured payment always ends in one of two places: the booking is CONFIRMED (its seats
sold, re-acquired if the hold had lapsed and they are still free), or the money goes back.
Either way an event in the outbox tells the customer, in the same transaction.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from boxoffice.booking.v1 import events_pb2
from boxoffice_contracts.envelope import build_envelope
from boxoffice_db.models import (
    Booking,
    BookingStatus,
    Payment,
    PaymentWebhookEvent,
    Showtime,
)
from boxoffice_db.seats import release_seats
from boxoffice_messaging.outbox import add_event
from boxoffice_payments import (
    IN_PROGRESS_STATUSES,
    PaymentProvider,
    PaymentProviderError,
    PaymentStatus,
    UnknownProvider,
    WebhookSignatureError,
    get_provider,
)
from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import func

from boxoffice_booking.holds import get_booking, sell_seats
from boxoffice_booking.problems import (
    BookingStateConflict,
    CancellationClosed,
    HoldExpired,
    InvalidWebhookSignature,
    NotFound,
    PaymentProviderUnavailable,
    UnknownPaymentProvider,
)

log = logging.getLogger(__name__)

LATE_PAYMENTS = Counter(
    "boxoffice_late_payments_total", "Payments captured after their hold lapsed", ["result"]
)
REFUNDS = Counter("boxoffice_refunds_total", "Payments refunded, by reason", ["reason"])


class Settled(enum.Enum):
    CONFIRMED = "confirmed"
    REFUNDED = "refunded"
    UNCHANGED = "unchanged"


@dataclass
class PaymentResult:
    payment: Payment
    booking: Booking
    settled: Settled
    checkout: Mapping[str, str]
    seat_changes: dict[str, str]  # label -> seat-cache state, applied after commit
    reused: bool = False  # an order already in progress, answered again


def provider_named(name: str) -> PaymentProvider:
    try:
        return get_provider(name)
    except UnknownProvider as exc:
        raise UnknownPaymentProvider(str(exc), provider=name) from exc


def _hold_lapsed(booking: Booking) -> bool:
    return booking.status is BookingStatus.EXPIRED or booking.expires_at <= datetime.now(UTC)


def start_payment(
    session: Session, booking_id: uuid.UUID, provider_name: str, outcome: str | None
) -> PaymentResult:
    """Start a payment; a provider that settles at once (`test`) confirms or refunds now."""
    provider = provider_named(provider_name)
    booking = get_booking(session, booking_id, lock=True)
    if booking.status in (BookingStatus.CONFIRMED, BookingStatus.CANCELLED):
        raise BookingStateConflict(
            f"Booking {booking.reference} is {booking.status.value}.", status_now=booking.status
        )
    existing = session.scalars(
        select(Payment).where(
            Payment.booking_id == booking.id,
            Payment.provider == provider.name,
            Payment.status.in_(list(IN_PROGRESS_STATUSES)),
        )
    ).first()
    if existing is not None:
        # A client retrying without an Idempotency-Key gets the order it already has.
        return PaymentResult(
            existing, booking, Settled.UNCHANGED, _checkout(provider, existing), {}, reused=True
        )
    if provider.name != "test" and _hold_lapsed(booking):
        raise HoldExpired(
            f"The hold of booking {booking.reference} expired; hold the seats again.",
        )
    try:
        order = provider.create_order(
            amount_minor=booking.total_minor,
            currency=booking.currency,
            receipt=booking.reference,
            outcome=outcome,
        )
    except PaymentProviderError as exc:
        raise PaymentProviderUnavailable(f"The payment could not be started: {exc}") from exc
    payment = Payment(
        id=uuid.uuid4(),
        booking_id=booking.id,
        provider=provider.name,
        status=PaymentStatus.PENDING.value,
        amount_minor=booking.total_minor,
        currency=booking.currency,
        provider_reference=order.reference,
        provider_payment_id=order.payment_reference,
    )
    session.add(payment)
    session.flush()
    result = PaymentResult(payment, booking, Settled.UNCHANGED, dict(order.checkout), {})
    if order.status is PaymentStatus.FAILED:
        payment.status = PaymentStatus.FAILED.value
        payment.failure_reason = "declined by the test provider"
    elif order.status is PaymentStatus.SUCCEEDED:
        result.settled, result.seat_changes = settle_captured(session, provider, booking, payment)
    session.flush()
    return result


def _checkout(provider: PaymentProvider, payment: Payment) -> dict[str, str]:
    key_id = getattr(provider, "key_id", None)
    if key_id is None or payment.provider_reference is None:
        return {}
    return {"key_id": str(key_id), "order_id": payment.provider_reference}


def settle_captured(
    session: Session, provider: PaymentProvider, booking: Booking, payment: Payment
) -> tuple[Settled, dict[str, str]]:
    """A payment was captured: confirm the (locked) booking, or refund if it cannot be."""
    payment.status = PaymentStatus.SUCCEEDED.value
    if booking.status is BookingStatus.CONFIRMED:
        return _refund(session, provider, booking, payment, "already_paid"), {}
    if booking.status is BookingStatus.CANCELLED:
        return _refund(session, provider, booking, payment, "booking_cancelled"), {}
    late = _hold_lapsed(booking)
    labels = [s.label for s in booking.seats]
    if not sell_seats(session, booking):
        changes: dict[str, str] = {}
        if booking.status is BookingStatus.PENDING:
            # The hold lapsed and the reaper has not got to it: expire it here, the refund
            # event tells the customer (no second "hold expired" message).
            changes = dict.fromkeys(release_seats(session, [booking.id]), "a")
            booking.status = BookingStatus.EXPIRED
            booking.expired_at = func.now()
        LATE_PAYMENTS.labels("refunded").inc()
        return _refund(session, provider, booking, payment, "seats_taken"), changes
    if late:
        LATE_PAYMENTS.labels("reacquired").inc()
    # The database's clock, written and read back in one statement (no flush and refresh).
    confirmed_at = session.execute(
        update(Booking)
        .where(Booking.id == booking.id)
        .values(status=BookingStatus.CONFIRMED, confirmed_at=func.now())
        .returning(Booking.confirmed_at)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    set_committed_value(booking, "status", BookingStatus.CONFIRMED)
    set_committed_value(booking, "confirmed_at", confirmed_at)
    add_event(
        session,
        build_envelope(
            "booking.confirmed",
            booking.id,
            events_pb2.BookingConfirmed(
                booking_id=str(booking.id),
                showtime_id=str(booking.showtime_id),
                seats=labels,
                total_minor=booking.total_minor,
                currency=booking.currency,
                payment_id=str(payment.id),
                late_payment=late,
            ),
        ),
    )
    return Settled.CONFIRMED, dict.fromkeys(labels, "s")


def _provider_refund(provider: PaymentProvider, payment: Payment) -> None:
    """Give a captured payment's money back; raises 503 (retry later) if the provider fails."""
    if payment.provider_payment_id is None:
        raise PaymentProviderUnavailable("The provider has not said which payment to refund.")
    try:
        refund = provider.refund(payment.provider_payment_id, payment.amount_minor)
    except PaymentProviderError as exc:
        raise PaymentProviderUnavailable(f"The refund could not be made: {exc}") from exc
    payment.status = PaymentStatus.REFUNDED.value
    payment.refund_reference = refund.reference
    payment.refunded_minor = refund.amount_minor


def _refund(
    session: Session, provider: PaymentProvider, booking: Booking, payment: Payment, reason: str
) -> Settled:
    _provider_refund(provider, payment)
    REFUNDS.labels(reason).inc()
    session.flush()
    add_event(
        session,
        build_envelope(
            "booking.refunded",
            booking.id,
            events_pb2.BookingRefunded(
                booking_id=str(booking.id),
                showtime_id=str(booking.showtime_id),
                seats=[s.label for s in booking.seats],
                payment_id=str(payment.id),
                refunded_minor=payment.refunded_minor,
                currency=payment.currency,
                reason=reason,
            ),
        ),
    )
    return Settled.REFUNDED


@dataclass
class WebhookResult:
    status: str  # processed, duplicate, ignored
    seat_changes: dict[str, str]
    showtime_id: uuid.UUID | None = None


def handle_webhook(
    session: Session, provider_name: str, body: bytes, headers: Mapping[str, str]
) -> WebhookResult:
    """Verify, deduplicate by provider event id, and apply a provider callback."""
    provider = provider_named(provider_name)
    try:
        event = provider.parse_webhook(body, headers)
    except WebhookSignatureError as exc:
        raise InvalidWebhookSignature(str(exc)) from exc
    first = session.execute(
        insert(PaymentWebhookEvent)
        .values(
            provider=provider.name,
            event_id=event.event_id[:200],
            event_type=event.event_type[:100],
        )
        .on_conflict_do_nothing()
        .returning(PaymentWebhookEvent.event_id)
    ).first()
    if first is None:
        return WebhookResult("duplicate", {})
    if event.status is None or event.order_reference is None:
        return WebhookResult("ignored", {})
    found = session.scalars(
        select(Payment).where(
            Payment.provider == provider.name, Payment.provider_reference == event.order_reference
        )
    ).first()
    if found is None:
        log.warning("webhook %s for unknown order %s", event.event_id, event.order_reference)
        return WebhookResult("ignored", {})
    booking = get_booking(session, found.booking_id, lock=True)
    payment = session.scalars(select(Payment).where(Payment.id == found.id).with_for_update()).one()
    if payment.status not in IN_PROGRESS_STATUSES:
        return WebhookResult("ignored", {})  # already settled (e.g. order.paid after captured)
    payment.provider_payment_id = event.payment_reference or payment.provider_payment_id
    if event.status is PaymentStatus.FAILED:
        payment.status = PaymentStatus.FAILED.value
        payment.failure_reason = f"provider event {event.event_type}"
        return WebhookResult("processed", {})
    if event.status is PaymentStatus.AUTHORIZED:
        payment.status = PaymentStatus.AUTHORIZED.value
        if payment.provider_payment_id is None:
            return WebhookResult("processed", {})
        try:
            provider.capture(payment.provider_payment_id, payment.amount_minor, payment.currency)
        except PaymentProviderError as exc:
            raise PaymentProviderUnavailable(f"The capture failed: {exc}") from exc
    _, changes = settle_captured(session, provider, booking, payment)
    return WebhookResult("processed", changes, booking.showtime_id)


def cancel_booking(
    session: Session, booking_id: uuid.UUID, cutoff_minutes: int
) -> tuple[Booking, dict[str, str]]:
    """Cancel a hold, or a confirmed booking before the cut-off (refunding its payment)."""
    booking = get_booking(session, booking_id, lock=True)
    if booking.status is BookingStatus.CANCELLED:
        return booking, {}
    if booking.status is BookingStatus.EXPIRED:
        raise BookingStateConflict(
            f"Booking {booking.reference} already expired.", status_now=booking.status
        )
    previous = booking.status
    refunded = 0
    if previous is BookingStatus.CONFIRMED:
        starts_at = session.scalars(
            select(Showtime.starts_at).where(Showtime.id == booking.showtime_id)
        ).one()
        closes_at = starts_at - timedelta(minutes=cutoff_minutes)
        if datetime.now(UTC) >= closes_at:
            raise CancellationClosed(
                f"Confirmed bookings can be cancelled until {cutoff_minutes} minutes before "
                "the showtime.",
                closed_at=closes_at.isoformat(),
            )
        for payment in session.scalars(
            select(Payment)
            .where(
                Payment.booking_id == booking.id,
                Payment.status == PaymentStatus.SUCCEEDED.value,
            )
            .with_for_update()
        ):
            _provider_refund(provider_named(payment.provider), payment)
            REFUNDS.labels("cancelled").inc()
            refunded += payment.refunded_minor
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
                refunded_minor=refunded,
                currency=booking.currency,
            ),
        ),
    )
    return booking, dict.fromkeys(released, "a")


def payments_of(session: Session, booking_id: uuid.UUID) -> list[Payment]:
    if session.get(Booking, booking_id) is None:
        raise NotFound(f"No booking {booking_id}.")
    return list(
        session.scalars(
            select(Payment).where(Payment.booking_id == booking_id).order_by(Payment.created_at)
        )
    )
