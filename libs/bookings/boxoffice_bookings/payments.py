"""Payments: start one, settle every capture (confirm, late re-acquire or refund), webhooks.

Money is settled by the provider's payment id, never by the order row's status: the first time
a capture is recorded in the ledger (`payment_ledger`, unique per provider payment id) it ends
in exactly one of two places, whatever came before it (a failed attempt on the same order, a
duplicate, a reordered or late webhook, an expired hold): the booking is CONFIRMED (its seats
sold, re-acquired if the hold had lapsed and they are still free), or a refund is owed
(`refunds.request_refund`, asked of the provider after the commit). A capture whose amount or
currency differs from the order is never confirmed: it is refunded and counted.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from boxoffice.booking.v1 import events_pb2
from boxoffice_db.models import Booking, BookingStatus, LedgerKind, Payment
from boxoffice_messaging.outbox import add_booking_event
from boxoffice_payments import (
    IN_PROGRESS_STATUSES,
    PaymentProvider,
    PaymentProviderError,
    PaymentStatus,
    WebhookEvent,
    WebhookSignatureError,
)
from prometheus_client import Counter
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import func

from boxoffice_bookings import repository, seat_repository
from boxoffice_bookings.errors import (
    BookingNotFound,
    BookingStateConflict,
    HoldExpired,
    InvalidWebhookSignature,
    PaymentProviderUnavailable,
)
from boxoffice_bookings.providers import provider_named
from boxoffice_bookings.refunds import ProviderFor, request_refund

log = logging.getLogger(__name__)

LATE_PAYMENTS = Counter(
    "boxoffice_late_payments_total", "Payments captured after their hold lapsed", ["result"]
)
CAPTURE_MISMATCHES = Counter(
    "boxoffice_capture_mismatches_total",
    "Captures whose amount or currency differs from the payment's (refunded, never confirmed)",
    ["provider"],
)


class Settled(enum.Enum):
    CONFIRMED = "confirmed"
    REFUNDED = "refunded"  # a refund is owed (and asked for after the commit)
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Capture:
    """Money the provider says it captured: its payment id, amount and currency."""

    provider_payment_id: str
    amount_minor: int
    currency: str


@dataclass
class Settlement:
    settled: Settled = Settled.UNCHANGED
    seat_changes: dict[str, str] = field(default_factory=dict)  # label -> seat-cache state
    refund_ids: list[uuid.UUID] = field(default_factory=list)  # to execute after the commit


@dataclass
class PaymentResult:
    payment: Payment
    booking: Booking
    settlement: Settlement
    checkout: Mapping[str, str]
    reused: bool = False  # an order already in progress, answered again

    @property
    def settled(self) -> Settled:
        return self.settlement.settled


def get_booking(session: Session, booking_id: uuid.UUID, *, lock: bool = False) -> Booking:
    """The booking with its seats (`lock`: its row locked), or BookingNotFound."""
    booking = repository.find_booking(session, booking_id, lock=lock)
    if booking is None:
        raise BookingNotFound(f"No booking {booking_id}.")
    return booking


def payments_of(session: Session, booking_id: uuid.UUID) -> list[Payment]:
    """Every payment attempt of a booking, oldest first."""
    if not repository.booking_exists(session, booking_id):
        raise BookingNotFound(f"No booking {booking_id}.")
    return repository.payments_of(session, booking_id)


def hold_lapsed(booking: Booking) -> bool:
    return booking.status is BookingStatus.EXPIRED or booking.expires_at <= datetime.now(UTC)


def start_payment(
    session: Session,
    booking_id: uuid.UUID,
    provider_name: str,
    outcome: str | None,
    provider_for: ProviderFor = provider_named,
    may_pay: Callable[[uuid.UUID], bool] | None = None,
) -> PaymentResult:
    """Start a payment; a provider that settles at once (`test`) confirms or refunds now.

    `may_pay(owner_id)`: whether the caller may pay for a booking of that client; a booking it
    may not is answered as a missing one (BookingNotFound), checked on the locked read rather
    than by a query of its own.
    """
    booking = get_booking(session, booking_id, lock=True)
    if may_pay is not None and not may_pay(booking.owner_id):
        raise BookingNotFound(f"No booking {booking_id}.")
    provider = provider_for(provider_name)
    if booking.status in (BookingStatus.CONFIRMED, BookingStatus.CANCELLED):
        raise BookingStateConflict(
            f"Booking {booking.reference} is {booking.status.value}.", status_now=booking.status
        )
    existing = repository.payment_in_progress(session, booking.id, provider.name)
    if existing is not None:
        # A client retrying without an Idempotency-Key gets the order it already has.
        return PaymentResult(
            existing, booking, Settlement(), _checkout(provider, existing), reused=True
        )
    if provider.name != "test" and hold_lapsed(booking):
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
        status=order.status.value,
        amount_minor=booking.total_minor,
        currency=booking.currency,
        provider_reference=order.reference,
        provider_payment_id=order.payment_reference,
    )
    if order.status is PaymentStatus.FAILED:
        payment.failure_reason = "declined by the test provider"
    # Inserted with its outcome: one INSERT, before the ledger rows that refer to it.
    repository.add_payment(session, payment)
    result = PaymentResult(payment, booking, Settlement(), dict(order.checkout))
    if order.status is PaymentStatus.FAILED:
        repository.record_movement(
            session, payment, LedgerKind.FAILED, order.reference, 0, order.currency
        )
    elif order.status is PaymentStatus.SUCCEEDED and order.payment_reference is not None:
        capture = Capture(order.payment_reference, order.amount_minor, order.currency)
        result.settlement = settle_capture(session, booking, payment, capture)
    return result


def _checkout(provider: PaymentProvider, payment: Payment) -> dict[str, str]:
    key_id = getattr(provider, "key_id", None)
    if key_id is None or payment.provider_reference is None:
        return {}
    return {"key_id": str(key_id), "order_id": payment.provider_reference}


def settle_capture(
    session: Session, booking: Booking, payment: Payment, capture: Capture
) -> Settlement:
    """A capture on the (locked) booking's order: a ticket or a refund, once per payment id."""
    if not repository.record_movement(
        session,
        payment,
        LedgerKind.CAPTURED,
        capture.provider_payment_id,
        capture.amount_minor,
        capture.currency,
        provider_payment_id=capture.provider_payment_id,
    ):
        return Settlement()  # this capture was settled before
    # Set only what changes: a payment inserted captured (the `test` provider's) leaves the
    # session clean, and its commit flushes nothing (a flush of no change cost about a tenth
    # of the payment's CPU in its thread job, issue 18).
    if payment.status not in (PaymentStatus.REFUNDED.value, PaymentStatus.SUCCEEDED.value):
        payment.status = PaymentStatus.SUCCEEDED.value
    if not payment.provider_payment_id:
        payment.provider_payment_id = capture.provider_payment_id
    if (capture.amount_minor, capture.currency) != (payment.amount_minor, payment.currency):
        CAPTURE_MISMATCHES.labels(payment.provider).inc()
        log.error(
            "captured amount differs from the payment's: refunded, not confirmed",
            extra={
                "payment_id": str(payment.id),
                "captured": f"{capture.amount_minor} {capture.currency}",
                "expected": f"{payment.amount_minor} {payment.currency}",
            },
        )
        return _refund(session, booking, payment, capture, "amount_mismatch")
    if booking.status is BookingStatus.CONFIRMED:
        return _refund(session, booking, payment, capture, "already_paid")
    if booking.status is BookingStatus.CANCELLED:
        return _refund(session, booking, payment, capture, "booking_cancelled")
    late = hold_lapsed(booking)
    labels = [s.label for s in booking.seats]
    if not seat_repository.sell_seats(session, booking):
        settlement = _refund(session, booking, payment, capture, "seats_taken")
        if booking.status is BookingStatus.PENDING:
            # The hold lapsed and the reaper has not got to it: expire it here, the refund
            # event tells the customer (no second "hold expired" message).
            released = seat_repository.release_seats(session, [booking.id])
            settlement.seat_changes = dict.fromkeys(released, "a")
            booking.status = BookingStatus.EXPIRED
            booking.expired_at = func.now()
        LATE_PAYMENTS.labels("refunded").inc()
        return settlement
    if late:
        LATE_PAYMENTS.labels("reacquired").inc()
    confirmed_at = repository.confirm_booking(session, booking.id)
    set_committed_value(booking, "status", BookingStatus.CONFIRMED)
    set_committed_value(booking, "confirmed_at", confirmed_at)
    add_booking_event(
        session,
        "booking.confirmed",
        booking,
        events_pb2.BookingConfirmed,
        seats=labels,
        total_minor=booking.total_minor,
        currency=booking.currency,
        payment_id=str(payment.id),
        late_payment=late,
    )
    return Settlement(Settled.CONFIRMED, dict.fromkeys(labels, "s"))


