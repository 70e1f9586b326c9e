"""The `.ics` attachment (RFC 5545) that puts a confirmed showtime in the customer's calendar."""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar, Event

from boxoffice_notifier.details import BookingDetails


def booking_calendar(details: BookingDetails, organizer: str) -> bytes:
    """One VEVENT for the showtime; its UID is stable per booking so a resend updates it."""
    calendar = Calendar()
    calendar.add("prodid", "-//Boxoffice//Tickets//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"{details.booking_id}@boxoffice")
    event.add("dtstamp", datetime.now(UTC))
    # UTC times: every calendar client shows them in the reader's own zone, correctly.
    event.add("dtstart", details.starts_at.astimezone(UTC))
    event.add("dtend", details.ends_at.astimezone(UTC))
    event.add("summary", f"{details.film} ({details.reference})")
    event.add("location", f"{details.venue}, {details.screen}")
    event.add(
        "description",
        f"Booking {details.reference}\nSeats: {', '.join(details.seats)}\nTotal: {details.total}",
    )
    event.add("organizer", f"mailto:{organizer}")
    event.add("status", "CONFIRMED")
    calendar.add_component(event)
    ical: bytes = calendar.to_ical()
    return ical
