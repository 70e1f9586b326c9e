"""SMS through a Twilio-style HTTP gateway: a form POST of To, From and Body."""

from __future__ import annotations

import httpx
from boxoffice_settings import Settings
from boxoffice_telemetry.tracing import tracer
from opentelemetry.trace import SpanKind

from boxoffice_notifier.errors import PermanentDeliveryError, TransientDeliveryError


class SmsGateway:
    """One HTTP client (keep-alive connections) for the configured gateway."""

    def __init__(self, settings: Settings) -> None:
        if not settings.sms_gateway_url:
            raise ValueError("BOXOFFICE_SMS_GATEWAY_URL is not set")
        self.url = settings.sms_gateway_url
        self.sender = settings.sms_sender
        token = settings.sms_gateway_token.get_secret_value() if settings.sms_gateway_token else ""
        auth: httpx.Auth | None = None
        headers: dict[str, str] = {}
        if settings.sms_gateway_account:
            auth = httpx.BasicAuth(settings.sms_gateway_account, token)  # Twilio: SID + token
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(auth=auth, headers=headers, timeout=settings.sms_timeout_seconds)

    def send(self, to: str, body: str, idempotency_key: str) -> str | None:
        """Submit one SMS; returns the gateway's message id, or raises a `DeliveryError`.

        The idempotency key lets a gateway that supports it drop the duplicate when a retry
        follows a timeout whose request had in fact arrived.
        """
        try:
            with tracer().start_as_current_span("sms send", kind=SpanKind.CLIENT):
                response = self.client.post(
                    self.url,
                    data={"To": to, "From": self.sender, "Body": body},
                    headers={"Idempotency-Key": idempotency_key},
                )
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"gateway unreachable: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientDeliveryError(
                f"gateway answered {response.status_code}",
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code in (401, 403):
            # Our credentials, not the message: keep it until an operator fixes the token.
            raise TransientDeliveryError(f"gateway refused our credentials: {response.status_code}")
        if response.status_code >= 400:
            raise PermanentDeliveryError(f"gateway refused: {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            return None
        # An unexpected reply (a list, a string) is still an accepted message, without an id.
        message_id = (data.get("sid") or data.get("id")) if isinstance(data, dict) else None
        return str(message_id)[:100] if message_id else None

    def close(self) -> None:
        self.client.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