def _refund(
    session: Session, booking: Booking, payment: Payment, capture: Capture, reason: str
) -> Settlement:
    refund_id = request_refund(
        session,
        booking,
        payment,
        capture.provider_payment_id,
        capture.amount_minor,
        capture.currency,
        reason,
    )
    return Settlement(Settled.REFUNDED, {}, [refund_id] if refund_id else [])


@dataclass
class WebhookResult:
    status: str  # processed, duplicate, ignored
    settlement: Settlement = field(default_factory=Settlement)
    showtime_id: uuid.UUID | None = None


def handle_webhook(
    session: Session,
    provider_name: str,
    body: bytes,
    headers: Mapping[str, str],
    provider_for: ProviderFor = provider_named,
) -> WebhookResult:
    """Verify, deduplicate by the signed event id, and apply a provider callback."""
    provider = provider_for(provider_name)
    try:
        event = provider.parse_webhook(body, headers)
    except WebhookSignatureError as exc:
        raise InvalidWebhookSignature(str(exc)) from exc
    if not repository.record_webhook_event(
        session, provider.name, event.event_id, event.event_type
    ):
        return WebhookResult("duplicate")
    if event.status is None or event.order_reference is None:
        return WebhookResult("ignored")
    found = repository.payment_by_order(session, provider.name, event.order_reference)
    if found is None:
        log.warning("webhook %s for unknown order %s", event.event_id, event.order_reference)
        return WebhookResult("ignored")
    booking = get_booking(session, found.booking_id, lock=True)
    payment = repository.lock_payment(session, found.id)
    if event.status is PaymentStatus.FAILED:
        _record_failure(session, payment, event)
        return WebhookResult("processed")
    if event.status is PaymentStatus.REFUNDED or event.payment_reference is None:
        return WebhookResult("ignored")  # refunds are recorded from the provider's answers
    if repository.movement_recorded(
        session, provider.name, LedgerKind.CAPTURED, event.payment_reference
    ):
        return WebhookResult("ignored")  # settled already (e.g. order.paid after captured)
    if event.status is PaymentStatus.AUTHORIZED:
        capture = _capture_authorised(session, provider, payment, event, event.payment_reference)
    else:
        capture = _stated_capture(provider, event, event.payment_reference)
    settlement = settle_capture(session, booking, payment, capture)
    return WebhookResult("processed", settlement, booking.showtime_id)


