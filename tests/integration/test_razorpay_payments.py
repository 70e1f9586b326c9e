"""Razorpay end to end through the API, against a local server that speaks Razorpay's API."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from boxoffice_bookings import repository
from boxoffice_bookings.refunds import execute_refunds, reconcile_refunds
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Refund
from boxoffice_payments import get_provider
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from tests.integration.conftest import hold, make_catalog
from tests.integration.test_bookings_api import events, lapse, seat_status
from tests.support.razorpay_server import FakeRazorpay


def refund_ids(booking_id: str) -> list[uuid.UUID]:
    with session_scope() as session:
        return list(
            session.scalars(select(Refund.id).where(Refund.booking_id == uuid.UUID(booking_id)))
        )


def refund_states(booking_id: str) -> list[str]:
    with session_scope() as session:
        return list(
            session.scalars(select(Refund.status).where(Refund.booking_id == uuid.UUID(booking_id)))
        )


def start(client: TestClient, booking_id: str) -> Any:
    response = client.post(f"/v1/bookings/{booking_id}/payments", json={"provider": "razorpay"})
    assert response.status_code == 201, response.text
    return response.json()


def hold_and_order(client: TestClient, seat: str) -> tuple[Any, Any, str]:
    """A new showtime, a hold on `seat` and its Razorpay order: (showtime, booking, order id)."""
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], [seat]).json()
    return showtime, booking, start(client, booking["id"])["provider_reference"]


def capture_after_resale(
    client: TestClient, razorpay: FakeRazorpay, seat: str
) -> tuple[Any, dict[str, Any], bytes, dict[str, str]]:
    """A hold on `seat` lapses mid-payment and the seat is held again by another customer;
    the payment is then captured. The booking, the payment, and its signed webhook."""
    showtime, booking, order_id = hold_and_order(client, seat)
    lapse(booking["id"])
    assert hold(client, showtime["id"], [seat], "quick@example.com").status_code == 201
    paid = razorpay.pay(order_id, captured=True)
    body, headers = FakeRazorpay.webhook("payment.captured", paid)
    return booking, paid, body, headers


def deliver(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    # Webhooks carry no API key: the signature is their authentication.
    return client.post(
        "/v1/payments/webhooks/razorpay", content=body, headers={**headers, "Authorization": ""}
    )


def test_authorized_payment_is_captured_and_confirms_the_booking(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["A1", "A2"]).json()
    payment = start(client, booking["id"])
    assert payment["status"] == "pending"
    order_id = payment["provider_reference"]
    assert payment["checkout"] == {"key_id": "rzp_test_boxoffice", "order_id": order_id}
    assert razorpay.state.orders[order_id]["amount"] == 40000

    paid = razorpay.pay(order_id)
    body, headers = FakeRazorpay.webhook("payment.authorized", paid)
    response = deliver(client, body, headers)
    assert response.json() == {"status": "processed"}
    assert razorpay.state.payments[paid["id"]]["status"] == "captured"
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "CONFIRMED"
    assert seat_status(client, showtime["id"], "A1") == "sold"

    # Razorpay redelivers: the same event id is acknowledged and changes nothing.
    assert deliver(client, body, headers).json() == {"status": "duplicate"}
    # The captured event that follows the capture finds the payment settled.
    captured = {**paid, "status": "captured"}
    body2, headers2 = FakeRazorpay.webhook("payment.captured", captured)
    assert deliver(client, body2, headers2).json() == {"status": "ignored"}
    confirmations = [e for e in events(booking["id"]) if e["type"] == "booking.confirmed"]
    assert len(confirmations) == 1


def test_a_webhook_with_a_bad_signature_is_refused(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    _showtime, booking, order_id = hold_and_order(client, "B1")
    paid = razorpay.pay(order_id, captured=True)
    body, headers = FakeRazorpay.webhook("payment.captured", paid)
    tampered = body.replace(b'"captured"', b'"captured" ', 1)
    response = deliver(client, tampered, headers)
    assert response.status_code == 401
    assert response.json()["type"].endswith("/invalid-webhook-signature")
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "PENDING"


def test_unknown_events_are_acknowledged_and_ignored(client: TestClient) -> None:
    body, headers = FakeRazorpay.webhook("payment.dispute.created", {"id": "pay_x"})
    response = deliver(client, body, headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}


def test_a_failed_payment_event_marks_the_payment_failed(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    _showtime, booking, order_id = hold_and_order(client, "B2")
    failed = razorpay.pay(order_id, failed=True)
    body, headers = FakeRazorpay.webhook("payment.failed", failed)
    assert deliver(client, body, headers).json() == {"status": "processed"}
    [payment] = client.get(f"/v1/bookings/{booking['id']}/payments").json()
    assert payment["status"] == "failed"
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "PENDING"


def test_a_capture_after_the_seats_were_resold_is_refunded_at_the_provider(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    booking, paid, body, headers = capture_after_resale(client, razorpay, "C4")
    assert deliver(client, body, headers).json() == {"status": "processed"}
    assert razorpay.state.payments[paid["id"]]["status"] == "refunded"
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "EXPIRED"
    assert events(booking["id"])[-1]["type"] == "booking.refunded"


def test_a_provider_outage_on_refund_leaves_it_pending_until_reconciliation_settles_it(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    """Issue 14, finding 2: the refund is owed in the transaction and made outside it."""
    booking, paid, body, headers = capture_after_resale(client, razorpay, "C5")

    razorpay.fail_next_posts(1)
    # The event is applied (the refund owed, the booking expired) whatever the provider does.
    assert deliver(client, body, headers).json() == {"status": "processed"}
    assert razorpay.state.payments[paid["id"]]["status"] == "captured"
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "EXPIRED"
    assert refund_states(booking["id"]) == ["pending"]
    # Razorpay's retry of the same event is a duplicate: nothing is refunded twice.
    assert deliver(client, body, headers).json() == {"status": "duplicate"}

    assert reconcile_refunds(older_than_seconds=0) == (1, 0)
    assert razorpay.state.payments[paid["id"]]["status"] == "refunded"
    assert refund_states(booking["id"]) == ["refunded"]
    assert reconcile_refunds(older_than_seconds=0) == (0, 0)
    assert len([r for r in razorpay.state.refunds.values() if r["payment_id"] == paid["id"]]) == 1


def test_a_crash_after_the_provider_refunded_ends_in_one_refund_and_no_ticket(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    """The provider refunded, the process died before recording it: reconciliation asks
    again with the same idempotency key, learns of that refund, and records it once."""
    booking, paid, body, headers = capture_after_resale(client, razorpay, "C7")
    razorpay.fail_next_posts(1)
    assert deliver(client, body, headers).json() == {"status": "processed"}
    [refund_id] = refund_ids(booking["id"])
    # What the dead process had done: the provider call, with the refund's id as the key.
    provider = get_provider("razorpay")
    provider.refund(paid["id"], paid["amount"], idempotency_key=str(refund_id))
    assert refund_states(booking["id"]) == ["pending"]

    assert reconcile_refunds(older_than_seconds=0) == (1, 0)
    assert len([r for r in razorpay.state.refunds.values() if r["payment_id"] == paid["id"]]) == 1
    with session_scope() as session:
        money = repository.booking_money(session, uuid.UUID(booking["id"]))
    assert (money.captured, money.refunded) == (paid["amount"], paid["amount"])
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "EXPIRED"


def test_starting_a_razorpay_payment_on_a_lapsed_hold_is_refused(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["C6"]).json()
    lapse(booking["id"])
    response = client.post(f"/v1/bookings/{booking['id']}/payments", json={"provider": "razorpay"})
    assert response.status_code == 409
    assert json.loads(response.text)["type"].endswith("/hold-expired")


def test_a_capture_after_a_failed_attempt_on_the_same_order_confirms_the_booking(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    """Issue 14, finding 1: the customer retries on the same order after `payment.failed`."""
    _showtime, booking, order_id = hold_and_order(client, "B5")
    failed = razorpay.pay(order_id, failed=True)
    body, headers = FakeRazorpay.webhook("payment.failed", failed)
    assert deliver(client, body, headers).json() == {"status": "processed"}

    paid = razorpay.pay(order_id, captured=True)
    body, headers = FakeRazorpay.webhook("payment.captured", paid)
    assert deliver(client, body, headers).json() == {"status": "processed"}
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "CONFIRMED"
    [payment] = client.get(f"/v1/bookings/{booking['id']}/payments").json()
    assert payment["status"] == "succeeded"
    # The failure arriving again, late, changes nothing.
    body, headers = FakeRazorpay.webhook("payment.failed", {**failed, "status": "failed"})
    deliver(client, body, headers)
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "CONFIRMED"


def test_a_capture_announced_before_its_authorisation_is_settled_once(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    """Reordered webhooks: `payment.captured` first, the late `payment.authorized` ignored."""
    _showtime, booking, order_id = hold_and_order(client, "B6")
    paid = razorpay.pay(order_id, captured=True)
    captured_body, captured_headers = FakeRazorpay.webhook("payment.captured", paid)
    authorised_body, authorised_headers = FakeRazorpay.webhook(
        "payment.authorized", {**paid, "status": "authorized"}
    )
    assert deliver(client, captured_body, captured_headers).json() == {"status": "processed"}
    assert deliver(client, authorised_body, authorised_headers).json() == {"status": "ignored"}
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "CONFIRMED"
    assert [e["type"] for e in events(booking["id"])].count("booking.confirmed") == 1


def test_a_capture_of_another_amount_is_refunded_and_counted_never_confirmed(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    """Issue 14, finding 3: amount and currency of every capture are checked."""
    from prometheus_client import REGISTRY

    def mismatches() -> float:
        value = REGISTRY.get_sample_value(
            "boxoffice_capture_mismatches_total", {"provider": "razorpay"}
        )
        return value or 0.0

    before = mismatches()
    _showtime, booking, order_id = hold_and_order(client, "B7")
    paid = razorpay.pay(order_id, captured=True)
    short = {**paid, "amount": paid["amount"] - 100}
    body, headers = FakeRazorpay.webhook("payment.captured", short)
    assert deliver(client, body, headers).json() == {"status": "processed"}
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "PENDING"
    assert razorpay.state.payments[paid["id"]]["status"] == "refunded"
    assert mismatches() == before + 1

    foreign = razorpay.pay(order_id, captured=True)
    body, headers = FakeRazorpay.webhook("payment.captured", {**foreign, "currency": "USD"})
    assert deliver(client, body, headers).json() == {"status": "processed"}
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "PENDING"
    assert mismatches() == before + 2


def test_a_replayed_signed_webhook_with_a_new_event_id_header_is_a_duplicate(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    """Issue 14, finding 3: dedupe by what the signature covers, not the unsigned header."""
    _showtime, _booking, order_id = hold_and_order(client, "B8")
    failed = razorpay.pay(order_id, failed=True)
    body, headers = FakeRazorpay.webhook("payment.failed", failed)
    assert deliver(client, body, headers).json() == {"status": "processed"}
    replayed = {**headers, "X-Razorpay-Event-Id": "evt_replayed_by_someone"}
    assert deliver(client, body, replayed).json() == {"status": "duplicate"}


def test_a_refund_settled_by_the_cancel_path_and_reconciliation_at_once_is_made_once(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    """Razorpay refunds are "look up by receipt, then create": two callers that both look
    before either creates (the cancel route's `execute_refunds` and the scheduler's
    `reconcile-refunds`, or two reconcile runs on two replicas) both create. One refund is
    made, and neither caller takes the other's for a failure."""
    booking, paid, body, headers = capture_after_resale(client, razorpay, "C8")
    razorpay.fail_next_posts(1)  # the refund stays owed, as after a provider outage
    assert deliver(client, body, headers).json() == {"status": "processed"}
    [refund_id] = refund_ids(booking["id"])
    calls_before = len(razorpay.state.requests)

    # Both callers' lookups are answered only when both have asked: each sees no refund yet.
    razorpay.gate_refund_lookups(paid["id"], callers=2)
    start_together = threading.Barrier(2)
    results: dict[str, object] = {}

    def cancel_path() -> None:
        start_together.wait()
        results["cancel"] = execute_refunds([refund_id])

    def reconciliation() -> None:
        start_together.wait()
        results["reconcile"] = reconcile_refunds(older_than_seconds=0)

    callers = [threading.Thread(target=cancel_path), threading.Thread(target=reconciliation)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=30)
    assert not any(caller.is_alive() for caller in callers)

    # The race happened: both looked, then both asked for a refund.
    calls = [method for method, _ in razorpay.state.requests[calls_before:]]
    assert calls == ["GET", "GET", "POST", "POST"], calls
    made = [r for r in razorpay.state.refunds.values() if r["payment_id"] == paid["id"]]
    assert len(made) == 1, made
    assert results == {"cancel": [], "reconcile": (1, 0)}, results
    with session_scope() as session:
        [row] = session.scalars(select(Refund).where(Refund.id == refund_id)).all()
        assert (row.status, row.provider_refund_id, row.last_error) == (
            "refunded",
            made[0]["id"],
            None,
        )
        money = repository.booking_money(session, uuid.UUID(booking["id"]))
    assert (money.captured, money.refunded) == (paid["amount"], paid["amount"])
    assert reconcile_refunds(older_than_seconds=0) == (0, 0)


