"""The process's connections to the outside: SMTP, the SMS gateway and Redis rate limits."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

from boxoffice_messaging.redis_client import redis_from_settings
from boxoffice_settings import Settings, get_settings

from boxoffice_notifier.ratelimit import RateLimiter
from boxoffice_notifier.sms import SmsGateway
from boxoffice_notifier.smtp import SmtpSender


@dataclass
class Providers:
    settings: Settings
    smtp: SmtpSender
    sms: SmsGateway | None
    smtp_limit: RateLimiter
    sms_limit: RateLimiter

    def close(self) -> None:
        self.smtp.close()
        if self.sms is not None:
            self.sms.close()


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _build() -> Providers:
    settings = get_settings()
    client = redis_from_settings(settings, socket_timeout=5, socket_connect_timeout=5)
    return Providers(
        settings=settings,
        smtp=SmtpSender(settings),
        sms=SmsGateway(settings) if settings.sms_gateway_url else None,
        # Keyed by provider endpoint: workers sending through the same server share one budget.
        smtp_limit=RateLimiter(
            client, f"smtp:{settings.smtp_host}:{settings.smtp_port}", settings.smtp_rate_per_second
        ),
        sms_limit=RateLimiter(
            client, f"sms:{settings.sms_gateway_url}", settings.sms_rate_per_second
        ),
    )


def get_providers() -> Providers:
    """This process's providers, built on first use (thread-safe)."""
    with _lock:
        return _build()


def reset_providers() -> None:
    """Close and forget the providers (after fork, or when settings change in tests)."""
    with _lock:
        if _build.cache_info().currsize:
            _build().close()
        _build.cache_clear()
