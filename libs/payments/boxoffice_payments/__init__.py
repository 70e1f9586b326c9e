"""Payment providers behind one interface: the local `test` provider and a Razorpay-compatible one.

The booking API starts, captures and refunds payments through it; the reaper asks it about a
payment in progress (`fetch_status`) before it expires the hold the payment is for.
"""

from boxoffice_payments.interface import (
    IN_PROGRESS_STATUSES,
    Order,
    PaymentProvider,
    PaymentProviderError,
    PaymentState,
    PaymentStatus,
    Refund,
    WebhookEvent,
    WebhookSignatureError,
)
from boxoffice_payments.registry import UnknownProvider, get_provider, provider_names

__all__ = [
    "IN_PROGRESS_STATUSES",
    "Order",
    "PaymentProvider",
    "PaymentProviderError",
    "PaymentState",
    "PaymentStatus",
    "Refund",
    "UnknownProvider",
    "WebhookEvent",
    "WebhookSignatureError",
    "get_provider",
    "provider_names",
]
