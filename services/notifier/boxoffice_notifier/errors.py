"""How a send failed, in the workers' one taxonomy (`boxoffice_messaging.retry`).

`TransientDeliveryError` is a `TransientError` (retried with the one `RetryPolicy`), a
`PermanentDeliveryError` a `PermanentError` (dead-lettered at once); both keep their reason
free of addresses and numbers, since reasons are logged and stored.
"""

from __future__ import annotations

import re

from boxoffice_messaging.retry import PermanentError, TaskError, TransientError

# Servers often quote the address or number they refused; reasons are logged and stored.
PERSONAL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+|\+?\d[\d -]{7,}\d")


def redact(text: str) -> str:
    """`text` without email addresses or phone numbers."""
    return PERSONAL.sub("<redacted>", text)


class DeliveryError(TaskError):
    """A send that did not happen; `retry_after` is the provider's hint in seconds, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(redact(reason), retry_after)


class TransientDeliveryError(DeliveryError, TransientError):
    """Try again later: SMTP 4xx, timeouts, refused connections, gateway 429/5xx."""


class PermanentDeliveryError(DeliveryError, PermanentError):
    """Trying again cannot help: SMTP 5xx (bad address), gateway 4xx (bad number)."""
