"""Typed lifecycle errors: each names what went wrong; the API maps them to problem types."""

from __future__ import annotations

from typing import Any


class LifecycleError(Exception):
    """A booking transition that cannot happen; `extensions` add machine-readable detail."""

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class BookingNotFound(LifecycleError):
    """No booking has this id."""


class ShowtimeNotFound(LifecycleError):
    """No showtime has this id."""


class InvalidSeats(LifecycleError):
    """Seats that are unknown, blocked, unpriced, listed twice or too many."""


class SeatsUnavailable(LifecycleError):
    """Seats another booking holds or has bought; `extensions["seats"]` names them."""


class ActiveHoldsLimit(LifecycleError):
    """The client has as many active holds as it may; `extensions["limit"]` says how many."""


class BookingStateConflict(LifecycleError):
    """The booking's status does not allow this transition."""


class HoldExpired(LifecycleError):
    """The hold lapsed (and, for a captured payment, its seats were taken)."""


class CancellationClosed(LifecycleError):
    """Too close to the showtime to cancel a confirmed booking."""


class PaymentProviderUnavailable(LifecycleError):
    """The provider could not be reached or refused; the caller may retry later."""


class InvalidWebhookSignature(LifecycleError):
    """A provider callback whose signature does not match its body."""


class UnknownPaymentProvider(LifecycleError):
    """A provider that is not enabled in this deployment."""