def test_a_cancel_whose_commit_fails_after_the_provider_refunded_ends_consistent(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    """Issue 14, finding 2's own path: a CONFIRMED booking is cancelled, the provider refunds,
    and the commit that records the refund fails (a deferred constraint trigger this test
    installs raises at COMMIT). The booking is cancelled with its seats free and its refund
    owed; reconciliation records the provider's one refund. Never a ticket and a refund."""
    showtime, booking, order_id = hold_and_order(client, "A3")
    paid = razorpay.pay(order_id, captured=True)
    body, headers = FakeRazorpay.webhook("payment.captured", paid)
    assert deliver(client, body, headers).json() == {"status": "processed"}
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "CONFIRMED"

    fault = f"""
        CREATE FUNCTION fail_refund_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected: the commit fails after the provider refunded'; END $$;
        CREATE CONSTRAINT TRIGGER fail_refund_commit AFTER UPDATE ON refunds
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            WHEN (NEW.status = 'refunded' AND NEW.booking_id = '{booking["id"]}'::uuid)
            EXECUTE FUNCTION fail_refund_commit();
    """
    with session_scope() as session:
        session.execute(text(fault))
    try:
        response = client.post(f"/v1/bookings/{booking['id']}/cancel")
    finally:
        with session_scope() as session:
            session.execute(text("DROP TRIGGER fail_refund_commit ON refunds"))
            session.execute(text("DROP FUNCTION fail_refund_commit()"))
    # The cancellation committed before the provider was called: that is the answer, although
    # recording its refund failed.
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CANCELLED"
    made = [r for r in razorpay.state.refunds.values() if r["payment_id"] == paid["id"]]
    assert len(made) == 1
    assert refund_states(booking["id"]) == ["pending"]
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "CANCELLED"
    assert seat_status(client, showtime["id"], "A3") == "available"

    assert reconcile_refunds(older_than_seconds=0) == (1, 0)
    assert reconcile_refunds(older_than_seconds=0) == (0, 0)
    made = [r for r in razorpay.state.refunds.values() if r["payment_id"] == paid["id"]]
    assert len(made) == 1
    assert refund_states(booking["id"]) == ["refunded"]
    with session_scope() as session:
        money = repository.booking_money(session, uuid.UUID(booking["id"]))
        assert repository.captured_without_ticket_or_refund(session) == 0
    assert (money.captured, money.refund_requested, money.refunded) == (paid["amount"],) * 3
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "CANCELLED"
    # A retried cancel changes nothing and refunds nothing more.
    assert client.post(f"/v1/bookings/{booking['id']}/cancel").status_code == 200
    assert len([r for r in razorpay.state.refunds.values() if r["payment_id"] == paid["id"]]) == 1
