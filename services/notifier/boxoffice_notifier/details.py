"""What a message says about a booking, read from the database (task args carry ids only)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from boxoffice_db.models import Booking, Screen, Showtime
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload


@dataclass(frozen=True)
class BookingDetails:
    booking_id: uuid.UUID
    reference: str
    status: str
    email: str
    phone: str | None
    sms_opt_out: bool
    film: str
    venue: str
    venue_timezone: str
    screen: str
    starts_at: datetime
    ends_at: datetime
    seats: list[str]
    total_minor: int
    currency: str

    @property
    def starts_local(self) -> str:
        """The start time as the venue's clock shows it, e.g. `Sat 22 Nov 2026, 19:30 IST`."""
        return self.starts_at.astimezone(ZoneInfo(self.venue_timezone)).strftime(
            "%a %d %b %Y, %H:%M %Z"
        )

    @property
    def starts_local_short(self) -> str:
        """The start time in few characters for an SMS, e.g. `Sat 22 Nov 19:30`."""
        return self.starts_at.astimezone(ZoneInfo(self.venue_timezone)).strftime("%a %d %b %H:%M")

    @property
    def total(self) -> str:
        return format_amount(self.total_minor, self.currency)


def format_amount(minor: int, currency: str) -> str:
    """Minor units as `INR 1,234.50` (two decimals: every currency we sell in has them)."""
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{currency} {minor // 100:,}.{minor % 100:02d}"


def load_booking_details(session: Session, booking_id: uuid.UUID) -> BookingDetails | None:
    """The booking with its showtime, screen and venue, or None if there is no such booking."""
    booking = session.scalars(
        select(Booking)
        .where(Booking.id == booking_id)
        .options(
            selectinload(Booking.seats),
            joinedload(Booking.showtime).joinedload(Showtime.screen).joinedload(Screen.venue),
        )
    ).one_or_none()
    if booking is None:
        return None
    showtime = booking.showtime
    venue = showtime.screen.venue
    return BookingDetails(
        booking_id=booking.id,
        reference=booking.reference,
        status=booking.status.value,
        email=booking.customer_email,
        phone=booking.customer_phone,
        sms_opt_out=booking.sms_opt_out,
        film=showtime.film_title,
        venue=venue.name,
        venue_timezone=venue.timezone,
        screen=showtime.screen.name,
        starts_at=showtime.starts_at,
        ends_at=showtime.ends_at,
        seats=[s.label for s in booking.seats],
        total_minor=booking.total_minor,
        currency=booking.currency,
    )
