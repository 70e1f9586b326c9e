"""A simulated payment provider with the faults a real one has, for the lifecycle state machine.

It keeps orders, payment attempts and refunds in memory, and plays the customer (`pay`) and the
provider's webhook sender (`webhooks`, delivered by the test in any order, twice, or late).
Faults are armed by count: a capture or a refund that times out before doing anything, a refund
whose answer is lost after it was made (a timeout), and a refund after which the calling
process dies before it commits (`SimulatedCrash`). Refunds are idempotent by key, as the
provider contract requires.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from boxoffice_payments import (
    Order,
    PaymentProvider,
    PaymentProviderError,
    PaymentState,
    PaymentStatus,
    Refund,
    WebhookEvent,
    WebhookSignatureError,
)

SECRET = b"simulated-webhook-secret"
EVENTS = {
    "payment.authorized": PaymentStatus.AUTHORIZED,
    "payment.captured": PaymentStatus.SUCCEEDED,
    "payment.failed": PaymentStatus.FAILED,
}


class SimulatedCrash(BaseException):
    """The process calling the provider died after the provider acted, before it committed."""


@dataclass
class Attempt:
    id: str
    order: str
    status: str  # authorized, captured, failed
    amount_minor: int
    currency: str
    refunded_minor: int = 0


@dataclass
class Faults:
    capture_timeouts: int = 0
    refund_timeouts: int = 0  # nothing done
    refund_answers_lost: int = 0  # refunded, then the answer is lost
    crashes_after_refund: int = 0  # refunded, then the caller dies

    def clear(self) -> None:
        self.capture_timeouts = self.refund_timeouts = 0
        self.refund_answers_lost = self.crashes_after_refund = 0


@dataclass
class SimulatedProvider(PaymentProvider):
    name: str = "sim"
    orders: dict[str, tuple[int, str]] = field(default_factory=dict)
    attempts: dict[str, Attempt] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)  # by idempotency key
    webhooks: list[bytes] = field(default_factory=list)  # sent, maybe not delivered yet
    faults: Faults = field(default_factory=Faults)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def _id(self, prefix: str) -> str:
        """Ids unique across simulated providers (and runs), as a real provider's are."""
        return f"{prefix}_{self._run}_{next(self._ids)}"

    # --- the provider contract -------------------------------------------------------------

    def create_order(
        self, *, amount_minor: int, currency: str, receipt: str, outcome: str | None = None
    ) -> Order:
        reference = self._id("order")
        self.orders[reference] = (amount_minor, currency)
        return Order(reference, amount_minor, currency, PaymentStatus.PENDING)

    def capture(self, payment_reference: str, amount_minor: int, currency: str) -> PaymentState:
        attempt = self.attempts.get(payment_reference)
        if attempt is None:
            raise PaymentProviderError(f"no payment {payment_reference}")
        if self.faults.capture_timeouts:
            self.faults.capture_timeouts -= 1
            raise PaymentProviderError("capture timed out")
        if attempt.status == "authorized":
            attempt.status = "captured"
            self._send("payment.captured", attempt)
        if attempt.status != "captured":
            raise PaymentProviderError(f"cannot capture a {attempt.status} payment")
        return self._state(attempt)

    def refund(self, payment_reference: str, amount_minor: int, idempotency_key: str) -> Refund:
        attempt = self.attempts.get(payment_reference)
        if attempt is None:  # another simulation's payment: no fault of ours is spent on it
            raise PaymentProviderError(f"no payment {payment_reference}")
        if self.faults.refund_timeouts:
            self.faults.refund_timeouts -= 1
            raise PaymentProviderError("refund timed out")
        made = self.refunds.get(idempotency_key)
        if made is None:
            if attempt.status != "captured":
                raise PaymentProviderError("only a captured payment is refunded")
            if attempt.refunded_minor + amount_minor > attempt.amount_minor:
                raise PaymentProviderError("refund exceeds the captured amount")
            attempt.refunded_minor += amount_minor
            made = Refund(self._id("rfnd"), payment_reference, amount_minor, "processed")
            self.refunds[idempotency_key] = made
        if self.faults.refund_answers_lost:
            self.faults.refund_answers_lost -= 1
            raise PaymentProviderError("refund answer lost (timeout)")
        if self.faults.crashes_after_refund:
            self.faults.crashes_after_refund -= 1
            raise SimulatedCrash
        return made

    def fetch_status(self, order_reference: str) -> PaymentState:
        rank = {"captured": 0, "authorized": 1, "failed": 2}
        attempts = [a for a in self.attempts.values() if a.order == order_reference]
        if not attempts:
            return PaymentState(order_reference, PaymentStatus.PENDING)
        best = min(attempts, key=lambda a: rank[a.status])
        return self._state(best)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        signature = {k.lower(): v for k, v in headers.items()}.get("x-sim-signature", "")
        if not hmac.compare_digest(sign(body), signature):
            raise WebhookSignatureError("simulated signature does not match")
        data = json.loads(body)
        return WebhookEvent(
            event_id=data["id"],
            event_type=data["event"],
            order_reference=data["order_id"],
            payment_reference=data["payment_id"],
            status=EVENTS.get(data["event"]),
            amount_minor=data["amount"],
            currency=data["currency"],
        )

    # --- the customer and the webhook sender -----------------------------------------------

    def pay(self, order: str, outcome: str, amount_delta: int = 0) -> Attempt:
        """The customer pays `order`: `captured`, `authorized` or `failed`."""
        amount, currency = self.orders[order]
        attempt = Attempt(self._id("pay"), order, outcome, amount + amount_delta, currency)
        self.attempts[attempt.id] = attempt
        self._send(f"payment.{outcome}", attempt)
        return attempt

    def _send(self, event: str, attempt: Attempt) -> None:
        body = json.dumps(
            {
                "id": self._id("evt"),
                "event": event,
                "order_id": attempt.order,
                "payment_id": attempt.id,
                "amount": attempt.amount_minor,
                "currency": attempt.currency,
            }
        ).encode()
        self.webhooks.append(body)

    def _state(self, attempt: Attempt) -> PaymentState:
        status = {
            "captured": PaymentStatus.SUCCEEDED,
            "authorized": PaymentStatus.AUTHORIZED,
            "failed": PaymentStatus.FAILED,
        }[attempt.status]
        return PaymentState(
            attempt.order, status, attempt.id, attempt.amount_minor, attempt.currency
        )

    def captured_not_refunded(self) -> list[Attempt]:
        return [
            a
            for a in self.attempts.values()
            if a.status == "captured" and a.refunded_minor < a.amount_minor
        ]


def sign(body: bytes) -> str:
    return hmac.new(SECRET, body, hashlib.sha256).hexdigest()