def _record_failure(session: Session, payment: Payment, event: WebhookEvent) -> None:
    """A failed attempt is history, never a verdict: a later capture on the order still counts."""
    repository.record_movement(
        session,
        payment,
        LedgerKind.FAILED,
        event.payment_reference or f"{event.order_reference}:{event.event_id}",
        0,
        payment.currency,
        provider_payment_id=event.payment_reference,
    )
    if payment.status in IN_PROGRESS_STATUSES:
        payment.status = PaymentStatus.FAILED.value
        payment.failure_reason = f"provider event {event.event_type}"


def _capture_authorised(
    session: Session,
    provider: PaymentProvider,
    payment: Payment,
    event: WebhookEvent,
    payment_reference: str,
) -> Capture:
    """Capture an authorised payment (the amount we expect) and say what was captured."""
    repository.record_movement(
        session,
        payment,
        LedgerKind.AUTHORISED,
        payment_reference,
        event.amount_minor if event.amount_minor is not None else payment.amount_minor,
        event.currency or payment.currency,
        provider_payment_id=payment_reference,
    )
    if payment.status in IN_PROGRESS_STATUSES:
        payment.status = PaymentStatus.AUTHORIZED.value
    try:
        state = provider.capture(payment_reference, payment.amount_minor, payment.currency)
    except PaymentProviderError as exc:
        raise PaymentProviderUnavailable(f"The capture failed: {exc}") from exc
    amount = state.amount_minor if state.amount_minor is not None else event.amount_minor
    currency = state.currency or event.currency
    if amount is None or currency is None:
        raise PaymentProviderUnavailable("The provider did not say what it captured.")
    return Capture(payment_reference, amount, currency)


def _stated_capture(
    provider: PaymentProvider, event: WebhookEvent, payment_reference: str
) -> Capture:
    """The capture a webhook announces; amount and currency asked of the provider if unsaid."""
    amount, currency = event.amount_minor, event.currency
    if (amount is None or currency is None) and event.order_reference is not None:
        try:
            state = provider.fetch_status(event.order_reference)
        except PaymentProviderError as exc:
            raise PaymentProviderUnavailable(f"The capture could not be checked: {exc}") from exc
        if state.payment_reference in (None, payment_reference):
            amount = amount if amount is not None else state.amount_minor
            currency = currency or state.currency
    if amount is None or currency is None:
        raise PaymentProviderUnavailable("The provider did not say what it captured.")
    return Capture(payment_reference, amount, currency)
