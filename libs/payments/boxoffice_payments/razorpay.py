"""A Razorpay-compatible provider: orders, capture, refunds, signed webhooks.

Speaks the Razorpay REST API (`/v1/orders`, `/v1/payments/{id}/capture`,
`/v1/payments/{id}/refund`, `/v1/orders/{id}/payments`) with HTTP basic auth, so the same
code works against Razorpay or any server that speaks its API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

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

SIGNATURE_HEADER = "x-razorpay-signature"
# Razorpay's idempotency key for creating refunds (10+ characters: our refund ids are UUIDs).
REFUND_IDEMPOTENCY_HEADER = "X-Refund-Idempotency"

# Razorpay payment entity status -> ours
PAYMENT_STATUSES = {
    "created": PaymentStatus.PENDING,
    "authorized": PaymentStatus.AUTHORIZED,
    "captured": PaymentStatus.SUCCEEDED,
    "refunded": PaymentStatus.REFUNDED,
    "failed": PaymentStatus.FAILED,
}
# Webhook events this system acts on -> the status they announce
WEBHOOK_STATUSES = {
    "payment.authorized": PaymentStatus.AUTHORIZED,
    "payment.captured": PaymentStatus.SUCCEEDED,
    "order.paid": PaymentStatus.SUCCEEDED,
    "payment.failed": PaymentStatus.FAILED,
}


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_matches(secret: str, message: bytes, signature: str) -> bool:
    """Constant-time comparison, so a forger learns nothing from the response time."""
    return hmac.compare_digest(hmac_sha256_hex(secret, message), signature.strip())


class RazorpayProvider(PaymentProvider):
    name = "razorpay"

    def __init__(
        self,
        key_id: str,
        key_secret: str,
        webhook_secret: str,
        base_url: str = "https://api.razorpay.com",
        timeout_seconds: float = 10.0,
    ) -> None:
        self.key_id = key_id
        self._key_secret = key_secret
        self._webhook_secret = webhook_secret
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/v1",
            auth=(key_id, key_secret),
            timeout=timeout_seconds,
        )

    def close(self) -> None:
        self._client.close()

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise PaymentProviderError(f"razorpay {method} {path}: {exc!r}") from exc
        if response.status_code >= 400:
            try:
                reason = response.json().get("error", {}).get("description", response.text)
            except ValueError:
                reason = response.text
            raise PaymentProviderError(
                f"razorpay {method} {path}: {response.status_code} {reason}"[:500]
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise PaymentProviderError(f"razorpay {method} {path}: not JSON") from exc
        if not isinstance(data, dict):
            raise PaymentProviderError(f"razorpay {method} {path}: unexpected body")
        return data

    def create_order(
        self, *, amount_minor: int, currency: str, receipt: str, outcome: str | None = None
    ) -> Order:
        data = self._call(
            "POST",
            "/orders",
            {"amount": amount_minor, "currency": currency, "receipt": receipt},
        )
        order_id = str(data["id"])
        return Order(
            reference=order_id,
            amount_minor=int(data.get("amount", amount_minor)),
            currency=str(data.get("currency", currency)),
            status=PaymentStatus.PENDING,
            checkout={"key_id": self.key_id, "order_id": order_id},
        )

    def capture(self, payment_reference: str, amount_minor: int, currency: str) -> PaymentState:
        data = self._call(
            "POST",
            f"/payments/{payment_reference}/capture",
            {"amount": amount_minor, "currency": currency},
        )
        return _payment_state(data)

    def refund(self, payment_reference: str, amount_minor: int, idempotency_key: str) -> Refund:
        """The refund made with this key if there is one, else a new one.

        Two callers may both find no refund by `receipt` and both create one (the cancel path
        and a reconcile run at once): X-Refund-Idempotency makes Razorpay answer the second
        create with the first one's refund (409 while the first is still being processed).
        """
        made = self._call("GET", f"/payments/{payment_reference}/refunds")
        for item in made.get("items", []):
            if isinstance(item, dict) and item.get("receipt") == idempotency_key:
                return _refund(item, payment_reference, amount_minor)
        data = self._call(
            "POST",
            f"/payments/{payment_reference}/refund",
            {"amount": amount_minor, "receipt": idempotency_key},
            headers={REFUND_IDEMPOTENCY_HEADER: idempotency_key},
        )
        return _refund(data, payment_reference, amount_minor)

    def fetch_status(self, order_reference: str) -> PaymentState:
        """The best state among the order's payment attempts (captured beats authorized...)."""
        data = self._call("GET", f"/orders/{order_reference}/payments")
        rank = [
            PaymentStatus.SUCCEEDED,
            PaymentStatus.REFUNDED,
            PaymentStatus.AUTHORIZED,
            PaymentStatus.FAILED,
            PaymentStatus.PENDING,
        ]
        states = [_payment_state(item) for item in data.get("items", [])]
        if not states:
            return PaymentState(reference=order_reference, status=PaymentStatus.PENDING)
        best = min(states, key=lambda s: rank.index(s.status))
        return PaymentState(
            reference=order_reference,
            status=best.status,
            payment_reference=best.payment_reference,
            amount_minor=best.amount_minor,
            currency=best.currency,
        )

    def verify_checkout_signature(self, order_id: str, payment_id: str, signature: str) -> bool:
        """The signature Razorpay Checkout hands the browser: HMAC(key_secret, order|payment)."""
        return signature_matches(self._key_secret, f"{order_id}|{payment_id}".encode(), signature)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        if not self._webhook_secret:
            raise WebhookSignatureError("no Razorpay webhook secret is configured")
        lowered = {k.lower(): v for k, v in headers.items()}
        signature = lowered.get(SIGNATURE_HEADER, "")
        if not signature or not signature_matches(self._webhook_secret, body, signature):
            raise WebhookSignatureError("X-Razorpay-Signature does not match the body")
        try:
            data = json.loads(body)
            event_type = str(data["event"])
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookSignatureError(f"signed but not a Razorpay event: {exc}") from exc
        payment = _entity(data, "payment")
        order = _entity(data, "order")
        # Duplicates are recognised by what the signature covers: an id in the body, else the
        # signed body itself. The X-Razorpay-Event-Id header is not signed, so a replayed body
        # with a fresh header must not pass as a new event.
        event_id = str(data.get("id") or "") or "sha256:" + hashlib.sha256(body).hexdigest()
        amount = payment.get("amount", order.get("amount"))
        currency = payment.get("currency", order.get("currency"))
        return WebhookEvent(
            event_id=event_id,
            event_type=event_type,
            order_reference=_str_or_none(payment.get("order_id") or order.get("id")),
            payment_reference=_str_or_none(payment.get("id")),
            status=WEBHOOK_STATUSES.get(event_type),
            amount_minor=int(amount) if isinstance(amount, int) else None,
            currency=str(currency) if isinstance(currency, str) else None,
        )


def _refund(data: dict[str, Any], payment_reference: str, amount_minor: int) -> Refund:
    return Refund(
        reference=str(data["id"]),
        payment_reference=payment_reference,
        amount_minor=int(data.get("amount", amount_minor)),
        status=str(data.get("status", "processed")),
    )


def _entity(event: dict[str, Any], name: str) -> dict[str, Any]:
    holder = event.get("payload", {}).get(name, {})
    entity = holder.get("entity", {}) if isinstance(holder, dict) else {}
    return entity if isinstance(entity, dict) else {}


def _str_or_none(value: object) -> str | None:
    return str(value)[:100] if value else None


def _payment_state(data: dict[str, Any]) -> PaymentState:
    status = PAYMENT_STATUSES.get(str(data.get("status")), PaymentStatus.PENDING)
    amount = data.get("amount")
    currency = data.get("currency")
    return PaymentState(
        reference=str(data.get("order_id") or data.get("id")),
        status=status,
        payment_reference=_str_or_none(data.get("id")),
        amount_minor=int(amount) if isinstance(amount, int) else None,
        currency=str(currency) if isinstance(currency, str) else None,
    )
