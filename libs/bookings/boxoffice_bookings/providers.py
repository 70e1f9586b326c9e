"""The configured payment providers, by name, as the lifecycle's typed error when unknown."""

from __future__ import annotations

from boxoffice_payments import PaymentProvider, UnknownProvider, get_provider

from boxoffice_bookings.errors import UnknownPaymentProvider


def provider_named(name: str) -> PaymentProvider:
    try:
        return get_provider(name)
    except UnknownProvider as exc:
        raise UnknownPaymentProvider(str(exc), provider=name) from exc
