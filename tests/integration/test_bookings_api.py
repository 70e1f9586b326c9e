"""Holds, lists, payments with the test provider, late payments, cancellations and refunds."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from boxoffice_db.engine import session_scope
from boxoffice_db.models import Booking, OutboxEvent, Payment, ShowtimeSeat
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.sql import func

from tests.integration.conftest import hold, make_catalog


def lapse(booking_id: str) -> None:
    """Move a hold's expiry into the past, as if its TTL had run out."""
    with session_scope() as session:
        past = func.now() - timedelta(seconds=1)
        session.execute(
            update(Booking).where(Booking.id == uuid.UUID(booking_id)).values(expires_at=past)
        )
        session.execute(
            update(ShowtimeSeat)
            .where(ShowtimeSeat.booking_id == uuid.UUID(booking_id))
            .values(hold_expires_at=past)
        )
    # The seat cache keeps the old expiry time: drop it, as a Redis flush would.
    from boxoffice_booking.deps import get_redis

    redis = get_redis()
    for key in redis.scan_iter("boxoffice:seats:*"):
        redis.delete(key)


def events(booking_id: str) -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.aggregate_id == uuid.UUID(booking_id))
            .order_by(OutboxEvent.id)
        ).all()
        return [{"type": r.event_type, **r.payload} for r in rows]


def seat_status(client: TestClient, showtime_id: str, label: str) -> str:
    seats = client.get(f"/v1/showtimes/{showtime_id}/seats").json()["seats"]
    return str(next(s["status"] for s in seats if s["label"] == label))


def pay(client: TestClient, booking_id: str, outcome: str = "succeeded") -> Any:
    return client.post(
        f"/v1/bookings/{booking_id}/payments", json={"provider": "test", "outcome": outcome}
    )


