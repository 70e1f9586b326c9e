"""Due holds with a payment in progress: ask the payment provider before expiring them.

The seats of such a hold are already free (a lapsed hold never blocks its seats); what this
decides is whether the booking is announced as EXPIRED now. If the customer is mid-payment or
has paid, the booking stays PENDING so the payment's confirmation finds it; if the provider
says the payment failed, it expires at once; past a grace period it expires whatever the
provider says (or if it cannot be reached), and a capture that arrives later goes through
the booking service's late-payment path (re-acquire the seats or refund).

The provider is asked outside any transaction, so a slow provider holds no row lock.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, BookingStatus, Payment
from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload
from sqlalchemy.sql import func

from boxoffice_reaper.expiry import PAYMENT_IN_PROGRESS, expire_bookings

log = logging.getLogger(__name__)

PAYMENT_CHECKS = Counter(
    "boxoffice_reaper_payment_checks_total",
    "Due holds with a payment in progress, by what the provider said and what was done",
    ["provider_status", "action"],
)

# Provider name and order reference -> the provider's PaymentStatus value now.
FetchPaymentStatus = Callable[[str, str], str]

SETTLED_WITHOUT_MONEY = ("failed", "refunded")


@dataclass(frozen=True)
class PayingHold:
    booking_id: uuid.UUID
    payment_id: uuid.UUID
    provider: str
    reference: str | None
    expires_at: datetime


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
        rows = session.execute(
            select(
                Booking.id,
                Payment.id,
                Payment.provider,
                Payment.provider_reference,
                Booking.expires_at,
            )
            .join(Payment, Payment.booking_id == Booking.id)
            .where(
                Booking.status == BookingStatus.PENDING,
                Booking.expires_at <= func.now(),
                Payment.status.in_(PAYMENT_IN_PROGRESS),
            )
            .order_by(Booking.expires_at)
            .limit(limit)
        ).all()
    return [PayingHold(*row) for row in rows]


def decide(hold: PayingHold, provider_status: str | None, grace: timedelta, now: datetime) -> str:
    """`expire`, `expire_failed` (and mark the payment) or `keep` for one paying hold."""
    if provider_status in SETTLED_WITHOUT_MONEY:
        return "expire_failed"
    if now >= hold.expires_at + grace:
        return "expire"
    return "keep"


def expire_paying_hold(hold: PayingHold, provider_status: str | None, action: str) -> bool:
    """Expire the hold if it is still PENDING with this payment in progress; True if it did."""
    with session_scope() as session:
        booking = session.scalars(
            select(Booking)
            .where(Booking.id == hold.booking_id, Booking.status == BookingStatus.PENDING)
            .with_for_update(skip_locked=True)
            .options(selectinload(Booking.seats))
        ).one_or_none()
        if booking is None:  # settled, cancelled or being worked on by someone else
            return False
        if action == "expire_failed":
            # Only a payment still in progress is overwritten: a webhook may have won the race.
            session.execute(
                update(Payment)
                .where(Payment.id == hold.payment_id, Payment.status.in_(PAYMENT_IN_PROGRESS))
                .values(status=provider_status)
            )
        return expire_bookings(session, [booking]) == 1


def check_paying_holds(
    fetch_status: FetchPaymentStatus,
    throttle: RecheckThrottle,
    grace: timedelta,
    limit: int = 100,
) -> int:
    """Ask the provider about due holds with a payment in progress; return how many expired."""
    expired = 0
    for hold in paying_due_holds(limit):
        now = datetime.now(UTC)
        past_grace = now >= hold.expires_at + grace
        if not past_grace and not throttle.should_ask(hold.payment_id):
            continue
        provider_status: str | None = None
        if hold.reference is not None:
            try:
                provider_status = fetch_status(hold.provider, hold.reference)
            except Exception as exc:  # an unreachable provider: ask again on a later sweep
                log.warning(
                    "could not ask the payment provider",
                    extra={"provider": hold.provider, "booking_id": str(hold.booking_id)},
                    exc_info=exc,
                )
        action = decide(hold, provider_status, grace, now)
        PAYMENT_CHECKS.labels(provider_status or "unknown", action).inc()
        if action != "keep" and expire_paying_hold(hold, provider_status, action):
            expired += 1
    return expired
