"""The local `test` provider: no outside service, the outcome is chosen by the caller.

Its references carry the amount, currency and outcome, so any process (the API or the
reaper) can answer `fetch_status` for an order without shared state; a refund's id is derived
from its idempotency key, so asking twice returns the same refund.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping

from boxoffice_payments.interface import (
    Order,
    PaymentProvider,
    PaymentProviderError,
    PaymentState,
    PaymentStatus,
    Refund,
    WebhookEvent,
    WebhookSignatureError,
)

OUTCOMES = {
    "succeeded": PaymentStatus.SUCCEEDED,
    "failed": PaymentStatus.FAILED,
    "pending": PaymentStatus.PENDING,
}
SIGNATURE_HEADER = "x-test-signature"


class LocalPaymentProvider(PaymentProvider):
    """Settles at once with `outcome` (`succeeded`, `failed`), or leaves it `pending`."""

    name = "test"

    def __init__(self, webhook_secret: str = "test-webhook-secret") -> None:  # noqa: S107
        self._secret = webhook_secret.encode()

    def create_order(
        self, *, amount_minor: int, currency: str, receipt: str, outcome: str | None = None
    ) -> Order:
        outcome = outcome or "succeeded"
        if outcome not in OUTCOMES:
            raise PaymentProviderError(f"unknown test outcome {outcome!r}")
        token = uuid.uuid4().hex[:16]
        status = OUTCOMES[outcome]
        return Order(
            reference=f"test_order_{token}_{amount_minor}_{currency}_{outcome}",
            amount_minor=amount_minor,
            currency=currency,
            status=status,
            payment_reference=f"test_pay_{token}" if status is PaymentStatus.SUCCEEDED else None,
        )

    def capture(self, payment_reference: str, amount_minor: int, currency: str) -> PaymentState:
        return PaymentState(
            reference=payment_reference,
            status=PaymentStatus.SUCCEEDED,
            payment_reference=payment_reference,
            amount_minor=amount_minor,
        )

    def refund(self, payment_reference: str, amount_minor: int, idempotency_key: str) -> Refund:
        key = hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        return Refund(
            reference=f"test_rfnd_{key}",
            payment_reference=payment_reference,
            amount_minor=amount_minor,
            status="processed",
        )

    def fetch_status(self, order_reference: str) -> PaymentState:
        parts = order_reference.removeprefix("test_order_").split("_")
        if (
            not order_reference.startswith("test_order_")
            or len(parts) != 4
            or parts[3] not in OUTCOMES
            or not parts[1].isdigit()
        ):
            raise PaymentProviderError(f"not a test order: {order_reference!r}")
        token, amount, currency, outcome = parts
        status = OUTCOMES[outcome]
        paid = f"test_pay_{token}" if status is PaymentStatus.SUCCEEDED else None
        return PaymentState(
            reference=order_reference,
            status=status,
            payment_reference=paid,
            amount_minor=int(amount),
            currency=currency,
        )

    def sign(self, body: bytes) -> str:
        """The signature a test webhook must carry (tests and local tools use it)."""
        return hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """`{"id", "event", "order_id", "payment_id", "amount"?, "currency"?}`, signed like
        Razorpay's webhooks."""
        signature = {k.lower(): v for k, v in headers.items()}.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(self.sign(body), signature):
            raise WebhookSignatureError("test webhook signature does not match")
        try:
            data = json.loads(body)
            event_type = str(data["event"])
            event_id = str(data["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookSignatureError(f"not a test webhook: {exc}") from exc
        statuses = {
            "payment.succeeded": PaymentStatus.SUCCEEDED,
            "payment.failed": PaymentStatus.FAILED,
        }
        return WebhookEvent(
            event_id=event_id,
            event_type=event_type,
            order_reference=_text_or_none(data.get("order_id")),
            payment_reference=_text_or_none(data.get("payment_id")),
            status=statuses.get(event_type),
            amount_minor=data["amount"] if isinstance(data.get("amount"), int) else None,
            currency=data["currency"] if isinstance(data.get("currency"), str) else None,
        )


def _text_or_none(value: object) -> str | None:
    return str(value)[:100] if isinstance(value, str | int) and value != "" else None
