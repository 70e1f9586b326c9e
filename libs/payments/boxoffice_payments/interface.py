"""The provider interface and the values it speaks in (amounts are integer minor units)."""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class PaymentStatus(enum.StrEnum):
    """A payment's status, as stored in the `payments` table and reported by providers."""

    PENDING = "pending"  # an order exists; the customer has not paid yet
    AUTHORIZED = "authorized"  # the customer paid; the money is not captured yet
    SUCCEEDED = "succeeded"  # captured
    FAILED = "failed"
    REFUNDED = "refunded"


# A hold with a payment in one of these states is not expired before the provider is asked.
IN_PROGRESS_STATUSES = frozenset({PaymentStatus.PENDING, PaymentStatus.AUTHORIZED})


class PaymentProviderError(Exception):
    """The provider could not be reached or refused the request; the caller may retry."""


class WebhookSignatureError(Exception):
    """A webhook whose signature is missing or does not match its body."""


@dataclass(frozen=True)
class Order:
    """A payment started with the provider: what the customer's checkout needs."""

    reference: str  # the provider's order id; stored as payments.provider_reference
    amount_minor: int
    currency: str
    status: PaymentStatus
    payment_reference: str | None = None  # set when the provider settled at once
    checkout: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentState:
    """What the provider says about an order now."""

    reference: str
    status: PaymentStatus
    payment_reference: str | None = None
    amount_minor: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Refund:
    reference: str
    payment_reference: str
    amount_minor: int
    status: str


@dataclass(frozen=True)
class WebhookEvent:
    """A verified provider callback; `event_id` (covered by the signature) spots duplicates."""

    event_id: str
    event_type: str
    order_reference: str | None
    payment_reference: str | None
    status: PaymentStatus | None  # None: an event this system does not act on
    amount_minor: int | None = None
    currency: str | None = None


class PaymentProvider(abc.ABC):
    """One payment provider; implementations are stateless and safe to share across threads."""

    name: str

    @abc.abstractmethod
    def create_order(
        self, *, amount_minor: int, currency: str, receipt: str, outcome: str | None = None
    ) -> Order:
        """Start a payment of `amount_minor` for `receipt` (the booking reference)."""

    @abc.abstractmethod
    def capture(self, payment_reference: str, amount_minor: int, currency: str) -> PaymentState:
        """Capture an authorized payment."""

    @abc.abstractmethod
    def refund(self, payment_reference: str, amount_minor: int, idempotency_key: str) -> Refund:
        """Refund a captured payment; the same `idempotency_key` again returns the same refund.

        A caller that crashed after the provider refunded, before it recorded the refund, asks
        again with the same key and learns the refund instead of making a second one.
        """

    @abc.abstractmethod
    def fetch_status(self, order_reference: str) -> PaymentState:
        """Ask the provider where an order's payment stands now."""

    @abc.abstractmethod
    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify a callback's signature over the raw body and decode it.

        Raises WebhookSignatureError when the signature does not match.
        """
