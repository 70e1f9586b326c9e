"""The booking lifecycle as a state machine, on real PostgreSQL, against a provider that fails.

Hypothesis drives the real lifecycle module (`boxoffice_bookings`) through holds, payments,
webhooks delivered late, twice or out of order, cancellations, reaper sweeps and refund
reconciliation, while a simulated provider (`tests.support.simulated_provider`) fails: a payment
that fails and then succeeds on the same order, a capture for the wrong amount, captures and
refunds that time out, and a process that dies between the provider's refund and its commit.
After every step:

- no seat is held or sold by two bookings (a sold seat's booking is CONFIRMED, a held seat's is
  PENDING, and a CONFIRMED booking owns all its seats, sold);
- every capture the ledger records is the ticket of a CONFIRMED booking or owed back:
  captured - refunds owed = price if CONFIRMED else 0;
- after a reaper sweep, no hold is PENDING past its expiry plus the grace period.

At the end the provider retries every webhook and reconciliation runs with the faults gone:
captured - refunded = price if CONFIRMED else 0, no refund is pending, and every payment the
provider captured is either a confirmed booking's ticket or refunded.

`make test` runs a bounded number of examples; `make fuzz` (HYPOTHESIS_PROFILE=fuzz) thousands.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from boxoffice_bookings import cancellation, payments, reconciliation, refunds, repository
from boxoffice_bookings.errors import LifecycleError, PaymentProviderUnavailable
from boxoffice_bookings.expiry import expire_batch
from boxoffice_bookings.providers import provider_named
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, BookingStatus, LedgerEntry, LedgerKind, ShowtimeSeat
from boxoffice_db.models import Refund as RefundRow
from boxoffice_payments import PaymentProvider, PaymentProviderError, PaymentState
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from sqlalchemy import func, select, update

from tests.support import catalog
from tests.support.simulated_provider import SimulatedCrash, SimulatedProvider, sign

pytestmark = pytest.mark.integration

LABELS = ["A1", "A2", "A3", "A4"]
GRACE = timedelta(minutes=15)
FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
FAULTS = ["capture_timeouts", "refund_timeouts", "refund_answers_lost", "crashes_after_refund"]


@contextlib.contextmanager
def process_may_die() -> Iterator[None]:
    """The calling process dies (the provider acted, nothing after it was committed)."""
    try:
        yield
    except SimulatedCrash:
        event("a process died between the provider's refund and its commit")


class LifecycleMachine(RuleBasedStateMachine):
    bookings = Bundle("bookings")
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.sim = SimulatedProvider()
        self.showtime_id = catalog.make_showtime(rows=1, seats_per_row=len(LABELS), blocked=())
        self.swept = False

    # --- how production is wired, with the simulated provider in place ---------------------

    def provider_for(self, name: str) -> PaymentProvider:
        return self.sim if name == "sim" else provider_named(name)

    def fetch_status(self, provider: str, reference: str) -> PaymentState:
        if provider != "sim":
            raise PaymentProviderError("another test's provider")
        return self.sim.fetch_status(reference)

    def execute(self, refund_ids: list[uuid.UUID]) -> None:
        """What the API does after its commit; a crash leaves the rest to reconciliation."""
        with process_may_die():
            refunds.execute_refunds(refund_ids, self.provider_for)

    def deliver(self, body: bytes) -> None:
        """The webhook route: a non-2xx answer makes the provider send the event again."""
        headers = {"X-Sim-Signature": sign(body)}
        try:
            with session_scope() as session:
                result = payments.handle_webhook(session, "sim", body, headers, self.provider_for)
        except PaymentProviderUnavailable:
            self.sim.webhooks.append(body)
            return
        self.execute(result.settlement.refund_ids)

    # --- rules -------------------------------------------------------------------------------

    @rule(
        target=bookings,
        seats=st.lists(st.sampled_from(LABELS), min_size=1, max_size=2, unique=True),
    )
    def hold(self, seats: list[str]) -> object:
        try:
            booking = catalog.hold(self.showtime_id, seats, "zoë@exämple.com", "+919800000001")
        except LifecycleError:
            return multiple()
        return booking.id

    @initialize(counts=st.lists(st.integers(0, 2), min_size=len(FAULTS), max_size=len(FAULTS)))
    def the_provider_is_unreliable(self, counts: list[int]) -> None:
        for fault, count in zip(FAULTS, counts, strict=True):
            setattr(self.sim.faults, fault, count)

    @initialize(target=bookings)
    def two_customers_hold(self) -> object:
        first = catalog.hold(self.showtime_id, ["A1"], "zoë@exämple.com")
        second = catalog.hold(self.showtime_id, ["A2", "A3"], "ñandú@exämple.com")
        return multiple(first.id, second.id)

    @rule(
        target=orders,
        booking=bookings,
        outcome=st.sampled_from(["captured", "captured", "authorized", "failed"]),
        amount_delta=st.sampled_from([0, 0, 0, -100]),
        webhook_at_once=st.booleans(),
    )
    def customer_pays(
        self, booking: uuid.UUID, outcome: str, amount_delta: int, webhook_at_once: bool
    ) -> object:
        """Start a payment (or reuse the order in progress) and pay it in Checkout; its
        webhook arrives at once, or is left to arrive later (late, reordered, twice)."""
        try:
            with session_scope() as session:
                result = payments.start_payment(session, booking, "sim", None, self.provider_for)
                reference = result.payment.provider_reference
        except LifecycleError:
            return multiple()
        assert reference is not None
        self.sim.pay(reference, outcome, amount_delta)
        if webhook_at_once:
            self.deliver(self.sim.webhooks.pop())
        return reference

    @rule(order=orders, webhook_at_once=st.booleans())
    def payment_fails_then_succeeds_on_the_same_order(
        self, order: str, webhook_at_once: bool
    ) -> None:
        """`payment.failed`, delivered; then the customer's retry in Checkout is captured."""
        self.sim.pay(order, "failed")
        self.deliver(self.sim.webhooks.pop())
        self.sim.pay(order, "captured")
        if webhook_at_once:
            self.deliver(self.sim.webhooks.pop())

    @rule(order=orders, outcome=st.sampled_from(["captured", "authorized", "failed"]))
    def customer_pays_again_on_the_same_order(self, order: str, outcome: str) -> None:
        """Razorpay Checkout retries on the same order, e.g. after a failed attempt."""
        self.sim.pay(order, outcome)

    @precondition(lambda self: bool(self.sim.webhooks))
    @rule(data=st.data(), again_later=st.booleans())
    def provider_sends_a_webhook(self, data: st.DataObject, again_later: bool) -> None:
        """Any queued event, in any order; kept to be sent again (a duplicate) or not."""
        index = data.draw(st.integers(0, len(self.sim.webhooks) - 1), label="webhook")
        body = self.sim.webhooks[index] if again_later else self.sim.webhooks.pop(index)
        self.deliver(body)

    @precondition(lambda self: bool(self.sim.webhooks))
    @rule()
    def provider_sends_the_oldest_webhook(self) -> None:
        self.deliver(self.sim.webhooks.pop(0))

    @rule(booking=bookings)
    def cancel(self, booking: uuid.UUID) -> None:
        try:
            with session_scope() as session:
                cancelled = cancellation.cancel_booking(session, booking, cutoff_minutes=0)
        except LifecycleError:
            return
        self.execute(cancelled.refund_ids)

    @rule(booking=bookings, past_grace=st.booleans())
    def time_passes(self, booking: uuid.UUID, past_grace: bool) -> None:
        """The hold's TTL runs out (and, maybe, the reaper's grace period too)."""
        overdue = GRACE + timedelta(minutes=1) if past_grace else timedelta(seconds=1)
        with session_scope() as session:
            past = func.now() - overdue
            session.execute(
                update(Booking)
                .where(Booking.id == booking, Booking.status == BookingStatus.PENDING)
                .values(expires_at=past)
            )
            session.execute(
                update(ShowtimeSeat)
                .where(ShowtimeSeat.booking_id == booking, ShowtimeSeat.state == "held")
                .values(hold_expires_at=past)
            )
        self.swept = False

    @rule()
    def reaper_sweeps(self) -> None:
        with session_scope() as session:
            while expire_batch(session, 100) == 100:
                pass
        with process_may_die():
            reconciliation.check_paying_holds(
                self.fetch_status,
                reconciliation.RecheckThrottle(0),
                GRACE,
                provider_for=self.provider_for,
            )
        self.swept = True

    @rule()
    def refunds_are_reconciled(self) -> None:
        with process_may_die():
            refunds.reconcile_refunds(older_than_seconds=0, provider_for=self.provider_for)

    @rule(fault=st.sampled_from(FAULTS))
    def provider_fails_next(self, fault: str) -> None:
        setattr(self.sim.faults, fault, getattr(self.sim.faults, fault) + 1)

    # --- invariants --------------------------------------------------------------------------

    def my_bookings(self) -> list[Booking]:
        with session_scope() as session:
            found = session.scalars(
                select(Booking).where(Booking.showtime_id == self.showtime_id)
            ).all()
            for booking in found:
                _ = booking.seats
            session.expunge_all()
            return list(found)

    @invariant()
    def no_seat_is_held_or_sold_by_two_bookings(self) -> None:
        bookings = {b.id: b for b in self.my_bookings()}
        with session_scope() as session:
            seats = session.execute(
                select(ShowtimeSeat.label, ShowtimeSeat.state, ShowtimeSeat.booking_id).where(
                    ShowtimeSeat.showtime_id == self.showtime_id
                )
            ).all()
        owner = {s.label: s for s in seats}
        for seat in seats:
            if seat.state == "sold":
                assert bookings[seat.booking_id].status is BookingStatus.CONFIRMED, seat
            if seat.state == "held":
                assert bookings[seat.booking_id].status is BookingStatus.PENDING, seat
        for booking in bookings.values():
            if booking.status is BookingStatus.CONFIRMED:
                for s in booking.seats:
                    assert owner[s.label].booking_id == booking.id, (booking.id, s.label)
                    assert owner[s.label].state == "sold"

    @invariant()
    def every_recorded_capture_is_a_ticket_or_owed_back(self) -> None:
        for booking in self.my_bookings():
            with session_scope() as session:
                money = repository.booking_money(session, booking.id)
            paid_for = booking.total_minor if booking.status is BookingStatus.CONFIRMED else 0
            assert money.captured - money.refund_requested == paid_for, (booking.status, money)
            assert money.refunded <= money.refund_requested

    @invariant()
    def no_hold_is_pending_past_expiry_and_grace_after_a_sweep(self) -> None:
        if not self.swept:
            return
        with session_scope() as session:
            stuck = session.scalar(
                select(func.count())
                .select_from(Booking)
                .where(
                    Booking.showtime_id == self.showtime_id,
                    Booking.status == BookingStatus.PENDING,
                    Booking.expires_at + GRACE < func.now(),
                )
            )
        assert stuck == 0

    def teardown(self) -> None:
        """The provider retries every webhook; reconciliation runs with the faults gone."""
        self.sim.faults.clear()
        delivered = 0
        while self.sim.webhooks and delivered < 1000:
            self.deliver(self.sim.webhooks.pop(0))
            delivered += 1
        for booking in self.my_bookings():  # every hold runs out, grace period included
            self.time_passes(booking.id, past_grace=True)
        self.reaper_sweeps()
        refunds.reconcile_refunds(older_than_seconds=0, provider_for=self.provider_for)
        mine = [b.id for b in self.my_bookings()]
        with session_scope() as session:
            still_pending = session.scalar(
                select(func.count())
                .select_from(RefundRow)
                .where(RefundRow.booking_id.in_(mine), RefundRow.status == "pending")
            )
            assert still_pending == 0, "refunds_pending_at_end"
            for booking in self.my_bookings():
                money = repository.booking_money(session, booking.id)
                paid_for = booking.total_minor if booking.status is BookingStatus.CONFIRMED else 0
                assert money.captured - money.refunded == paid_for, (booking.status, money)
            tickets = set(
                session.scalars(
                    select(LedgerEntry.provider_ref)
                    .join(Booking, Booking.id == LedgerEntry.booking_id)
                    .where(
                        LedgerEntry.provider == "sim",
                        LedgerEntry.kind == LedgerKind.CAPTURED.value,
                        Booking.id.in_(mine),
                        Booking.status == BookingStatus.CONFIRMED,
                    )
                )
            )
        for booking in self.my_bookings():
            event(f"a booking ended {booking.status.value}")
        if self.sim.refunds:
            event("the provider refunded")
        if any(a.status == "captured" for a in self.sim.attempts.values()):
            event("the provider captured money")
        money_without_ticket_or_refund = [
            a.id for a in self.sim.captured_not_refunded() if a.id not in tickets
        ]
        assert money_without_ticket_or_refund == []


@pytest.mark.usefixtures("stack")
class TestTheBookingLifecycleKeepsSeatsAndMoneyConsistent(LifecycleMachine.TestCase):  # type: ignore[misc,valid-type]
    settings = settings(
        max_examples=int(os.environ.get("LIFECYCLE_EXAMPLES", 2000 if FUZZ else 15)),
        stateful_step_count=40 if FUZZ else 20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        derandomize=not FUZZ,
    )
