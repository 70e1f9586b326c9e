"""Chaos clients' payment faults, as providers have them.

With the `test` provider: a failed attempt then a capture on the same order, by signed webhooks
sent twice and out of order. With a Razorpay-compatible provider (a real HTTP server the test
runs): a paid booking cancelled, whose refund the provider fails the first time it is asked,
either refusing it or making it and losing the answer; reconciliation must settle it.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import httpx
from boxoffice_payments.local_provider import LocalPaymentProvider

from tests.support.razorpay_server import ANSWER_LOST, REFUSED, FakeRazorpay

if TYPE_CHECKING:
    from tests.support.chaos import Clients


def pay_with_faults(clients: Clients, booking_id: str, booking: dict[str, object]) -> None:
    """A payment the provider settles by webhook: a failed attempt, then a capture on the
    same order; the events are sent twice and, half the time, in reverse order."""
    started = clients.call(
        "POST",
        f"/v1/bookings/{booking_id}/payments",
        {"provider": "test", "outcome": "pending"},
    )
    if started is None or started.status_code not in (200, 201):
        clients.count(f"pay_pending_{started.status_code if started is not None else 'gave_up'}")
        return
    order = started.json()["provider_reference"]
    token = uuid.uuid4().hex[:12]
    failed, captured = (
        json.dumps(
            {
                "id": f"evt_{token}_{event}",
                "event": event,
                "order_id": order,
                "payment_id": f"test_pay_{token}_{event}",
                "amount": booking["total_minor"],
                "currency": booking["currency"],
            }
        ).encode()
        for event in ("payment.failed", "payment.succeeded")
    )
    events = [failed, captured, captured, failed]
    if clients.rng.random() < 0.5:
        events.reverse()
    for body in events:
        answer = webhook(clients, body)
        clients.count(f"webhook_{answer.status_code if answer is not None else 'gave_up'}")


def pay_by_razorpay_then_cancel(clients: Clients, booking_id: str, razorpay: FakeRazorpay) -> None:
    """Pay through Razorpay (captured, webhook sent twice), then cancel: the refund's first
    call fails for two bookings in three (refused, or made with its answer lost)."""
    started = clients.call("POST", f"/v1/bookings/{booking_id}/payments", {"provider": "razorpay"})
    if started is None or started.status_code not in (200, 201):
        clients.count(f"rzp_pay_{started.status_code if started is not None else 'gave_up'}")
        return
    payment = razorpay.pay(started.json()["provider_reference"], captured=True)
    fault = clients.rng.choice([None, REFUSED, ANSWER_LOST])
    if fault is not None:
        razorpay.fail_first_refund(payment["id"], fault)
    body, headers = FakeRazorpay.webhook("payment.captured", payment)
    for _ in range(2):
        answer = webhook(clients, body, "razorpay", headers)
        clients.count(f"rzp_webhook_{answer.status_code if answer is not None else 'gave_up'}")
    # Whatever the webhook settled (a ticket, or a refund if the hold had lapsed and the seat
    # was taken), cancelling a confirmed booking refunds it too.
    cancelled = clients.call("POST", f"/v1/bookings/{booking_id}/cancel", {})
    clients.count(f"rzp_cancel_{cancelled.status_code if cancelled is not None else 'gave_up'}")


def webhook(
    clients: Clients,
    body: bytes,
    provider: str = "test",
    headers: dict[str, str] | None = None,
) -> httpx.Response | None:
    if headers is None:
        headers = {"X-Test-Signature": LocalPaymentProvider().sign(body)}
    return clients.send(
        "POST",
        f"/v1/payments/webhooks/{provider}",
        content=body,
        headers={**headers, "Authorization": ""},
    )
