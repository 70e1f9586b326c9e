"""Refunds: owed in the transaction that decides them, asked of the provider after it commits.

`request_refund` writes a `pending` refund (one per captured provider payment), its ledger row
and, unless the caller announces it otherwise, its `booking.refunded` event, all in the
caller's transaction. `execute_refund` then calls the provider with no transaction open,
using the refund's id as the idempotency key, and records the result in a short transaction of
its own. A crash between the provider's answer and that commit leaves the refund `pending`;
`reconcile_refunds` (a periodic reaper task) asks again with the same key, the provider
answers with the refund it already made, and it is recorded then. So a refund is never made
twice, never forgotten, and never held inside a database transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from boxoffice.booking.v1 import events_pb2
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, LedgerKind, Payment
from boxoffice_messaging.outbox import add_booking_event
from boxoffice_payments import PaymentProvider, PaymentProviderError
from boxoffice_payments import Refund as ProviderRefund
from prometheus_client import Counter
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from boxoffice_bookings import repository
from boxoffice_bookings.providers import provider_named

log = logging.getLogger(__name__)

REFUNDS = Counter("boxoffice_refunds_total", "Refunds owed, by reason", ["reason"])
REFUND_ATTEMPTS = Counter(
    "boxoffice_refund_attempts_total", "Refunds asked of the provider, by result", ["result"]
)

ProviderFor = Callable[[str], PaymentProvider]


def request_refund(
    session: Session,
    booking: Booking,
    payment: Payment,
    provider_payment_id: str,
    amount_minor: int,
    currency: str,
    reason: str,
    *,
    announce: bool = True,
) -> uuid.UUID | None:
    """Owe the money of one captured provider payment back; None if it is owed already."""
    refund_id = repository.create_refund(
        session, payment, provider_payment_id, amount_minor, currency, reason
    )
    if refund_id is None:
        return None
    repository.record_movement(
        session,
        payment,
        LedgerKind.REFUND_REQUESTED,
        str(refund_id),
        amount_minor,
        currency,
        provider_payment_id=provider_payment_id,
        reason=reason,
    )
    REFUNDS.labels(reason).inc()
    if announce:
        add_booking_event(
            session,
            "booking.refunded",
            booking,
            events_pb2.BookingRefunded,
            seats=[s.label for s in booking.seats],
            payment_id=str(payment.id),
            refunded_minor=amount_minor,
            currency=currency,
            reason=reason,
        )
    return refund_id


@dataclass(frozen=True)
class OwedRefund:
    """What the provider call needs, read before it (no transaction is open during it)."""

    id: uuid.UUID
    payment_id: uuid.UUID
    provider: str
    provider_payment_id: str
    amount_minor: int
    currency: str
    reason: str


def owed(refund_id: uuid.UUID) -> OwedRefund | None:
    """The refund if it is still pending."""
    with session_scope() as session:
        row = repository.find_refund(session, refund_id)
        if row is None or row.status != "pending":
            return None
        return OwedRefund(
            row.id,
            row.payment_id,
            row.provider,
            row.provider_payment_id,
            row.amount_minor,
            row.currency,
            row.reason,
        )


def record_refunded(session: Session, refund: OwedRefund, made: ProviderRefund) -> bool:
    """Record what the provider refunded; False if it was recorded already."""
    if not repository.settle_refund(session, refund.id, made.reference):
        return False
    payment = session.get(Payment, refund.payment_id)
    assert payment is not None  # the refund's foreign key
    repository.record_movement(
        session,
        payment,
        LedgerKind.REFUNDED,
        made.reference,
        made.amount_minor,
        refund.currency,
        provider_payment_id=refund.provider_payment_id,
        reason=refund.reason,
    )
    repository.sync_payment_refunds(session, refund.payment_id, made.reference)
    return True


def execute_refund(refund_id: uuid.UUID, provider_for: ProviderFor = provider_named) -> bool:
    """Ask the provider for an owed refund and record it; True once it is refunded.

    Call with no transaction open. A provider error leaves the refund pending (attempt and
    error noted) for `reconcile_refunds`, and so does a failure to record what the provider
    refunded.
    """
    refund = owed(refund_id)
    if refund is None:
        return True
    try:
        made = provider_for(refund.provider).refund(
            refund.provider_payment_id, refund.amount_minor, idempotency_key=str(refund.id)
        )
    except PaymentProviderError as exc:
        REFUND_ATTEMPTS.labels("failed").inc()
        log.warning(
            "refund failed; it stays pending and is retried",
            extra={"refund_id": str(refund.id), "provider": refund.provider},
            exc_info=exc,
        )
        with session_scope() as session:
            repository.note_refund_attempt(session, refund.id, str(exc)[:500])
        return False
    try:
        with session_scope() as session:
            record_refunded(session, refund, made)
    except SQLAlchemyError as exc:
        # The decision that owed it is committed and the provider has refunded: the caller's
        # answer stands, and reconciliation records this refund (same key, same refund).
        log.error(
            "refund made but not recorded; it stays pending until reconciliation records it",
            extra={"refund_id": str(refund.id), "provider_refund_id": made.reference},
            exc_info=exc,
        )
        return False
    REFUND_ATTEMPTS.labels("refunded").inc()
    return True


def execute_refunds(
    refund_ids: list[uuid.UUID], provider_for: ProviderFor = provider_named
) -> list[uuid.UUID]:
    """`execute_refund` each; the ids still pending (left to reconciliation)."""
    return [rid for rid in refund_ids if not execute_refund(rid, provider_for)]


def reconcile_refunds(
    older_than_seconds: float = 30.0,
    limit: int = 100,
    provider_for: ProviderFor = provider_named,
) -> tuple[int, int]:
    """Ask again for every refund pending for a while; (settled now, still pending)."""
    with session_scope() as session:
        due = repository.pending_refunds(session, older_than_seconds, limit)
    left = execute_refunds(due, provider_for)
    return len(due) - len(left), len(left)