def test_hold_lists_seats_prices_and_total(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    created = hold(client, showtime["id"], ["C1", "A2"])
    assert created.status_code == 201, created.text
    booking = created.json()
    assert [(s["label"], s["price_minor"]) for s in booking["seats"]] == [
        ("A2", 20000),
        ("C1", 35000),
    ]
    assert booking["total_minor"] == 55000
    assert created.headers["location"] == f"/v1/bookings/{booking['id']}"


def test_more_seats_than_the_limit_is_refused(client: TestClient) -> None:
    showtime = make_catalog(client, seats=12)["showtime"]
    response = hold(client, showtime["id"], [f"B{n}" for n in range(1, 12)])
    assert response.status_code == 422
    assert "At most 10 seats" in response.json()["detail"]


def test_bookings_list_filters_by_email_and_status_newest_first(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    email = f"list-{uuid.uuid4().hex[:6]}@example.com"
    first = hold(client, showtime["id"], ["A1"], email).json()
    second = hold(client, showtime["id"], ["A2"], email).json()
    assert pay(client, second["id"]).status_code == 201
    hold(client, showtime["id"], ["A3"], "someone-else@example.com")

    everything = client.get("/v1/bookings", params={"customer_email": email.upper()}).json()
    assert [b["id"] for b in everything["items"]] == [second["id"], first["id"]]
    confirmed = client.get(
        "/v1/bookings", params={"customer_email": email, "status": "CONFIRMED"}
    ).json()
    assert [b["id"] for b in confirmed["items"]] == [second["id"]]
    page = client.get("/v1/bookings", params={"customer_email": email, "limit": 1}).json()
    assert [b["id"] for b in page["items"]] == [second["id"]]
    rest = client.get(
        "/v1/bookings", params={"customer_email": email, "limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [b["id"] for b in rest["items"]] == [first["id"]]
    assert rest["next_cursor"] is None


def test_cancelling_a_hold_releases_its_seats_at_once(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["B4"]).json()
    assert seat_status(client, showtime["id"], "B4") == "held"
    cancelled = client.post(f"/v1/bookings/{booking['id']}/cancel")
    assert cancelled.json()["status"] == "CANCELLED"
    assert seat_status(client, showtime["id"], "B4") == "available"
    assert hold(client, showtime["id"], ["B4"], "next@example.com").status_code == 201


def test_cancelling_a_confirmed_booking_refunds_it(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["C2", "C3"]).json()
    assert pay(client, booking["id"]).json()["booking"]["status"] == "CONFIRMED"
    cancelled = client.post(f"/v1/bookings/{booking['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    [payment] = client.get(f"/v1/bookings/{booking['id']}/payments").json()
    assert payment["status"] == "refunded"
    assert payment["refunded_minor"] == 70000
    cancel_event = events(booking["id"])[-1]
    assert cancel_event["type"] == "booking.cancelled"
    assert cancel_event["booking_cancelled"]["refunded_minor"] == "70000"
    assert seat_status(client, showtime["id"], "C2") == "available"


def test_a_confirmed_booking_cannot_be_cancelled_after_the_cut_off(client: TestClient) -> None:
    # The cut-off is 60 minutes in these tests; this showtime starts in 30.
    showtime = make_catalog(client, starts_in=timedelta(minutes=30))["showtime"]
    booking = hold(client, showtime["id"], ["A5"]).json()
    pay(client, booking["id"])
    response = client.post(f"/v1/bookings/{booking['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["type"].endswith("/cancellation-closed")
    # A hold, unpaid, can still be let go.
    other = hold(client, showtime["id"], ["A6"]).json()
    assert client.post(f"/v1/bookings/{other['id']}/cancel").status_code == 200


def test_late_payment_reacquires_free_seats_and_confirms(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["B1", "B2"]).json()
    lapse(booking["id"])
    paid = pay(client, booking["id"])
    assert paid.status_code == 201, paid.text
    assert paid.json()["booking"]["status"] == "CONFIRMED"
    confirmed = events(booking["id"])[-1]
    assert confirmed["type"] == "booking.confirmed"
    assert confirmed["booking_confirmed"]["late_payment"] is True
    assert seat_status(client, showtime["id"], "B1") == "sold"


def test_late_payment_for_seats_sold_since_is_refunded_and_told(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    old = hold(client, showtime["id"], ["B5", "B6"]).json()
    lapse(old["id"])
    newer = hold(client, showtime["id"], ["B6"], "faster@example.com")
    assert newer.status_code == 201, newer.text

    response = pay(client, old["id"])
    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/hold-expired")
    with session_scope() as session:
        payment = session.get(Payment, uuid.UUID(problem["payment_id"]))
        assert payment is not None
        assert (payment.status, payment.refunded_minor) == ("refunded", 40000)
    assert client.get(f"/v1/bookings/{old['id']}").json()["status"] == "EXPIRED"
    refunded = events(old["id"])[-1]
    assert refunded["type"] == "booking.refunded"
    assert refunded["booking_refunded"]["reason"] == "seats_taken"
    # All or nothing: B5 was free, but it was not sold to the refunded booking.
    assert seat_status(client, showtime["id"], "B5") == "available"
    assert seat_status(client, showtime["id"], "B6") == "held"


def test_a_failed_payment_leaves_the_hold_and_a_pending_one_is_in_progress(
    client: TestClient,
) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["A7"]).json()
    failed = pay(client, booking["id"], "failed").json()
    assert (failed["status"], failed["booking"]["status"]) == ("failed", "PENDING")
    pending = pay(client, booking["id"], "pending")
    assert pending.status_code == 201
    again = pay(client, booking["id"], "pending")
    assert again.status_code == 200  # the payment in progress, not a second one
    assert again.json()["id"] == pending.json()["id"]
    with session_scope() as session:
        payment = session.get(Payment, uuid.UUID(pending.json()["id"]))
        assert payment is not None
        # What the reaper looks for: a payment in progress with the provider's reference.
        assert payment.status == "pending"
        assert payment.provider_reference is not None
        assert payment.provider_reference.startswith("test_order_")


def test_paying_a_confirmed_booking_again_is_a_409(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["A8"]).json()
    pay(client, booking["id"])
    response = pay(client, booking["id"])
    assert response.status_code == 409
    assert response.json()["type"].endswith("/booking-state-conflict")


def test_an_unknown_provider_is_a_422(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["B8"]).json()
    response = client.post(f"/v1/bookings/{booking['id']}/payments", json={"provider": "paypal"})
    assert response.status_code == 422


def test_a_paid_seat_reads_sold_from_the_seat_map_the_cache_serves(client: TestClient) -> None:
    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["C5", "C6"]).json()
    # Once read, the seat map is served from the seat cache: the payment must mark the sale.
    assert seat_status(client, showtime["id"], "C5") == "held"
    assert pay(client, booking["id"]).status_code == 201
    assert seat_status(client, showtime["id"], "C5") == "sold"
    assert seat_status(client, showtime["id"], "C6") == "sold"


def test_a_pending_test_payment_settles_by_signed_webhook(client: TestClient) -> None:
    import json

    from boxoffice_payments.local_provider import LocalPaymentProvider

    showtime = make_catalog(client)["showtime"]
    booking = hold(client, showtime["id"], ["A4"]).json()
    # The seat map is served from the seat cache once read: the webhook must mark the sale.
    assert seat_status(client, showtime["id"], "A4") == "held"
    pending = pay(client, booking["id"], "pending").json()
    body = json.dumps(
        {
            "id": str(uuid.uuid4()),
            "event": "payment.succeeded",
            "order_id": pending["provider_reference"],
            "payment_id": "test_pay_1",
        }
    ).encode()
    signature = LocalPaymentProvider().sign(body)
    response = client.post(
        "/v1/payments/webhooks/test", content=body, headers={"X-Test-Signature": signature}
    )
    assert response.json() == {"status": "processed"}
    assert client.get(f"/v1/bookings/{booking['id']}").json()["status"] == "CONFIRMED"
    assert seat_status(client, showtime["id"], "A4") == "sold"


def test_an_internationalised_address_is_accepted_or_refused_with_a_clear_422(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never accepted and then lost: with SMTPUTF8 the notifier delivers `josé@exämple.com`;
    without it, the API says so at once."""
    from boxoffice_settings import get_settings

    showtime = make_catalog(client)["showtime"]["id"]
    accepted = hold(client, showtime, ["A2"], "josé@exämple.com")
    assert accepted.status_code == 201, accepted.text
    assert hold(client, showtime, ["A3"], "zoe@exämple.com").status_code == 201

    monkeypatch.setattr(get_settings(), "smtp_smtputf8", False)
    refused = hold(client, showtime, ["A4"], "josé@exämple.com")
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "non-ASCII characters before the @" in refused.text
    # A non-ASCII domain needs no SMTPUTF8 (it goes out in IDNA form): still accepted.
    assert hold(client, showtime, ["A4"], "zoe@exämple.com").status_code == 201
