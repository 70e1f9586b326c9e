"""Rendering: multipart email, the .ics attachment, SMS that fit in one GSM-7 message."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from io import BytesIO

import icalendar
import pytest
from boxoffice_notifier import gsm7
from boxoffice_notifier.errors import PermanentDeliveryError, TransientDeliveryError
from boxoffice_notifier.ics import booking_calendar
from boxoffice_notifier.messages import render_booking_email, render_sms
from boxoffice_notifier.smtp import flatten
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.notifier.samples import STARTS, sample_details

SENDER = "Boxoffice <tickets@boxoffice.example>"
EVENT_ID = "0b8a4f0e-7c39-4d3e-8a53-9f0f2d7b1c11"


def parsed(message: Message) -> EmailMessage:
    """Round-trip through bytes, as the SMTP server would see it."""
    result = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(result, EmailMessage)
    return result


def test_confirmation_is_text_and_html_with_every_booking_fact() -> None:
    message = parsed(
        render_booking_email(
            "booking_confirmed", sample_details(), sender=SENDER, event_id=EVENT_ID
        )
    )
    assert message["Subject"].strip().startswith("Booking K7M2Q9XZ confirmed")
    assert message["To"] == "ada@example.com"
    assert EVENT_ID in message["Message-ID"]
    assert message["X-Boxoffice-Event-Id"] == EVENT_ID
    # Every attempt is the same message: a re-send after a crash shows once in a mailbox.
    again = parsed(
        render_booking_email(
            "booking_confirmed", sample_details(), sender=SENDER, event_id=EVENT_ID
        )
    )
    assert again["Message-ID"] == message["Message-ID"]
    other = parsed(
        render_booking_email("hold_expired", sample_details(), sender=SENDER, event_id=EVENT_ID)
    )
    assert other["Message-ID"] != message["Message-ID"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    for body in (text.get_content(), html.get_content()):
        assert "K7M2Q9XZ" in body
        assert "The Seventh Seal" in body
        assert "Regal Cinema" in body
        assert "Screen 2" in body
        assert "C3, C4" in body
        assert "INR 450.50" in body
        # 14:00 UTC is 19:30 at a venue in India: the time is the venue's.
        assert "Sun 22 Nov 2026, 19:30 IST" in body


def test_confirmation_carries_an_ics_for_the_showtime() -> None:
    message = parsed(
        render_booking_email(
            "booking_confirmed", sample_details(), sender=SENDER, event_id=EVENT_ID
        )
    )
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_filename() == "booking-K7M2Q9XZ.ics"
    calendar = icalendar.Calendar.from_ical(attachment.get_content())
    [event] = calendar.walk("VEVENT")
    assert event.decoded("dtstart") == STARTS
    assert "The Seventh Seal" in str(event["summary"])
    assert str(event["location"]) == "Regal Cinema, Screen 2"
    assert str(event["uid"]).startswith("8d3c4a8e-2f5b-4a1e-9f77-0c1d2e3f4a5b")


def test_html_escapes_what_customers_and_operators_typed() -> None:
    details = sample_details(film="<script>alert(1)</script> & Co")
    message = parsed(
        render_booking_email("booking_confirmed", details, sender=SENDER, event_id=EVENT_ID)
    )
    html = message.get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content()
    assert "&lt;script&gt;" in html.get_content()


@pytest.mark.parametrize(
    ("kind", "extra", "phrase"),
    [
        ("hold_expired", {}, "expired"),
        ("booking_cancelled", {"was_confirmed": False, "refund": None}, "seats are released"),
        (
            "booking_cancelled",
            {"was_confirmed": True, "refund": "INR 450.50"},
            "refunded INR 450.50",
        ),
        (
            "booking_refunded",
            {"refund": "INR 450.50", "reason": "already_paid"},
            "refunded your second payment of INR 450.50",
        ),
        (
            "late_payment_refunded",
            {"refund": "INR 450.50", "reason": "seats_taken"},
            "after your hold",
        ),
        ("showtime_reminder", {}, "starts soon"),
    ],
)
def test_every_kind_renders_text_and_html(kind: str, extra: dict[str, object], phrase: str) -> None:
    message = parsed(
        render_booking_email(kind, sample_details(), sender=SENDER, event_id=EVENT_ID, **extra)
    )
    text = message.get_body(("plain",))
    assert text is not None
    assert phrase in text.get_content()
    assert message.get_body(("html",)) is not None
    assert list(message.iter_attachments()) == []


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("booking_confirmed", {}),
        ("showtime_reminder", {}),
        ("booking_refunded", {"refund": "INR 450.50", "reason": "already_paid"}),
        ("late_payment_refunded", {"refund": "INR 450.50", "reason": "seats_taken"}),
    ],
)
def test_sms_names_the_reference_and_fits_one_message(kind: str, extra: dict[str, object]) -> None:
    text = render_sms(kind, sample_details(), **extra)
    assert "K7M2Q9XZ" in text
    assert gsm7.is_gsm7(text)
    assert gsm7.septets(text) <= 160


def test_sms_confirmation_says_when_in_venue_time() -> None:
    text = render_sms("booking_confirmed", sample_details())
    assert "Sun 22 Nov 19:30" in text
    assert "C3,C4" in text


@given(
    film=st.text(min_size=1, max_size=300),
    venue=st.text(min_size=1, max_size=60),
    seats=st.lists(st.from_regex(r"[A-Z][0-9]{1,2}", fullmatch=True), min_size=1, max_size=10),
)
def test_any_sms_is_gsm7_and_at_most_160_septets(film: str, venue: str, seats: list[str]) -> None:
    details = sample_details(film=film, venue=venue, seats=seats)
    for kind in ("booking_confirmed", "showtime_reminder"):
        text = render_sms(kind, details)
        assert gsm7.is_gsm7(text)
        assert gsm7.septets(text) <= 160


def test_a_long_film_title_is_shortened_before_the_reference_is_lost() -> None:
    text = render_sms("booking_confirmed", sample_details(film="A Very Long Film Title " * 10))
    assert "K7M2Q9XZ at the door" in text
    assert gsm7.septets(text) <= 160


def test_gsm7_spells_rupees_and_accents_and_counts_extension_characters_twice() -> None:
    assert gsm7.to_gsm7("₹500 \u2013 Amélie") == "Rs.500 - Amélie"
    assert gsm7.to_gsm7("Łódź") == "Lodz"
    assert gsm7.to_gsm7("東京") == "??"
    assert gsm7.septets("{€}") == 6


def test_failure_reasons_never_carry_an_address_or_number() -> None:
    error = PermanentDeliveryError("550 5.1.1 <ada.l+x@mail.example.com>: no such user")
    assert error.reason == "550 5.1.1 <<redacted>>: no such user"
    assert "9800000001" not in TransientDeliveryError("bad To +91 98000 00001").reason
    assert TransientDeliveryError("451 4.3.0 try in 30 s").reason == "451 4.3.0 try in 30 s"


def test_non_ascii_names_survive_headers_and_bodies() -> None:
    details = sample_details(film="Amélie — 千と千尋の神隠し", venue="Café Ciné")
    message = parsed(
        render_booking_email(
            "booking_confirmed",
            details,
            sender="Boxoffice Ünïcode <tickets@boxoffice.example>",
            event_id=EVENT_ID,
        )
    )
    assert "Amélie — 千と千尋の神隠し" in message["Subject"]
    assert message["From"].addresses[0].display_name == "Boxoffice Ünïcode"
    for body in (message.get_body(("plain",)), message.get_body(("html",))):
        assert body is not None
        assert "Amélie — 千と千尋の神隠し" in body.get_content()
        assert "Café Ciné" in body.get_content()


def test_every_line_fits_the_smtp_limit_even_for_a_very_long_title() -> None:
    details = sample_details(film="Ω" * 3000)
    raw = render_booking_email(
        "booking_confirmed", details, sender=SENDER, event_id=EVENT_ID
    ).as_bytes()
    assert max(len(line) for line in raw.splitlines()) <= 998
    text = parsed(
        render_booking_email("booking_confirmed", details, sender=SENDER, event_id=EVENT_ID)
    ).get_body(("plain",))
    assert text is not None
    assert "Ω" * 3000 in text.get_content()


def test_a_line_break_in_data_cannot_start_a_header() -> None:
    details = sample_details(film="Film\r\nBcc: victim@example.com")
    message = parsed(
        render_booking_email("booking_confirmed", details, sender=SENDER, event_id=EVENT_ID)
    )
    assert message["Bcc"] is None
    assert "Film Bcc: victim@example.com" in message["Subject"]
    with pytest.raises(ValueError, match="line breaks"):
        render_booking_email(
            "booking_confirmed",
            sample_details(email="ada@example.com\nBcc: victim@example.com"),
            sender=SENDER,
            event_id=EVENT_ID,
        )


def test_the_ics_reads_back_whatever_the_title_holds() -> None:
    film = "Amélie; the, \\ fabulous — 千と千尋の神隠し\n" + "Ω" * 100
    details = sample_details(film=film, venue="Café, Ciné; \\ Palace")
    ics = booking_calendar(details, organizer="tickets@boxoffice.example")
    assert all(len(line) <= 75 for line in ics.split(b"\r\n"))
    assert ics.endswith(b"END:VCALENDAR\r\n")
    [event] = icalendar.Calendar.from_ical(ics).walk("VEVENT")
    assert str(event["summary"]) == f"{film} (K7M2Q9XZ)"
    assert str(event["location"]) == "Café, Ciné; \\ Palace, Screen 2"
    assert str(event["description"]) == "Booking K7M2Q9XZ\nSeats: C3, C4\nTotal: INR 450.50"
    assert event.decoded("dtend") == STARTS + timedelta(hours=2)
    assert str(event["organizer"]) == "mailto:tickets@boxoffice.example"
    assert str(event["status"]) == "CONFIRMED"


@pytest.mark.parametrize(
    "film", ["The Seventh Seal", "Amélie — 千と千尋の神隠し", "A" * 120, "Tabs\tand  spaces "]
)
def test_the_fast_header_path_writes_what_compat32_writes(film: str) -> None:
    message = render_booking_email(
        "booking_confirmed", sample_details(film=film), sender=SENDER, event_id=EVENT_ID
    )
    fast = message.as_bytes()  # also fixes the multipart boundaries for the second run
    plain = message.as_bytes(policy=policy.compat32)
    assert fast == plain


def stock_smtp_bytes(message: Message) -> bytes:
    """What `smtplib.SMTP.send_message` writes for `message`: the stock generator, CRLF."""
    data = BytesIO()
    BytesGenerator(data).flatten(message, linesep="\r\n")
    return data.getvalue()


@given(
    film=st.lists(
        st.sampled_from(["From ", "Ω", "千", "a", " ", "\n", "\r", "\r\n", "=", ".", "x" * 70])
    ).map(lambda pieces: "".join(pieces).strip() or "Film"),
    kind=st.sampled_from(["booking_confirmed", "hold_expired"]),
)
def test_the_sender_flattens_a_message_to_the_stock_generators_bytes(film: str, kind: str) -> None:
    # Line ends of every kind, "From " at a line's start (escaped), 8bit and quoted-printable
    # bodies, the calendar's base64: the bytes smtplib's own generator writes.
    message = render_booking_email(
        kind, sample_details(film=film, venue=film), sender=SENDER, event_id=EVENT_ID
    )
    flat = flatten(message)
    assert flat == stock_smtp_bytes(message)
    assert b"\n" not in flat.replace(b"\r\n", b"")
