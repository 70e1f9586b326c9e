"""Build the configured providers from the one `Settings`."""

from __future__ import annotations

from functools import lru_cache

from boxoffice_settings import Settings, get_settings

from boxoffice_payments.interface import PaymentProvider
from boxoffice_payments.local_provider import LocalPaymentProvider
from boxoffice_payments.razorpay import RazorpayProvider


class UnknownProvider(LookupError):
    """A provider name that is not configured in this deployment."""


def provider_names(settings: Settings) -> list[str]:
    """The providers this deployment accepts: `test` outside production, `razorpay` if keyed."""
    names = ["test"] if settings.is_development or settings.test_payments_enabled else []
    if settings.razorpay_key_id and settings.razorpay_key_secret:
        names.append("razorpay")
    return names


def build_provider(name: str, settings: Settings) -> PaymentProvider:
    if name not in provider_names(settings):
        raise UnknownProvider(f"payment provider {name!r} is not enabled here")
    if name == "test":
        return LocalPaymentProvider(settings.test_webhook_secret.get_secret_value())
    assert settings.razorpay_key_id is not None
    assert settings.razorpay_key_secret is not None
    return RazorpayProvider(
        key_id=settings.razorpay_key_id,
        key_secret=settings.razorpay_key_secret.get_secret_value(),
        webhook_secret=(
            settings.razorpay_webhook_secret.get_secret_value()
            if settings.razorpay_webhook_secret
            else ""
        ),
        base_url=settings.razorpay_base_url,
        timeout_seconds=settings.payment_timeout_seconds,
    )


@lru_cache(maxsize=8)
def _cached(name: str) -> PaymentProvider:
    return build_provider(name, get_settings())


def get_provider(name: str, settings: Settings | None = None) -> PaymentProvider:
    """The provider called `name`, built once per process from the settings."""
    if settings is not None:
        return build_provider(name, settings)
    return _cached(name)
