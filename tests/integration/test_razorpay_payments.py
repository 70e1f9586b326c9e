"""Razorpay end to end through the API, against a local server that speaks Razorpay's API."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.integration.conftest import hold, make_catalog
from tests.integration.test_bookings_api import events, lapse, seat_status
from tests.support.razorpay_server import FakeRazorpay


def start(client: TestClient, booking_id: str) -> Any:
    response = client.post(f"/v1/bookings/{booking_id}/payments", json={"provider": "razorpay"})
    assert response.status_code == 201, response.text
    return response.json()


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
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["B1"]).json()
    order_id = start(client, booking["id"])["provider_reference"]
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
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["B2"]).json()
    order_id = start(client, booking["id"])["provider_reference"]
    failed = razorpay.pay(order_id, failed=True)
    body, headers = FakeRazorpay.webhook("payment.failed", failed)
    assert deliver(client, body, headers).json() == {"status": "processed"}
    [payment] = client.get(f"/v1/bookings/{booking['id']}/payments").json()
    assert payment["status"] == "failed"
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "PENDING"


def test_a_capture_after_the_seats_were_resold_is_refunded_at_the_provider(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["C4"]).json()
    order_id = start(client, booking["id"])["provider_reference"]
    lapse(booking["id"])
    assert hold(client, showtime["id"], ["C4"], "quick@example.com").status_code == 201

    paid = razorpay.pay(order_id, captured=True)
    body, headers = FakeRazorpay.webhook("payment.captured", paid)
    assert deliver(client, body, headers).json() == {"status": "processed"}
    assert razorpay.state.payments[paid["id"]]["status"] == "refunded"
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "EXPIRED"
    assert events(booking["id"])[-1]["type"] == "booking.refunded"


def test_a_provider_outage_on_refund_is_a_503_and_the_webhook_is_retried(
    client: TestClient, razorpay: FakeRazorpay
) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["C5"]).json()
    order_id = start(client, booking["id"])["provider_reference"]
    lapse(booking["id"])
    assert hold(client, showtime["id"], ["C5"], "quick@example.com").status_code == 201
    paid = razorpay.pay(order_id, captured=True)
    body, headers = FakeRazorpay.webhook("payment.captured", paid)

    razorpay.fail_next_posts(1)
    response = deliver(client, body, headers)
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert razorpay.state.payments[paid["id"]]["status"] == "captured"
    # The same event again (Razorpay retries non-2xx) is not a duplicate: it was not applied.
    assert deliver(client, body, headers).json() == {"status": "processed"}
    assert razorpay.state.payments[paid["id"]]["status"] == "refunded"


def test_starting_a_razorpay_payment_on_a_lapsed_hold_is_refused(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["C6"]).json()
    lapse(booking["id"])
    response = client.post(f"/v1/bookings/{booking['id']}/payments", json={"provider": "razorpay"})
    assert response.status_code == 409
    assert json.loads(response.text)["type"].endswith("/hold-expired")
