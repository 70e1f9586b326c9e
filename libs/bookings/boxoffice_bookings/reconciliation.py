"""Due holds with a payment in progress: ask the payment provider before expiring them.

The seats of such a hold are already free (a lapsed hold never blocks its seats); what this
decides is what happens to the booking now. If the provider says the money was captured, the
capture is settled here exactly as its webhook would settle it (a ticket, or a refund), so a
lost or late webhook never leaves a paid booking to expire. If the customer is mid-payment the
booking stays PENDING until a grace period has passed; if the provider says the payment failed,
it expires at once; past the grace period it expires whatever the provider says (or if it
cannot be reached), and a capture that arrives later is settled by the late-payment path
(re-acquire the seats or refund).

The provider is asked outside any transaction, so a slow provider holds no row lock.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from boxoffice_db.engine import session_scope
from boxoffice_payments import PaymentState, PaymentStatus
from prometheus_client import Counter

from boxoffice_bookings import repository
from boxoffice_bookings.expiry import expire_bookings
from boxoffice_bookings.payments import Capture, settle_capture
from boxoffice_bookings.providers import provider_named
from boxoffice_bookings.refunds import ProviderFor, execute_refunds
from boxoffice_bookings.repository import PayingHold

log = logging.getLogger(__name__)

PAYMENT_CHECKS = Counter(
    "boxoffice_reaper_payment_checks_total",
    "Due holds with a payment in progress, by what the provider said and what was done",
    ["provider_status", "action"],
)

# Provider name and order reference -> what the provider says about the order now.
FetchPaymentStatus = Callable[[str, str], PaymentState]

SETTLED_WITHOUT_MONEY = (PaymentStatus.FAILED, PaymentStatus.REFUNDED)


class RecheckThrottle:
    """Ask about one payment at most once per `seconds` in this process."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._asked: dict[uuid.UUID, float] = {}
        self._lock = threading.Lock()

    def should_ask(self, payment_id: uuid.UUID) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._asked.get(payment_id, -self.seconds) < self.seconds:
                return False
            self._asked[payment_id] = now
            if len(self._asked) > 10_000:  # forget the oldest; only a throttle
                for key in sorted(self._asked, key=self._asked.__getitem__)[:5_000]:
                    del self._asked[key]
            return True


def paying_due_holds(limit: int) -> list[PayingHold]:
    """Due PENDING holds that have a payment in progress, oldest first."""
    with session_scope() as session:
        return repository.paying_due_holds(session, limit)


def decide(hold: PayingHold, state: PaymentState | None, grace: timedelta, now: datetime) -> str:
    """`settle`, `expire`, `expire_failed` (and mark the payment) or `keep` for a paying hold."""
    if state is not None and _capture_of(state) is not None:
        return "settle"
    if state is not None and state.status in SETTLED_WITHOUT_MONEY:
        return "expire_failed"
    if now >= hold.expires_at + grace:
        return "expire"
    return "keep"


def _capture_of(state: PaymentState) -> Capture | None:
    """The capture the provider reports, if it says enough to settle it."""
    if (
        state.status is not PaymentStatus.SUCCEEDED
        or state.payment_reference is None
        or state.amount_minor is None
        or state.currency is None
    ):
        return None
    return Capture(state.payment_reference, state.amount_minor, state.currency)


def settle_paying_hold(hold: PayingHold, capture: Capture) -> list[uuid.UUID]:
    """Settle the capture the provider reported; the refunds to execute after the commit."""
    with session_scope() as session:
        booking = repository.lock_pending_booking(session, hold.booking_id)
        if booking is None:  # settled, cancelled or being worked on by someone else
            return []
        payment = repository.lock_payment(session, hold.payment_id)
        return settle_capture(session, booking, payment, capture).refund_ids


def expire_paying_hold(hold: PayingHold, provider_status: str | None, action: str) -> bool:
    """Expire the hold if it is still PENDING with this payment in progress; True if it did."""
    with session_scope() as session:
        booking = repository.lock_pending_booking(session, hold.booking_id)
        if booking is None:  # settled, cancelled or being worked on by someone else
            return False
        if action == "expire_failed" and provider_status is not None:
            repository.mark_payment_if_in_progress(session, hold.payment_id, provider_status)
        return expire_bookings(session, [booking]) == 1


def check_paying_holds(
    fetch_status: FetchPaymentStatus,
    throttle: RecheckThrottle,
    grace: timedelta,
    limit: int = 100,
    provider_for: ProviderFor = provider_named,
) -> int:
    """Ask the provider about due holds with a payment in progress; how many were resolved."""
    resolved = 0
    for hold in paying_due_holds(limit):
        now = datetime.now(UTC)
        past_grace = now >= hold.expires_at + grace
        if not past_grace and not throttle.should_ask(hold.payment_id):
            continue
        state: PaymentState | None = None
        if hold.reference is not None:
            try:
                state = fetch_status(hold.provider, hold.reference)
            except Exception as exc:  # an unreachable provider: ask again on a later sweep
                log.warning(
                    "could not ask the payment provider",
                    extra={"provider": hold.provider, "booking_id": str(hold.booking_id)},
                    exc_info=exc,
                )
        action = decide(hold, state, grace, now)
        status = state.status.value if state is not None else None
        PAYMENT_CHECKS.labels(status or "unknown", action).inc()
        capture = _capture_of(state) if state is not None else None
        if action == "settle" and capture is not None:
            refund_ids = settle_paying_hold(hold, capture)
            execute_refunds(refund_ids, provider_for)
            resolved += 1
        elif action != "keep" and expire_paying_hold(hold, status, action):
            resolved += 1
    return resolved
