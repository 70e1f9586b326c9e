"""Render messages from Jinja2 templates and send them over SMTP."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from boxoffice_settings import Settings
from boxoffice_telemetry.tracing import tracer
from jinja2 import Environment, PackageLoader, StrictUndefined
from opentelemetry.trace import SpanKind

from boxoffice_notifier.details import BookingDetails

templates = Environment(
    loader=PackageLoader("boxoffice_notifier", "templates"),
    undefined=StrictUndefined,
    autoescape=False,  # noqa: S701 - plain-text templates
    keep_trailing_newline=True,
)

SUBJECTS = {
    "booking_confirmed": "Booking {ref} confirmed",
    "hold_expired": "Your hold {ref} expired",
    "booking_cancelled": "Booking {ref} cancelled",
}


def render_email(kind: str, details: BookingDetails, event_id: str, sender: str) -> EmailMessage:
    """The email for one event; its Message-ID is derived from the event id."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = details.email
    message["Subject"] = SUBJECTS[kind].format(ref=details.reference)
    message["Message-ID"] = make_msgid(idstring=event_id, domain="boxoffice.invalid")
    message["X-Boxoffice-Event-Id"] = event_id
    message["X-Boxoffice-Booking"] = details.reference
    message.set_content(templates.get_template(f"{kind}.txt.j2").render(b=details))
    return message


def send_email(settings: Settings, message: EmailMessage) -> None:
    """Deliver one message to the configured SMTP server."""
    with tracer().start_as_current_span(
        "smtp send",
        kind=SpanKind.CLIENT,
        attributes={"server.address": settings.smtp_host, "server.port": settings.smtp_port},
    ):
        _send(settings, message)


def _send(settings: Settings, message: EmailMessage) -> None:
    smtp: smtplib.SMTP
    if settings.smtp_ssl:
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host,
            settings.smtp_port,
            timeout=settings.smtp_timeout_seconds,
            context=ssl.create_default_context(),
        )
    else:
        smtp = smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
        )
    with smtp:
        if settings.smtp_starttls and not settings.smtp_ssl:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username and settings.smtp_password:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(message)
