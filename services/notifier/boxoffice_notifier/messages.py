"""Render email and SMS messages from the Jinja2 templates under `templates/`."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from boxoffice_notifier import gsm7
from boxoffice_notifier.details import BookingDetails
from boxoffice_notifier.ics import booking_calendar

templates = Environment(
    loader=PackageLoader("boxoffice_notifier", "templates"),
    undefined=StrictUndefined,
    # HTML is escaped (film titles are user input); plain text and SMS are not.
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    keep_trailing_newline=True,
    trim_blocks=True,
)

# Kinds that carry the showtime as an `.ics` attachment.
WITH_CALENDAR = {"booking_confirmed"}


def render_email(
    kind: str,
    *,
    sender: str,
    recipients: list[str],
    event_id: str,
    context: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A multipart text + HTML email; the Message-ID is derived from the event id."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = _render(f"email/{kind}.subject.j2", context).strip()
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=event_id, domain="boxoffice.invalid")
    message["Auto-Submitted"] = "auto-generated"
    message["X-Boxoffice-Event-Id"] = event_id
    message["X-Boxoffice-Kind"] = kind
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(_render(f"email/{kind}.txt.j2", context))
    message.add_alternative(_render(f"email/{kind}.html.j2", context), subtype="html")
    return message


def render_booking_email(
    kind: str, details: BookingDetails, *, sender: str, event_id: str, **extra: Any
) -> EmailMessage:
    """The customer's email about a booking, with a calendar attachment for confirmations."""
    message = render_email(
        kind,
        sender=sender,
        recipients=[details.email],
        event_id=event_id,
        context={"b": details, **extra},
        headers={"X-Boxoffice-Booking": details.reference},
    )
    if kind in WITH_CALENDAR:
        message.add_attachment(
            booking_calendar(details, organizer=parseaddr(sender)[1]),
            maintype="text",
            subtype="calendar",
            filename=f"booking-{details.reference}.ics",
            params={"method": "PUBLISH"},
        )
    return message


def render_sms(kind: str, details: BookingDetails, **extra: Any) -> str:
    """The SMS text in GSM-7, at most 160 septets; a long film title is shortened first."""
    film = gsm7.to_gsm7(details.film)
    text = gsm7.to_gsm7(_render(f"sms/{kind}.txt.j2", {"b": details, "film": film, **extra}))
    text = text.strip()
    overflow = gsm7.septets(text) - gsm7.SINGLE_SMS_SEPTETS
    if overflow > 0 and len(film) > 8:
        short_film = gsm7.fit(film, max(8, gsm7.septets(film) - overflow))
        text = _render(f"sms/{kind}.txt.j2", {"b": details, "film": short_film, **extra})
        text = gsm7.to_gsm7(text).strip()
    return gsm7.fit(text)


def _render(name: str, context: dict[str, Any]) -> str:
    return templates.get_template(name).render(**context)
