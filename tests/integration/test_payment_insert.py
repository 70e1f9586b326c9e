"""`repository.add_payment`: a new payment is one INSERT, and the object is the session's own.

Real PostgreSQL. What the INSERT without a flush must keep of the ORM's: the row holds every
value the object was given (non-ASCII reasons, a NULL for what was not), the object is the one
the session's identity map answers with, reading any attribute loads nothing, and a change made
afterwards in the same transaction is written by the commit's flush, once.
"""

from __future__ import annotations

import uuid

import pytest
from boxoffice_bookings import repository
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Payment
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from tests.support.catalog import hold, make_showtime
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def _statements(session_bind: object) -> list[str]:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]).split()[0])

    event.listen(session_bind, "before_cursor_execute", record)
    return seen


def test_a_payment_added_without_a_flush_is_written_whole_and_tracked(stack: Stack) -> None:
    showtime = make_showtime()
    booking = hold(showtime, ["B1", "B2"], "zoë@exämple.com").id
    payment_id = uuid.uuid4()
    with session_scope() as session:
        statements = _statements(session.connection())
        payment = Payment(
            id=payment_id,
            booking_id=booking,
            provider="test",
            status="failed",
            amount_minor=40000,
            currency="INR",
            provider_reference=f"order_{payment_id.hex}",
            failure_reason="declined — carte refusée, 拒否",
        )
        repository.add_payment(session, payment)
        assert statements == ["INSERT"]
        assert session.get(Payment, payment_id) is payment
        assert payment.refunded_minor == 0
        assert payment.provider_payment_id is None
        assert payment.created_at is not None
        assert payment.updated_at is not None
        assert statements == ["INSERT"], "reading the new payment loaded nothing"
        # A later change in the same transaction is an UPDATE at the commit, as for a loaded row.
        payment.status = "succeeded"
        payment.provider_payment_id = "pay_ü1"
    with session_scope() as session:
        row = session.execute(select(Payment).where(Payment.id == payment_id)).scalar_one()
        assert (row.status, row.provider_payment_id, row.refunded_minor) == (
            "succeeded",
            "pay_ü1",
            0,
        )
        assert row.failure_reason == "declined — carte refusée, 拒否"
        assert (row.amount_minor, row.currency, row.booking_id) == (40000, "INR", booking)
        assert row.updated_at >= row.created_at


def test_a_payment_added_twice_fails_like_the_flush_did(stack: Stack) -> None:
    showtime = make_showtime()
    booking = hold(showtime, ["C1"]).id
    reference = f"order_{uuid.uuid4().hex}"

    def attempt() -> None:
        with session_scope() as session:
            repository.add_payment(
                session,
                Payment(
                    id=uuid.uuid4(),
                    booking_id=booking,
                    provider="test",
                    status="pending",
                    amount_minor=20000,
                    currency="INR",
                    provider_reference=reference,
                ),
            )

    attempt()
    with pytest.raises(IntegrityError):
        attempt()  # the provider's order reference is unique per provider
