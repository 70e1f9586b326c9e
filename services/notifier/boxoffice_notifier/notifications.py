"""Customer notifications: which message an event means, on which channel, sent once."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from boxoffice.messaging.v1.envelope_pb2 import Envelope
from boxoffice_contracts.envelope import MalformedMessage
from boxoffice_contracts.events import EMAIL, EVENTS, SMS
from celery import current_task
from prometheus_client import Counter, Histogram
from sqlalchemy import Connection

from boxoffice_notifier.deliveries import Budgeted, DeliveryKey, Outcome, Skip, deliver
from boxoffice_notifier.details import BookingDetails, booking_details, format_amount
from boxoffice_notifier.messages import render_booking_email, render_sms
from boxoffice_notifier.providers import get_providers

log = logging.getLogger(__name__)

NOTIFICATIONS = Counter(
    "boxoffice_notifications_total",
    "Notifications decided, by channel, kind and outcome (sent, failed, skipped, already_done)",
    ["channel", "kind", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "boxoffice_notification_delivery_latency_seconds",
    "From the event (e.g. the booking's confirmation) to the provider accepting the message",
    ["channel"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)


def message_kind(envelope: Envelope) -> tuple[str, dict[str, Any]]:
    """The template an event is told with (its row in boxoffice_contracts.events), and the
    extra facts it needs beyond the booking."""
    event = EVENTS.get(envelope.event_type)
    if event is None or event.kind is None:
        raise MalformedMessage(f"no notification for event_type {envelope.event_type!r}")
    if envelope.HasField("booking_cancelled"):
        cancelled = envelope.booking_cancelled
        refund = (
            format_amount(cancelled.refunded_minor, cancelled.currency)
            if cancelled.refunded_minor
            else None
        )
        was_confirmed = cancelled.previous_status == "CONFIRMED"
        return event.kind, {"was_confirmed": was_confirmed, "refund": refund}
    if envelope.HasField("booking_refunded"):
        refunded = envelope.booking_refunded
        extra = {
            "refund": format_amount(refunded.refunded_minor, refunded.currency),
            "reason": refunded.reason,
        }
        # A payment that came after the seats were gone is told apart from a plain refund.
        if refunded.reason == "seats_taken":
            return "late_payment_refunded", extra
        return event.kind, extra
    return event.kind, {}


def delivery_key(envelope: Envelope, channel: str) -> DeliveryKey:
    """What makes a delivery unique: the event and the channel."""
    kind, _ = message_kind(envelope)
    booking_id = uuid.UUID(envelope.aggregate_id)
    return DeliveryKey(uuid.UUID(envelope.event_id), channel, kind, booking_id)


def notify(envelope: Envelope, channel: str) -> Outcome:
    """Send the customer the message `envelope` calls for on `channel`, once per event."""
    kind, extra = message_kind(envelope)
    key = delivery_key(envelope, channel)
    booking_id = uuid.UUID(envelope.aggregate_id)

    def plan(_: Connection, booking: tuple[Any, ...] | None) -> Budgeted | Skip:
        # In the delivery's own transaction: the booking's details came with the claim.
        details = None if booking is None else booking_details(booking)
        if details is None:
            raise MalformedMessage(f"event {envelope.event_id} names an unknown booking")
        reason = _not_applicable(kind, channel, details)
        if reason is not None:
            return Skip(reason)
        if channel == EMAIL:
            return _email_sender(key, kind, details, extra)
        return _sms_sender(key, kind, details, extra)

    outcome = deliver(key, plan)
    NOTIFICATIONS.labels(channel, kind, outcome.value).inc()
    # Ids only: never the address, number or message text.
    log.info(
        "%s %s",
        channel,
        outcome.value,
        extra={
            "event_id": envelope.event_id,
            "booking_id": str(booking_id),
            "kind": kind,
            "channel": channel,
            "task": current_task.name if current_task else None,
        },
    )
    if outcome is Outcome.SENT and envelope.occurred_at:
        occurred = datetime.fromisoformat(envelope.occurred_at.replace("Z", "+00:00"))
        DELIVERY_LATENCY.labels(channel).observe(
            max(0.0, (datetime.now(UTC) - occurred).total_seconds())
        )
    return outcome


def _not_applicable(kind: str, channel: str, details: BookingDetails) -> str | None:
    if kind == "showtime_reminder" and details.status != "CONFIRMED":
        return f"booking is {details.status}"
    if channel == SMS:
        if details.sms_opt_out:
            return "customer opted out of SMS"
        if not details.phone:
            return "no phone number"
        if get_providers().sms is None:
            return "SMS gateway not configured"
    return None


def _email_sender(
    key: DeliveryKey, kind: str, details: BookingDetails, extra: dict[str, Any]
) -> Budgeted:
    providers = get_providers()
    message = render_booking_email(
        kind, details, sender=providers.settings.mail_from, event_id=str(key.event_id), **extra
    )

    def send() -> None:
        providers.smtp.send(message)

    return Budgeted(providers.smtp_limit, send)


def _sms_sender(
    key: DeliveryKey, kind: str, details: BookingDetails, extra: dict[str, Any]
) -> Budgeted:
    providers = get_providers()
    gateway = providers.sms
    assert gateway is not None
    assert details.phone is not None
    phone = details.phone
    body = render_sms(kind, details, **extra)

    def send() -> str | None:
        return gateway.send(phone, body, idempotency_key=f"{key.event_id}:{key.channel}")

    return Budgeted(providers.sms_limit, send)
