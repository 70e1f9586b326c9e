"""Notifier tasks: decode the envelope, send once per (event, channel), retry or reject."""

from __future__ import annotations

import logging
import uuid
from functools import partial

from boxoffice_contracts.envelope import MalformedMessage, parse_envelope
from boxoffice_db.engine import session_scope
from boxoffice_messaging.inbox import send_once
from boxoffice_messaging.reliable import reliable_task
from boxoffice_messaging.routes import (
    TASK_SEND_BOOKING_CANCELLED,
    TASK_SEND_BOOKING_CONFIRMATION,
    TASK_SEND_HOLD_EXPIRED,
)
from boxoffice_settings import get_settings
from celery import Celery

from boxoffice_notifier.details import load_booking_details
from boxoffice_notifier.email import render_email, send_email

log = logging.getLogger(__name__)


def send_booking_email(kind: str, message: object) -> bool:
    """Send the `kind` email for an event once; False if it had been sent already."""
    envelope = parse_envelope(message)
    booking_id = uuid.UUID(envelope.aggregate_id)
    settings = get_settings()
    with session_scope() as session:
        details = load_booking_details(session, booking_id)
    if details is None:
        raise MalformedMessage(f"event {envelope.event_id} names unknown booking {booking_id}")
    email = render_email(kind, details, envelope.event_id, settings.mail_from)
    sent = send_once(uuid.UUID(envelope.event_id), "email", lambda: send_email(settings, email))
    log.info(
        "email %s",
        "sent" if sent else "already sent",
        extra={"event_id": envelope.event_id, "kind": kind},
    )
    return sent


def register_tasks(app: Celery) -> None:
    """Bind the notifier's tasks to `app` under their contract names.

    ReliableTask retries SMTP and database outages with backoff and dead-letters malformed
    messages (and messages that run out of retries) to the notifier's dead-letter queue.
    """

    def email_task(name: str, kind: str) -> None:
        reliable_task(app, name, service="notifier")(partial(send_booking_email, kind))

    email_task(TASK_SEND_BOOKING_CONFIRMATION, "booking_confirmed")
    email_task(TASK_SEND_HOLD_EXPIRED, "hold_expired")
    email_task(TASK_SEND_BOOKING_CANCELLED, "booking_cancelled")
