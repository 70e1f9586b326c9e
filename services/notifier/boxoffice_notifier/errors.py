"""How a send failed: transient failures are retried, permanent ones recorded and dropped."""

from __future__ import annotations

import re

# Servers often quote the address or number they refused; reasons are logged and stored.
PERSONAL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+|\+?\d[\d -]{7,}\d")


def redact(text: str) -> str:
    """`text` without email addresses or phone numbers."""
    return PERSONAL.sub("<redacted>", text)


class DeliveryError(Exception):
    """A send that did not happen; `retry_after` is the provider's hint in seconds, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        reason = redact(reason)
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    """Try again later: SMTP 4xx, timeouts, refused connections, gateway 429/5xx."""


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help: SMTP 5xx (bad address), gateway 4xx (bad number)."""
